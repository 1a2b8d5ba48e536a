"""The page at ``GET /``: type a text, see the prediction and the reading trace as you type.

One self-contained HTML document (inline CSS and JavaScript, nothing fetched from elsewhere).
It calls the service's own routes with relative URLs, so it works where the app is mounted.
Each token is drawn on the colour ``/trace`` gives it (red low, white middle, blue high, as
``passage trace`` draws), with black or white ink, whichever reads better.
"""

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Passage: the prediction after every token</title>
<style>
body { font-family: system-ui, sans-serif; margin: 0; color: #222; background: #fafafa; }
header { padding: 0.8em 1.5em; background: #2a4d69; color: #fff; }
header h1 { margin: 0; font-size: 1.25em; font-weight: 600; }
main { display: flex; gap: 1.5em; padding: 1.2em 1.5em; flex-wrap: wrap; }
#left { flex: 3 1 30em; min-width: 0; }
#right { flex: 1 1 14em; }
textarea { width: 100%; box-sizing: border-box; min-height: 7em; font: inherit; padding: 0.5em;
           border: 1px solid #bbb; border-radius: 0.3em; }
.card { background: #fff; border: 1px solid #ddd; border-radius: 0.4em; padding: 0.8em 1em;
        margin-top: 1em; }
#result { font-size: 1.2em; }
#label { font-weight: 700; }
#trace { line-height: 2.1; white-space: pre-wrap; word-wrap: break-word; }
#trace .token { padding: 0.15em 0.1em; border-radius: 0.2em; }
#error { color: #b1182b; }
#scale span { padding: 0.1em 0.5em; }
dl { margin: 0; display: grid; grid-template-columns: auto 1fr; gap: 0.2em 0.8em; }
dt { color: #666; } dd { margin: 0; word-break: break-all; }
.muted { color: #666; font-size: 0.9em; }
</style></head>
<body>
<header><h1>Passage: the prediction after every token</h1></header>
<main>
<section id="left">
<label for="text" class="muted">Type a text; the model reads it as you type.</label>
<textarea id="text" autofocus placeholder="This movie was wonderful: a moving story."></textarea>
<div class="card"><div id="result"><span id="label">&nbsp;</span> <span id="score"></span></div>
<div id="error" role="alert"></div>
<p class="muted" id="meaning"></p>
<div id="trace" aria-live="polite"></div>
<p class="muted" id="scale"></p></div>
</section>
<aside id="right"><div class="card"><b>Model</b><dl id="meta"></dl></div></aside>
</main>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
let task = null, asked = 0, timer = null;

async function call(path, body) {
  const options = body === undefined ? {} : {method: "POST", body: JSON.stringify(body),
    headers: {"Content-Type": "application/json"}};
  const response = await fetch(path, options);
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || ("HTTP " + response.status));
  return data;
}

function ink(rgb) {
  return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2] > 140 ? "#000" : "#fff";
}

function span(text, rgb, title) {
  const s = document.createElement("span");
  s.className = "token";
  s.textContent = text;
  if (rgb) { s.style.background = "rgb(" + rgb.join(",") + ")"; s.style.color = ink(rgb); }
  if (title) s.title = title;
  return s;
}

function drawTokens(text, tokens, colourOf, titleOf) {
  const box = $("trace");
  box.textContent = "";
  let pos = 0;
  tokens.forEach((t, i) => {
    const start = t.start, word = t.token !== undefined ? t.token : t.word;
    if (start !== null && start !== undefined) {
      if (start > pos) box.appendChild(document.createTextNode(text.slice(pos, start)));
      pos = t.end;
    } else if (i > 0) {
      box.appendChild(document.createTextNode(" "));
    }
    box.appendChild(span(word, colourOf(t), titleOf(t, i)));
  });
}

function showPrediction(answer) {
  if (Array.isArray(answer)) {
    $("label").textContent = String(answer[0].label);
    $("score").textContent = answer[0].score.toFixed(3);
  } else {
    $("label").textContent = answer.value.toFixed(3);
    $("score").textContent = "";
  }
}

async function update() {
  const text = $("text").value, mine = ++asked;
  if (!text.trim()) {
    for (const id of ["label", "score", "error", "meaning", "trace", "scale"]) {
      $(id).textContent = "";
    }
    return;
  }
  try {
    if (task === "tagging") {
      const tags = await call("predict", {inputs: text});
      if (mine !== asked) return;
      $("error").textContent = ""; $("label").textContent = ""; $("score").textContent = "";
      $("meaning").textContent = "The tag of every token.";
      const tagged = tags.map((t) => Object.assign({}, t, {word: t.word + "/" + t.entity}));
      drawTokens(text, tagged, () => null, (t) => t.entity + " " + t.score.toFixed(3));
      return;
    }
    const [answer, tr] = await Promise.all([call("predict", {inputs: text}),
                                            call("trace", {inputs: text})]);
    if (mine !== asked) return;  // a newer text is on its way
    $("error").textContent = "";
    showPrediction(answer);
    $("meaning").textContent = "Colour: " + tr.meaning + " after reading up to each token" +
      (tr.one_pass ? "." : " (each prefix predicted separately).");
    drawTokens(text, tr.tokens, (t) => t.rgb,
               (t, i) => tr.meaning + " = " + t.value.toFixed(3) + " after token " + (i + 1));
    $("scale").textContent = "Scale: " + tr.scale.low.toFixed(2) + " (red) \u2013 " +
      tr.scale.center.toFixed(2) + " (white) \u2013 " + tr.scale.high.toFixed(2) + " (blue)";
  } catch (e) {
    if (mine === asked) $("error").textContent = e.message;
  }
}

async function showMetadata() {
  try {
    const m = await call("metadata");
    task = m.task;
    const rows = [["task", m.task], ["labels", (m.labels || []).join(", ") || "\u2013"],
      ["vocabulary", m.vocabulary_size.toLocaleString()],
      ["layers", m.layers.map((l) => l.layer).join(" \u2192 ")],
      ["passage", m.passage_version], ["sha256", m.model_sha256 || "\u2013"]];
    for (const [k, v] of rows) {
      const dt = document.createElement("dt"), dd = document.createElement("dd");
      dt.textContent = k; dd.textContent = v;
      $("meta").append(dt, dd);
    }
  } catch (e) {
    $("error").textContent = e.message;
  }
}

$("text").addEventListener("input", () => {
  clearTimeout(timer);
  timer = setTimeout(update, 250);
});
showMetadata().then(() => { if ($("text").value) update(); });
</script>
</body></html>
"""
