"""passage serve: every route, answer shape and error through the ASGI test client; the
micro-batcher (batches form, answers equal model.predict, a failing request is isolated, a full
queue answers 503); a real uvicorn process (start, ready, predict, SIGTERM drains, exit 0)."""

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the serve extra: pip install -e '.[serve]'")
import httpx  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from passage.io import save  # noqa: E402
from passage.recipe import TextModelOptions, fit_text_model  # noqa: E402
from passage.serve import create_app  # noqa: E402
from passage.serve.predictor import Predictor, encode  # noqa: E402
from passage.serve.requests import Limits  # noqa: E402
from passage.showcase.trace import colour, trace  # noqa: E402
from passage.tagging import Tagger  # noqa: E402

WORDS = {"pos": ["good", "great", "fun", "lovely"], "neg": ["bad", "awful", "dull", "boring"],
         "meh": ["okay", "average", "fine", "so-so"]}
# a forward GRU read at its last state: its trace takes one pass (the tests check one_pass)
TINY = TextModelOptions(size=8, embedding_size=8, n_epochs=2, min_df=1, validation_split=0.0,
                        direction="forward", pool="last", wide=False, truncate=None)


def corpus(classes, n=60, seed=0):
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for i in range(n):
        label = classes[i % len(classes)]
        words = list(rng.choice(WORDS[label], 3)) + list(rng.choice(["the", "film", "was"], 2))
        texts.append(" ".join(rng.permutation(words)))
        labels.append(label)
    return texts, labels


@pytest.fixture(scope="module")
def binary():
    return fit_text_model(*corpus(["neg", "pos"]), options=TINY)


@pytest.fixture(scope="module")
def multiclass():
    return fit_text_model(*corpus(["neg", "pos", "meh"]), options=TINY)


@pytest.fixture(scope="module")
def regression():
    texts, labels = corpus(["neg", "pos"])
    return fit_text_model(texts, [float(len(t)) / 10 for t in texts], task="regression",
                       options=TINY)


@pytest.fixture(scope="module")
def tagger():
    sentences = [["The", "cat", "sat", "."], ["A", "dog", "ran", "."]] * 15
    tags = [["DET", "NOUN", "VERB", "PUNCT"]] * 30
    return Tagger(size=8, embedding_size=8, n_epochs=3, seed=0, min_df=1).fit(sentences, tags)


@pytest.fixture(scope="module")
def model_file(binary, tmp_path_factory):
    path = tmp_path_factory.mktemp("serve") / "binary.passage"
    save(binary, path)
    return path


@pytest.fixture(scope="module")
def client(model_file):
    with TestClient(create_app(model_file)) as c:
        yield c


def no_leak(response, *secrets):
    """An error body: JSON with what is wrong, no traceback, no file path."""
    text = response.text
    assert "Traceback" not in text and 'File "' not in text and os.sep + "tmp" not in text
    for secret in secrets:
        assert str(secret) not in text
    body = response.json()
    assert set(body) == {"error", "status"} and body["status"] == response.status_code
    return body["error"]


# -- answers ----------------------------------------------------------------------------------
def test_classification_answers_in_the_hugging_face_shape(client, binary):
    texts = ["good great fun", "awful dull film"]
    expected = binary.predict(texts)[:, 0]
    one = client.post("/predict", json={"inputs": texts[0]})
    assert one.status_code == 200
    answer = one.json()
    assert [a["label"] for a in answer] == (["pos", "neg"] if expected[0] > 0.5 else
                                            ["neg", "pos"])
    by_label = {a["label"]: a["score"] for a in answer}
    assert by_label["pos"] == pytest.approx(expected[0], abs=1e-6)
    assert by_label["neg"] == pytest.approx(1 - expected[0], abs=1e-6)
    many = client.post("/predict", json={"inputs": texts, "parameters": {"top_k": 1}}).json()
    assert len(many) == 2 and all(len(a) == 1 for a in many)
    assert [a[0]["label"] for a in many] == ["pos" if p > 0.5 else "neg" for p in expected]


def test_multiclass_regression_and_tagging_answers(multiclass, regression, tagger):
    texts = ["okay fine film", "good fun", "bad dull"]
    with TestClient(create_app(multiclass)) as c:
        answers = c.post("/predict", json={"inputs": texts, "parameters": {"top_k": 2}}).json()
    proba = multiclass.predict(texts)
    classes = multiclass.extra_["classes"]
    for answer, p in zip(answers, proba, strict=True):
        best = np.argsort(-p)[:2]
        assert [a["label"] for a in answer] == [classes[i] for i in best]
        assert [a["score"] for a in answer] == pytest.approx(p[best], abs=1e-6)
    with TestClient(create_app(regression)) as c:
        value = c.post("/predict", json={"inputs": texts[0]}).json()
        values = c.post("/predict", json={"inputs": texts}).json()
    assert value == {"value": pytest.approx(float(regression.predict(texts[:1])[0, 0]), abs=1e-5)}
    assert [v["value"] for v in values] == pytest.approx(regression.predict(texts)[:, 0], abs=1e-5)
    text = "The  dog sat."
    with TestClient(create_app(tagger)) as c:
        tags = c.post("/predict", json={"inputs": text}).json()
        assert c.get("/metadata").json()["task"] == "tagging"
        refused = c.post("/trace", json={"inputs": text})
    assert [t["word"] for t in tags] == ["The", "dog", "sat", "."]
    assert [t["entity"] for t in tags] == tagger.predict([["The", "dog", "sat", "."]])[0]
    assert all(text[t["start"]:t["end"]] == t["word"] for t in tags)
    assert [t["index"] for t in tags] == [0, 1, 2, 3] and all(0 < t["score"] <= 1 for t in tags)
    assert refused.status_code == 422 and "/predict" in no_leak(refused)


def test_encoded_answers_are_the_json_of_the_answers(multiclass):
    """What a batch sends back (written straight from the probabilities) is byte for byte the
    JSON of its answers, labels escaped as JSON escapes them; NaN is refused the same way."""
    texts, labels = corpus(["neg", "pos", "meh"])
    odd = {"neg": 'not "good"', "pos": "très bien \\ 好", "meh": "meh\n"}
    model = fit_text_model(texts, [odd[y] for y in labels], options=TINY)
    for m in (multiclass, model):
        predictor = Predictor(m)
        sent = predictor.encoded(texts[:7] + ["unseen words only"])
        assert sent == [encode(a) for a in predictor.answers(texts[:7] + ["unseen words only"])]
        assert [a["label"] for a in json.loads(sent[0])] == \
            [m.extra_["classes"][i] for i in np.argsort(-m.predict(texts[:1])[0], kind="stable")]
    predictor = Predictor(model)
    predictor._outputs = lambda texts: np.full((len(texts), 3), np.nan, np.float32)
    with pytest.raises(ValueError, match="not JSON compliant"):
        predictor.encoded(["good"])


def test_trace_gives_what_passage_trace_draws(client, binary):
    text = "Good  film, but DULL!"
    response = client.post("/trace", json={"inputs": text})
    assert response.status_code == 200
    body = response.json()
    tr = trace(binary, text)
    assert [t["token"] for t in body["tokens"]] == tr.tokens
    assert [t["value"] for t in body["tokens"]] == pytest.approx(tr.values, abs=1e-6)
    for t, value in zip(body["tokens"], tr.values, strict=True):
        assert text[t["start"]:t["end"]] == t["token"]
        assert tuple(t["rgb"]) == colour(value, tr.low, tr.center, tr.high)
        assert t["label"] == ("pos" if value > 0.5 else "neg")
    assert body["meaning"] == tr.meaning and body["one_pass"] is True
    assert body["scale"] == {"low": 0.0, "center": 0.5, "high": 1.0}
    assert body["prediction"][0]["label"] == tr.final


def test_health_ready_metadata(client, model_file, binary):
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json() == {"status": "ready"}
    meta = client.get("/metadata").json()
    assert meta["model_sha256"] == hashlib.sha256(model_file.read_bytes()).hexdigest()
    assert meta["task"] == "binary" and meta["labels"] == ["neg", "pos"]
    assert meta["vocabulary_size"] == binary.tokenizer.n_features
    assert [la["layer"] for la in meta["layers"]] == ["Embedding", "GatedRecurrent", "Dense"]
    from passage import __version__
    assert meta["passage_version"] == __version__
    assert meta["limits"]["max_batch_size"] == 64
    assert str(model_file.parent) not in json.dumps(meta)


def test_page_is_self_contained(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<script" in page.text and not re.search(r"(src|href)=|https?://|@import", page.text)
    assert client.get("/openapi.json").json()["paths"].keys() >= {"/predict", "/trace"}


def test_metrics_in_prometheus_text_format(model_file):
    with TestClient(create_app(model_file)) as c:
        c.post("/predict", json={"inputs": ["good", "bad", "fun"]})
        c.post("/predict", json={"inputs": ""})
        text = c.get("/metrics")
    assert text.headers["content-type"].startswith("text/plain; version=0.0.4")
    lines = text.text.splitlines()
    samples = dict(line.rsplit(" ", 1) for line in lines if not line.startswith("#"))
    assert samples['passage_requests_total{route="/predict",status="200"}'] == "1"
    assert samples['passage_request_errors_total{route="/predict",status="422"}'] == "1"
    assert samples["passage_forward_passes_total"] == "2"  # the warm-up and the request
    assert samples["passage_texts_total"] == "4"
    assert samples['passage_batch_size_bucket{le="2"}'] == "1"
    assert samples['passage_batch_size_bucket{le="4"}'] == "2"
    assert samples['passage_batch_size_bucket{le="+Inf"}'] == "2"
    assert samples["passage_queue_depth"] == "0"
    buckets = [int(v) for k, v in samples.items()
               if k.startswith('passage_request_duration_seconds_bucket{route="/predict"')]
    assert buckets == sorted(buckets) and buckets[-1] == 2
    assert "# TYPE passage_request_duration_seconds histogram" in lines


# -- errors -----------------------------------------------------------------------------------
BAD = [
    (b'{"inputs": "unclosed', 400, "not valid JSON"),
    (b'{"inputs": "caf\xe9"}', 400, "not UTF-8"),
    (b"", 400, "no body"),
    (b'["a text"]', 422, "JSON object"),
    (b'{"text": "a"}', 422, "no 'inputs'"),
    (b'{"inputs": 3}', 422, "a string or a list of strings"),
    (b'{"inputs": ["ok", null]}', 422, "inputs[1] is null"),
    (b'{"inputs": ""}', 422, "empty"),
    (b'{"inputs": ["ok", "  "]}', 422, "inputs[1] is empty (only whitespace)"),
    (b'{"inputs": []}', 422, "empty list"),
    (b'{"inputs": "a", "extra": 1}', 422, "unknown field"),
    (b'{"inputs": "a", "parameters": {"top_k": 0}}', 422, "top_k"),
    (b'{"inputs": "a", "parameters": {"top_k": true}}', 422, "top_k"),
    (b'{"inputs": "a", "parameters": {"k": 1}}', 422, "only one is 'top_k'"),
    (b'{"inputs": "a", "parameters": [1]}', 422, "parameters is a list"),
    (b'{"inputs": "bad \\ud800 text"}', 422, "unpaired surrogate"),
    (b'[' * 100_000 + b']' * 100_000, 400, "nests too deeply"),
]


@pytest.mark.parametrize("body, status, message", BAD)
def test_bad_requests_get_a_json_error_saying_what_to_change(client, body, status, message):
    response = client.post("/predict", content=body)
    assert response.status_code == status
    assert message in no_leak(response)


def test_limits_answer_413_and_422_naming_the_flag(binary):
    limits = Limits(max_body_bytes=2000, max_texts=3, max_chars=50)
    with TestClient(create_app(binary, limits=limits)) as c:
        big = c.post("/predict", json={"inputs": ["good"] * 2000})
        chunked = c.post("/predict", content=iter([b'{"inputs": "', b"x" * 3000, b'"}']))
        many = c.post("/predict", json={"inputs": ["good"] * 4})
        long = c.post("/predict", json={"inputs": "good " * 11})
        trace_long = c.post("/trace", json={"inputs": "good " * 11})
        fine = c.post("/predict", json={"inputs": ["good"] * 3})
    assert big.status_code == 413 and "--max-body-bytes" in no_leak(big)
    assert chunked.status_code == 413 and "--max-body-bytes" in no_leak(chunked)
    assert many.status_code == 422 and "--max-texts" in no_leak(many)
    assert long.status_code == 422 and "55 characters" in no_leak(long)
    assert trace_long.status_code == 422 and "--max-chars" in no_leak(trace_long)
    assert fine.status_code == 200


def test_routing_errors_and_wrong_trace_inputs_are_json(client):
    assert client.get("/nowhere").status_code == 404
    assert "GET is not allowed" in no_leak(client.get("/predict"))
    listed = client.post("/trace", json={"inputs": ["a", "b"]})
    assert listed.status_code == 422 and "one text" in no_leak(listed)
    no_tokens = client.post("/trace", json={"inputs": "   ."})
    assert no_tokens.status_code == 200  # '.' is a token
    empty = client.post("/trace", json={"inputs": " "})
    assert empty.status_code == 422


def test_an_internal_error_shows_no_details(model_file, tmp_path):
    app = create_app(model_file)
    secret = str(tmp_path / "secret" / "weights.npy")

    def broken(texts):
        raise RuntimeError(f"cannot open {secret}")

    with TestClient(app, raise_server_exceptions=False) as c:
        app.state.batcher.run = broken
        response = c.post("/predict", json={"inputs": "good"})
        traced = c.post("/predict", json={"inputs": "good"})
    assert response.status_code == 500 and traced.status_code == 500
    assert "internal error" in no_leak(response, secret, "RuntimeError")


def test_auth_and_cors(binary):
    headers = {"Origin": "http://elsewhere.example"}
    with TestClient(create_app(binary, api_key="s3cret")) as c:
        assert c.get("/health", headers=headers).status_code == 200
        assert "access-control-allow-origin" not in c.get("/health", headers=headers).headers
        for method, route in [("post", "/predict"), ("post", "/trace"), ("get", "/"),
                              ("get", "/metadata"), ("get", "/metrics"), ("get", "/ready"),
                              ("get", "/openapi.json")]:
            call = getattr(c, method)
            refused = call(route)
            assert refused.status_code == 401, route
            assert refused.headers["www-authenticate"] == "Bearer"
            assert "Authorization: Bearer" in no_leak(refused, "s3cret")
            wrong = call(route, headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401
        ok = c.post("/predict", json={"inputs": "good"},
                    headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200
    with TestClient(create_app(binary, cors_origins=["http://elsewhere.example"])) as c:
        allowed = c.get("/health", headers=headers)
        assert allowed.headers["access-control-allow-origin"] == "http://elsewhere.example"


def test_startup_fails_fast_on_a_bad_model_file(tmp_path, capsys):
    from passage.cli import main

    broken = tmp_path / "broken.passage"
    broken.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(FileNotFoundError, match="no model file"):
        create_app(tmp_path / "missing.passage")
    with pytest.raises(ValueError, match="not a readable Passage model file"):
        create_app(broken)
    with pytest.raises(TypeError, match="text classifiers, regressors and taggers"):
        create_app(object())
    for path in (tmp_path / "missing.passage", broken):
        assert main(["serve", str(path), "--port", "0"]) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith("passage serve: error: ") and "\n" not in err


# -- batching ---------------------------------------------------------------------------------
class Gate:
    """Wraps the batcher's run: the first call waits until ``open()``; every call is recorded."""

    def __init__(self, app, fail_on=None):
        self.batcher, self.real = app.state.batcher, app.state.batcher.run
        self.calls, self.event, self.fail_on = [], threading.Event(), fail_on
        self.entered = threading.Event()
        self.batcher.run = self

    def __call__(self, texts):
        self.calls.append(list(texts))
        if len(self.calls) == 1:
            self.entered.set()
            assert self.event.wait(20)
        if self.fail_on is not None and self.fail_on in texts:
            raise ValueError("this text breaks the model")
        return self.real(texts)

    def wait_depth(self, n):
        """Wait until the first batch runs (n=0) or n texts are queued behind it."""
        if n == 0:
            assert self.entered.wait(20)
            return
        deadline = time.monotonic() + 20
        while self.batcher.depth < n and time.monotonic() < deadline:
            time.sleep(0.005)
        assert self.batcher.depth == n

    def open(self):
        self.event.set()


def post_all(c, bodies, started=None):
    """Post each body from its own thread, in order (each one queued before the next)."""
    results = [None] * len(bodies)

    def send(i):
        results[i] = c.post("/predict", json=bodies[i])

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(bodies))]
    for i, t in enumerate(threads):
        t.start()
        if started is not None:
            started(i)
    return threads, results


def test_concurrent_requests_share_forward_passes(binary):
    texts = [f"{a} {b} film" for a in ("good", "bad", "dull", "fun") for b in ("great", "awful",
                                                                              "the")]
    app = create_app(binary, max_batch_size=64, max_wait_ms=0, workers=1)
    with TestClient(app) as c:
        gate = Gate(app)
        threads, results = post_all(c, [{"inputs": t} for t in texts],
                                    gate.wait_depth)
        gate.wait_depth(len(texts) - 1)
        health_began = time.monotonic()
        assert c.get("/health").status_code == 200  # the event loop is free while a batch runs
        assert time.monotonic() - health_began < 5
        gate.open()
        for t in threads:
            t.join(20)
    assert [sorted(call) for call in gate.calls] == [texts[:1], sorted(texts[1:])]
    for text, response in zip(texts, results, strict=True):
        alone = float(binary.predict([text])[0, 0])
        assert {a["label"]: a["score"] for a in response.json()}["pos"] == pytest.approx(
            alone, abs=1e-6)


def test_batches_respect_max_batch_size_and_a_full_queue_answers_503(binary):
    app = create_app(binary, max_batch_size=2, max_wait_ms=0, max_queue=3, workers=1)
    with TestClient(app) as c:
        gate = Gate(app)
        bodies = [{"inputs": "good"}, {"inputs": ["bad", "dull"]}, {"inputs": "fun"}]
        threads, results = post_all(c, bodies, lambda i: gate.wait_depth([0, 2, 3][i]))
        full = c.post("/predict", json={"inputs": "lovely"})
        gate.open()
        for t in threads:
            t.join(20)
    assert full.status_code == 503 and full.headers["retry-after"] == "1"
    assert "retry" in no_leak(full)
    assert [r.status_code for r in results] == [200, 200, 200]
    assert gate.calls == [["good"], ["bad", "dull"], ["fun"]]


def test_one_bad_request_does_not_fail_its_batch(binary):
    app = create_app(binary, max_wait_ms=0, workers=1)
    with TestClient(app, raise_server_exceptions=False) as c:
        gate = Gate(app, fail_on="poison")
        bodies = [{"inputs": "good"}, {"inputs": "fun"}, {"inputs": ["poison", "x"]},
                  {"inputs": "bad"}]
        threads, results = post_all(c, bodies, lambda i: gate.wait_depth([0, 1, 3, 4][i]))
        gate.open()
        for t in threads:
            t.join(20)
    assert [r.status_code for r in results] == [200, 200, 500, 200]
    assert gate.calls[1] == ["fun", "poison", "x", "bad"]  # shared, failed, then one by one
    assert sorted(map(tuple, gate.calls[2:])) == [("bad",), ("fun",), ("poison", "x")]
    assert "this text breaks" not in results[2].text


def test_the_server_shortens_the_gil_switch_interval_while_it_serves(monkeypatch):
    """Batch threads get the GIL from a busy event loop within 1 ms (not Python's 5), and the
    interval is put back when the server returns."""
    import uvicorn

    from passage.serve import server

    seen = []
    monkeypatch.setattr(uvicorn.Server, "run",
                        lambda self, sockets=None: seen.append(sys.getswitchinterval()))
    before = sys.getswitchinterval()
    server.run(lambda scope, receive, send: None, port=0, log_level="warning")
    assert seen == [pytest.approx(server.SWITCH_SECONDS)]
    assert sys.getswitchinterval() == before != server.SWITCH_SECONDS


# -- a real server process ------------------------------------------------------------------
def test_a_real_server_starts_predicts_and_drains_on_sigterm(model_file, binary):
    proc = subprocess.Popen([sys.executable, "-m", "passage.cli", "serve", str(model_file),
                             "--port", "0", "--max-wait-ms", "0"], stderr=subprocess.PIPE,
                            text=True)
    try:
        line = proc.stderr.readline()
        port = int(re.search(r"http://127\.0\.0\.1:(\d+)", line).group(1))
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/ready", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        texts = ["good fun film", "awful dull"]
        answer = httpx.post(url + "/predict", json={"inputs": texts}, timeout=10).json()
        expected = binary.predict(texts)[:, 0]
        assert [{a["label"]: a["score"] for a in x}["pos"] for x in answer] == pytest.approx(
            expected, abs=1e-6)
        slow = {"inputs": ["good film " * 4000] * 100}  # takes a while, even for a tiny model
        results = []
        sender = threading.Thread(target=lambda: results.append(
            httpx.post(url + "/predict", json=slow, timeout=60)))
        began = time.monotonic()
        sender.start()
        time.sleep(0.3)
        with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as f:
            workers = [int(p) for p in f.read().split()]
        assert len(workers) >= 1  # the batches run in worker processes
        proc.send_signal(signal.SIGTERM)
        sender.join(60)
        assert proc.wait(30) == 0
        for pid in workers:  # none outlives the server
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
        assert time.monotonic() - began > 0.3
        assert results and results[0].status_code == 200 and len(results[0].json()) == 100
        with pytest.raises(httpx.TransportError):
            httpx.get(url + "/health", timeout=2)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()


def test_the_app_mounted_in_another_asgi_app_answers_under_its_prefix(binary):
    from starlette.applications import Starlette
    from starlette.routing import Mount

    parent = Starlette(routes=[Mount("/sentiment", app=create_app(binary, max_wait_ms=0))])
    with TestClient(parent) as c:
        inner = parent.routes[0].app
        with TestClient(inner):  # Starlette runs no mounted app's lifespan: this starts it
            answer = c.post("/sentiment/predict", json={"inputs": "good fun"})
            assert answer.status_code == 200
            assert {a["label"] for a in answer.json()} == {"pos", "neg"}
            assert c.get("/sentiment/health").json() == {"status": "ok"}
            assert c.get("/predict").status_code == 404  # nothing outside the prefix
            metrics = c.get("/sentiment/metrics").text
    assert 'passage_requests_total{route="/predict",status="200"} 1' in metrics
