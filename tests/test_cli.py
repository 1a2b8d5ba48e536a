"""The ``passage`` command line, end to end on small files written into tmp_path."""

import csv
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from passage.cli import main
from passage.files import open_text
from passage.io import load

TINY = ["--size", "8", "--embedding-size", "8", "--min-df", "1", "--epochs", "2", "--quiet"]
CLASSES = ["neg", "mid", "pos"]
FILLER = "the a movie plot was it and this film story".split()


def make_rows(n=90, seed=0):
    """Texts whose class word decides the label; 'score' is a noisy number for regression."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        k = int(rng.integers(0, 3))
        words = list(rng.choice(FILLER, size=4)) + [["awful", "okay", "great"][k]]
        rng.shuffle(words)
        rows.append({"text": " ".join(words), "label": CLASSES[k], "bin": int(k == 2),
                     "score": round(2.5 * k + float(rng.uniform()), 3)})
    return rows


def write_data(path, rows):
    """Write rows as CSV, TSV or JSON lines (gzip when the name ends in .gz)."""
    name = str(path)
    base = name[:-3] if name.endswith(".gz") else name
    with open_text(name, "wt", newline="") as f:
        if base.endswith(".jsonl"):
            for row in rows:
                f.write(json.dumps(row) + "\n")
        else:
            writer = csv.DictWriter(f, list(rows[0]), delimiter="\t" if base.endswith(".tsv")
                                    else ",")
            writer.writeheader()
            writer.writerows(rows)
    return name


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("ext, label, task", [
    ("csv", "bin", "binary"),
    ("tsv", "label", "multiclass"),
    ("jsonl", "score", "regression"),
    ("csv.gz", "label", "multiclass"),
    ("jsonl.gz", "bin", "binary"),
])
def test_train_predict_evaluate(tmp_path, capsys, ext, label, task):
    rows = make_rows()
    data = write_data(tmp_path / f"data.{ext}", rows)
    model_path = str(tmp_path / "m.passage")
    assert main(["train", data, "--label-column", label, "--out", model_path, *TINY]) == 0
    model = load(model_path)
    assert model.extra_["task"] == task and model.extra_["label_column"] == label

    out = str(tmp_path / "pred.csv")
    assert main(["predict", model_path, data, "--out", out]) == 0
    pred = read_csv(out)
    assert [int(r["index"]) for r in pred] == list(range(len(rows)))
    if task == "regression":
        assert list(pred[0]) == ["index", "prediction"]
        assert all(np.isfinite(float(r["prediction"])) for r in pred)
    else:
        classes = model.extra_["classes"]
        assert list(pred[0]) == ["index", "prediction", "probability"] + [f"p_{c}" for c in
                                                                          classes]
        for r in pred:
            assert r["prediction"] in {str(c) for c in classes}
            p = [float(r[f"p_{c}"]) for c in classes]
            assert sum(p) == pytest.approx(1, abs=1e-4)
            assert float(r["probability"]) == pytest.approx(max(p), abs=1e-6)

    capsys.readouterr()
    assert main(["evaluate", model_path, data, "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["examples"] == len(rows)
    expected = {"binary": {"accuracy", "f1_macro", "roc_auc"},
                "multiclass": {"accuracy", "f1_macro"}, "regression": {"rmse", "mae", "r2"}}
    assert expected[task] <= set(scores)


def test_multiclass_string_labels_come_back(tmp_path, capsys):
    """Class names survive the model file; a model that learned predicts the original labels."""
    rows = make_rows(120)
    data = write_data(tmp_path / "data.csv", rows)
    model_path = str(tmp_path / "m.passage")
    assert main(["train", data, "--out", model_path, "--size", "16", "--embedding-size", "16",
                 "--min-df", "1", "--epochs", "12", "--lr", "0.02", "--patience", "4",
                 "--quiet"]) == 0
    assert load(model_path).extra_["classes"] == ["mid", "neg", "pos"]
    assert main(["predict", model_path, data, "--out", str(tmp_path / "p.csv")]) == 0
    predicted = [r["prediction"] for r in read_csv(tmp_path / "p.csv")]
    truth = [r["label"] for r in rows]
    assert np.mean(np.array(predicted) == np.array(truth)) > 0.8
    capsys.readouterr()
    assert main(["evaluate", model_path, data]) == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and "f1_macro" in out


def test_predict_to_stdout_with_the_saved_text_column(tmp_path, capsys):
    rows = [{"body": r["text"], "y": r["bin"]} for r in make_rows(40)]
    data = write_data(tmp_path / "d.jsonl", rows)
    model_path = str(tmp_path / "m.passage")
    assert main(["train", data, "--text-column", "body", "--label-column", "y",
                 "--out", model_path, *TINY]) == 0
    capsys.readouterr()
    assert main(["predict", model_path, data]) == 0  # no --text-column: 'body' from the model
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "index,prediction,probability,p_0,p_1" and len(lines) == 41


def test_train_prints_a_summary(tmp_path, capsys):
    data = write_data(tmp_path / "d.csv", make_rows(40))
    args = [a for a in TINY if a != "--quiet"]
    assert main(["train", data, "--out", str(tmp_path / "m.passage"), *args]) == 0
    out = capsys.readouterr().out
    assert "task: 3 classes" in out and "kept epoch" in out and "saved model to" in out


def test_train_with_bf16_precision_keeps_it_in_the_model(tmp_path):
    data = write_data(tmp_path / "d.csv", make_rows(40))
    out = str(tmp_path / "m.passage")
    assert main(["train", data, "--out", out, "--precision", "bf16", *TINY]) == 0
    assert load(out).precision == "bf16"


@pytest.fixture
def files(tmp_path):
    rows = make_rows(30)
    good = write_data(tmp_path / "good.csv", rows)
    model_path = str(tmp_path / "m.passage")
    assert main(["train", good, "--out", model_path, *TINY]) == 0
    (tmp_path / "ragged.csv").write_text('text,label\n"a, b",pos\nc,neg,extra\n')
    (tmp_path / "quote.csv").write_text('text,label\n"a b,pos\n')
    (tmp_path / "bad.jsonl").write_text('{"text": "a", "label": 1}\n{"text": oops}\n')
    (tmp_path / "array.jsonl").write_text('["a", 1]\n')
    (tmp_path / "nolabel.csv").write_text("text,label\na,pos\nb,\n")
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "notes.txt").write_text("text,label\n")
    (tmp_path / "fake.csv.gz").write_text("text,label\n")
    (tmp_path / "latin1.csv").write_bytes("text,label\ncaf\xe9,pos\n".encode("latin-1"))
    (tmp_path / "other.csv").write_text("text,label\na,zzz\n")
    return tmp_path, good, model_path


ERRORS = [
    (["train", "missing.csv", "--out", "{d}/m2.passage"], "no data file at"),
    (["train", "{good}", "--text-column", "review", "--out", "{d}/m2.passage"],
     "has no column 'review'; its columns are 'text', 'label'"),
    (["train", "{d}/ragged.csv", "--out", "{d}/m2.passage"], "line 3 has 3 fields"),
    (["train", "{d}/quote.csv", "--out", "{d}/m2.passage"], "malformed CSV"),
    (["train", "{d}/bad.jsonl", "--out", "{d}/m2.passage"], "line 2 is not valid JSON"),
    (["train", "{d}/array.jsonl", "--out", "{d}/m2.passage"], "not an object"),
    (["train", "{d}/nolabel.csv", "--out", "{d}/m2.passage"], "line 3: empty label"),
    (["train", "{d}/empty.csv", "--out", "{d}/m2.passage"], "is empty"),
    (["train", "{d}/notes.txt", "--out", "{d}/m2.passage"], "cannot tell the format"),
    (["train", "{d}/fake.csv.gz", "--out", "{d}/m2.passage"], "not a readable gzip file"),
    (["train", "{d}/latin1.csv", "--out", "{d}/m2.passage"], "is not UTF-8"),
    (["train", "{good}", "--out", "{d}/nowhere/m.passage"], "does not exist"),
    (["train", "{good}", "--task", "binary", "--out", "{d}/m2.passage"],
     "needs exactly 2 different labels, found 3"),
    (["train", "{good}", "--task", "regression", "--out", "{d}/m2.passage"],
     "regression needs numeric labels"),
    (["predict", "{d}/missing.passage", "{good}"], "no model file at"),
    (["predict", "{good}", "{good}"], "not a readable Passage model file"),
    (["evaluate", "{model}", "{d}/other.csv"], "label 'zzz' (text 1) is not one of"),
    (["embeddings", "{model}", "{good}", "--out", "{d}/e.png"], "needs a binary or regression"),
    (["trace", "{model}"], "no text to trace"),
    (["trace", "{model}", "...."], None),  # punctuation only is still tokens: works
    (["trace", "{model}", "   "], "no tokens"),
    (["showdown", "{good}", "--test-fraction", "0.001"], "leaves no test"),
]


@pytest.mark.parametrize("argv, message", ERRORS)
def test_errors_are_one_clear_line(files, capsys, argv, message):
    d, good, model_path = files
    argv = [a.format(d=d, good=good, model=model_path) for a in argv]
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err
    if message is None:
        assert code == 0
        return
    assert code == 1
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], err
    assert lines[0].startswith(f"passage {argv[0]}: error: ")
    assert "Traceback" not in err


@pytest.mark.parametrize("argv", [
    [],
    ["frobnicate"],
    ["train", "data.csv"],  # --out is required
    ["train", "data.csv", "--out", "m", "--epochs", "0"],
    ["train", "data.csv", "--out", "m", "--validation-split", "1.5"],
    ["train", "data.csv", "--out", "m", "--layer", "transformer"],
    ["train", "data.csv", "--out", "m", "--lr", "-1"],
    ["showdown", "data.csv", "--sizes", "0"],
    ["showdown", "data.csv", "--test", "t.csv", "--test-fraction", "0.2"],
    ["trace", "m", "text", "--color", "sometimes"],
])
def test_bad_arguments_exit_2(capsys, argv):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    assert "usage: passage" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["train", "predict", "evaluate", "showdown", "embeddings",
                                     "trace"])
def test_help_everywhere(capsys, command):
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0
    assert f"usage: passage {command}" in capsys.readouterr().out


def test_real_processes(tmp_path):
    """The module and the installed console script run as programs; errors have no traceback."""
    result = subprocess.run([sys.executable, "-m", "passage.cli", "--help"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0
    for command in ("train", "predict", "evaluate", "showdown", "embeddings", "trace"):
        assert command in result.stdout
    script = shutil.which("passage")
    argv = [script] if script else [sys.executable, "-m", "passage.cli"]
    result = subprocess.run([*argv, "predict", str(tmp_path / "nope.passage"), "x.csv"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and "no model file at" in result.stderr
    assert "Traceback" not in result.stderr


def test_showdown_embeddings_trace_commands(tmp_path, capsys):
    rows = make_rows(90)
    data = write_data(tmp_path / "d.csv", rows)
    png, table = str(tmp_path / "curve.png"), str(tmp_path / "table.json")
    assert main(["showdown", data, "--label-column", "bin", "--sizes", "30", "60", "--size", "8",
                 "--embedding-size", "8", "--epochs", "1", "--min-df", "1", "--png", png,
                 "--json", table, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "| training texts | model | test accuracy | seconds |" in out
    results = json.loads(open(table).read())
    assert [(r["size"], r["model"]) for r in results] == [
        (30, "tfidf+logreg"), (30, "rnn-gru"), (60, "tfidf+logreg"), (60, "rnn-gru")]
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"

    model_path = str(tmp_path / "m.passage")
    assert main(["train", data, "--label-column", "bin", "--out", model_path, *TINY]) == 0
    emb = str(tmp_path / "emb.png")
    assert main(["embeddings", model_path, data, "--out", emb, "--words", "12", "--labels",
                 "5", "--quiet"]) == 0
    assert open(emb, "rb").read(8) == b"\x89PNG\r\n\x1a\n"

    html_path, trace_png = str(tmp_path / "t.html"), str(tmp_path / "t.png")
    capsys.readouterr()
    assert main(["trace", model_path, "the movie was great", "--html", html_path,
                 "--png", trace_png, "--color", "always"]) == 0
    out = capsys.readouterr().out
    assert "\x1b[48;2;" in out and "great" in out
    assert "great</span>" in open(html_path, encoding="utf-8").read()
    assert open(trace_png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    text_file = tmp_path / "review.txt"
    text_file.write_text("awful plot", encoding="utf-8")
    assert main(["trace", model_path, "--file", str(text_file), "--color", "never"]) == 0
    assert "awful[" in capsys.readouterr().out
