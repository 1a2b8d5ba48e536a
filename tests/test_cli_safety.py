"""The command line never destroys a user's file, never shows a traceback, and reads real files:
outputs over inputs, the data file formats, missing labels, long fields, hostile model files,
--monitor, --keep, the recipe options; and a property-based fuzz of malformed data files and
command lines."""

import csv
import hashlib
import json
import os
import zipfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_cli import TINY
from test_cli import make_rows as cli_rows

from passage.cli import main
from passage.cli import train as cli_train
from passage.cli.tables import read_data, read_table
from passage.io import load


def make_rows(n=60, seed=0):
    """test_cli's rows as a binary task, with an id column to keep."""
    return [{"id": f"r{i}", "text": r["text"], "label": r["bin"], "score": r["score"]}
            for i, r in enumerate(cli_rows(n, seed))]


def write_csv(path, rows):
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return str(path)


def digest(*paths):
    return {str(p): hashlib.sha256(open(p, "rb").read()).hexdigest() for p in paths}


def one_error_line(capsys, command):
    """The single error line on stderr (checked: one line, ends in a newline, no traceback)."""
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    assert err.endswith("\n"), repr(err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"passage {command}: error: "), err
    return lines[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A data file and a tiny binary model trained on it (shared: read-only for the tests)."""
    d = tmp_path_factory.mktemp("trained")
    data = write_csv(d / "data.csv", make_rows())
    model = str(d / "m.passage")
    assert main(["train", data, "--out", model, *TINY]) == 0
    return d, data, model


@pytest.fixture
def work(tmp_path, trained):
    """Private copies of the shared data and model."""
    _, data, model = trained
    mine_data, mine_model = tmp_path / "in.csv", tmp_path / "m.passage"
    mine_data.write_bytes(open(data, "rb").read())
    mine_model.write_bytes(open(model, "rb").read())
    return tmp_path, str(mine_data), str(mine_model)


# -- outputs over inputs ----------------------------------------------------------------------
OVERWRITES = [
    (["train", "{data}", "--out", "{data}", *TINY], "the data file"),
    (["predict", "{model}", "{data}", "--out", "{data}"], "the data file"),
    (["predict", "{model}", "{data}", "--out", "{model}"], "the model file"),
    (["trace", "{model}", "great movie", "--html", "{model}"], "the model file"),
    (["trace", "{model}", "--file", "{data}", "--png", "{data}"], "the text file"),
    (["evaluate", "{model}", "{data}"], None),  # writes nothing: runs
    (["embeddings", "{model}", "{data}", "--out", "{data}"], "the data file"),
    (["showdown", "{data}", "--png", "{data}", "--sizes", "20"], "the data file"),
    (["showdown", "{other}", "--test", "{data}", "--json", "{data}"], "the test file"),
    (["trace", "{model}", "great", "--html", "{d}/x.html", "--png", "{d}/x.html"], "same file"),
]


@pytest.mark.parametrize("argv, message", OVERWRITES)
@pytest.mark.parametrize("how", ["same path", "symlink", "hard link"])
def test_writing_over_an_input_is_refused_and_it_stays_intact(work, capsys, argv, message,
                                                              how):
    d, data, model = work
    other = write_csv(d / "other.csv", make_rows(30, seed=1))
    alias = {"same path": lambda p: p, "symlink": os.symlink, "hard link": os.link}[how]

    def out_name(path):  # the output argument names the input through an alias
        if how == "same path":
            return path
        link = str(d / f"alias-{os.path.basename(path)}")
        if not os.path.lexists(link):
            alias(path, link)
        return link

    before = digest(data, model, other)
    filled = []
    for i, a in enumerate(argv):
        value = a.format(d=d, data=data, model=model, other=other)
        if i and argv[i - 1] in ("--out", "--html", "--png", "--json") and value in before:
            value = out_name(value)
        filled.append(value)
    code = main(filled)
    if message is None:
        assert code == 0
        return
    assert code == 1
    line = one_error_line(capsys, argv[0])
    assert message in line and ("refusing to write" in line or "same file" in line), line
    assert digest(data, model, other) == before  # nothing was written, nothing was lost
    assert not os.path.exists(d / "x.html")


def test_a_refused_output_is_refused_before_any_work(work, capsys, monkeypatch):
    d, data, model = work
    monkeypatch.setattr(cli_train, "fit_recipe", lambda *a, **k: pytest.fail("trained anyway"))
    assert main(["train", data, "--out", data, *TINY]) == 1
    assert "refusing to write --out" in one_error_line(capsys, "train")


def test_an_unwritable_folder_is_refused_before_any_work(work, capsys, monkeypatch):
    d, data, model = work
    real_access = os.access
    target = str(d / "ro")
    os.mkdir(target)
    monkeypatch.setattr(os, "access", lambda p, mode: False if os.path.abspath(p) == target
                        else real_access(p, mode))
    monkeypatch.setattr(cli_train, "fit_recipe", lambda *a, **k: pytest.fail("trained anyway"))
    assert main(["train", data, "--out", f"{target}/m.passage", *TINY]) == 1
    assert "no permission" in one_error_line(capsys, "train")


# -- data files -------------------------------------------------------------------------
def test_read_table_formats(tmp_path):
    tsv = tmp_path / "d.tsv"
    tsv.write_text('\ufefftext\tlabel\n"she said ""hi"", then left"\t1\n\nplain\t0\n',
                   encoding="utf-8")
    assert read_table(tsv, "text", "label") == (['she said "hi", then left', "plain"],
                                                ["1", "0"])
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text('{"text": "a", "y": 2.5}\n\n{"text": "b", "y": 3}\n')
    assert read_table(jsonl, "text", "y") == (["a", "b"], [2.5, 3])
    assert read_table(jsonl, "text") == (["a", "b"], None)
    jsonl.write_text('{"text": "a", "y": 1}\n{"body": "b", "y": 2}\n')
    with pytest.raises(ValueError, match="line 2 has no key 'text'"):
        read_table(jsonl, "text", "y")
    jsonl.write_text('{"text": 5, "y": 1}\n')
    with pytest.raises(ValueError, match="not a string"):
        read_table(jsonl, "text", "y")


# -- missing labels -----------------------------------------------------------------------
@pytest.mark.parametrize("cell", ["NA", "NaN", "n/a", " NULL ", "None", "", "nan"])
def test_a_missing_label_never_becomes_a_class(tmp_path, capsys, cell):
    rows = make_rows(40)
    for i in (3, 17, 25):
        rows[i]["label"] = cell
    data = write_csv(tmp_path / "d.csv", rows)
    out = str(tmp_path / "m.passage")
    assert main(["train", data, "--out", out, *TINY]) == 1
    line = one_error_line(capsys, "train")
    # data lines are file lines 2..: row i is on line i + 2
    assert "line 5:" in line and "2 more without a label: line(s) 19, 27" in line, line
    assert "--drop-missing" in line and not os.path.exists(out)

    assert main(["train", data, "--out", out, "--drop-missing", *TINY]) == 0
    err = capsys.readouterr().err
    assert "dropped 3 row(s)" in err and "line(s) 5, 19, 27" in err
    model = load(out)
    assert model.extra_["task"] == "binary" and model.extra_["classes"] == ["0", "1"]


def test_a_regression_file_with_one_na_is_not_a_classifier(tmp_path, capsys):
    rows = [{"text": r["text"], "y": r["score"] + i / 100} for i, r in enumerate(make_rows(40))]
    rows[7]["y"] = "NA"
    data = write_csv(tmp_path / "d.csv", rows)
    out = str(tmp_path / "m.passage")
    assert main(["train", data, "--label-column", "y", "--out", out, *TINY]) == 1
    assert "line 9: missing label 'NA'" in one_error_line(capsys, "train")
    assert main(["train", data, "--label-column", "y", "--out", out, "--drop-missing",
                 *TINY]) == 0
    assert load(out).extra_["task"] == "regression"


def test_missing_labels_in_json_lines(tmp_path):
    path = tmp_path / "d.jsonl"
    lines = [{"text": "a", "label": 1}, {"text": "b", "label": None},
             {"text": "c", "label": "N/A"}, {"text": "d", "label": 0}]
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    with pytest.raises(ValueError, match=r"line 2: empty label .* line\(s\) 3\)"):
        read_table(path, "text", "label")
    table = read_data(path, "text", "label", drop_missing=True)
    assert table.texts == ["a", "d"] and table.labels == [1, 0] and table.dropped == [2, 3]
    with pytest.raises(ValueError, match="none of its 4 rows has a label"):
        path.write_text('{"text": "a", "label": "NA"}\n' * 4)
        read_table(path, "text", "label", drop_missing=True)


def test_evaluate_refuses_or_drops_missing_labels(work, capsys):
    d, data, model = work
    rows = make_rows(20, seed=3)
    rows[4]["label"] = "none"
    bad = write_csv(d / "bad.csv", rows)
    assert main(["evaluate", model, bad]) == 1
    assert "line 6: missing label 'none'" in one_error_line(capsys, "evaluate")
    assert main(["evaluate", model, bad, "--drop-missing", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["examples"] == 19


# -- long fields ------------------------------------------------------------------------------
@pytest.mark.parametrize("ext", ["csv", "tsv"])
def test_a_field_longer_than_the_csv_default_limit_is_read(work, capsys, ext):
    d, data, model = work
    long_text = " ".join(["great" * 200] * 200)  # 200,199 characters > 131,072
    path = d / f"long.{ext}"
    sep = "\t" if ext == "tsv" else ","
    path.write_text(f"id{sep}text\n1{sep}awful plot\n2{sep}\"{long_text}\"\n", encoding="utf-8")
    limit = csv.field_size_limit()
    out = str(d / "pred.csv")
    assert main(["predict", model, str(path), "--out", out, "--keep", "id"]) == 0
    assert csv.field_size_limit() == limit  # the process-wide setting is put back
    rows = list(csv.DictReader(open(out, encoding="utf-8")))
    assert [r["id"] for r in rows] == ["1", "2"]
    texts, _ = read_table(path, "text")
    assert len(texts[1]) == len(long_text)


# -- no traceback, ever -----------------------------------------------------------------------
def rewrite_config(src, dst, change):
    """A copy of model file src whose passage.json went through change(meta)."""
    with zipfile.ZipFile(src) as z:
        members = {n: z.read(n) for n in z.namelist()}
    meta = json.loads(members["passage.json"])
    change(meta)
    members["passage.json"] = json.dumps(meta).encode() if not isinstance(meta, bytes) else meta
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as z:
        for name, payload in members.items():
            z.writestr(name, payload)
    return str(dst)


HOSTILE = {
    "3 classes on 1 output": lambda m: m["extra"].update(task="multiclass",
                                                         classes=["a", "b", "c"]),
    "binary with 3 names": lambda m: m["extra"].update(classes=["a", "b", "c"]),
    "classes not a list": lambda m: m["extra"].update(classes="ab"),
    "repeated classes": lambda m: m["extra"].update(classes=["1", 1]),
    "extra a list": lambda m: m.update(extra=[1, 2]),
    "text column a number": lambda m: m["extra"].update(text_column=5),
    "absurd layer size": lambda m: m["model"]["layers"][1]["config"].update(size=10**15),
    "negative layer size": lambda m: m["model"]["layers"][2]["config"].update(size=-3),
    "unknown layer": lambda m: m["model"]["layers"][1].update(layer="os.system"),
    "no tokenizer": lambda m: m.update(tokenizer=None),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
@pytest.mark.parametrize("command", ["predict", "evaluate", "trace"])
def test_hostile_model_files_give_one_line(work, capsys, case, command):
    d, data, model = work
    bad = rewrite_config(model, d / "bad.passage", HOSTILE[case])
    out = str(d / "pred.csv")
    argv = {"predict": ["predict", bad, data, "--out", out], "evaluate": ["evaluate", bad, data],
            "trace": ["trace", bad, "great movie"]}[command]
    before = digest(data, bad)
    assert main(argv) == 1
    one_error_line(capsys, command)
    assert not os.path.exists(out) and digest(data, bad) == before


def test_a_deeply_nested_config_gives_one_line(work, capsys):
    d, data, model = work
    with zipfile.ZipFile(model) as z:
        members = {n: z.read(n) for n in z.namelist()}
    text = members["passage.json"].decode()
    members["passage.json"] = text.replace('"extra": {', '"extra": {"deep": ' + "[" * 100_000 +
                                           "]" * 100_000 + ", ").encode()
    bad = str(d / "deep.passage")
    with zipfile.ZipFile(bad, "w", zipfile.ZIP_DEFLATED) as z:
        for name, payload in members.items():
            z.writestr(name, payload)
    assert main(["predict", bad, data, "--out", str(d / "p.csv")]) == 1
    one_error_line(capsys, "predict")


@pytest.mark.parametrize("error", [RuntimeError("boom"), RecursionError("too deep"),
                                   MemoryError(), AttributeError("x"), IndexError("i"),
                                   ZeroDivisionError("z"), ValueError("a" * 5000)])
def test_any_error_is_one_line_and_traceback_shows_it(work, capsys, monkeypatch, error):
    d, data, model = work

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(cli_train, "load_model", fail)
    assert main(["predict", model, data]) == 1
    line = one_error_line(capsys, "predict")
    assert len(line) < 1100
    if isinstance(error, MemoryError):
        assert "out of memory" in line
    elif not isinstance(error, ValueError):
        assert type(error).__name__ in line and "--traceback" in line
    assert main(["--traceback", "predict", model, data]) == 1
    assert "Traceback" in capsys.readouterr().err


# -- --monitor ------------------------------------------------------------------------------
def spy_fit(monkeypatch):
    """Record the keyword arguments of every RNN.fit call (the real fit still runs)."""
    from passage.models import RNN

    calls, real = [], RNN.fit

    def fit(self, *args, **kwargs):
        calls.append(kwargs)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(RNN, "fit", fit)
    return calls


# auto on these 60 texts (6 held out): the cost, as on any split under MIN_FOR_METRIC texts
# (tests/test_recipe.py: accuracy from MIN_FOR_METRIC held-out texts up)
@pytest.mark.parametrize("label, flag, expected", [
    ("label", None, "cost"), ("score", None, "cost"), ("label", "accuracy", "accuracy"),
    ("score", "r2", "r2"), ("label", "roc_auc", "roc_auc"), ("score", "mae", "mae"),
    ("label", "cost", "cost")])
def test_monitor_picks_the_score_early_stopping_keeps(work, capsys, monkeypatch, label, flag,
                                                      expected):
    d, data, model = work
    calls = spy_fit(monkeypatch)
    out = str(d / "m2.passage")
    argv = ["train", data, "--label-column", label, "--out", out,
            *[a for a in TINY if a != "--quiet"]]
    if label == "score":
        argv += ["--task", "regression"]
    assert main(argv + (["--monitor", flag] if flag else [])) == 0
    assert calls[-1]["monitor"] == expected
    assert f"by validation {expected}" in capsys.readouterr().out


def test_monitor_that_the_task_lacks_is_refused_before_training(work, capsys, monkeypatch):
    d, data, model = work
    calls = spy_fit(monkeypatch)
    out = str(d / "m2.passage")
    assert main(["train", data, "--out", out, "--monitor", "r2", *TINY]) == 1
    line = one_error_line(capsys, "train")
    assert "not computed for a binary task" in line and "accuracy, roc_auc" in line
    assert calls == [] and not os.path.exists(out)
    with pytest.raises(SystemExit) as e:
        main(["train", data, "--out", out, "--monitor", "loss"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'loss'" in err and "f1_macro" in err and "r2" in err


# -- the recipe options -------------------------------------------------------------------
def test_recipe_options_reach_fit_and_the_model_file(work, capsys, monkeypatch):
    from passage.preprocessing import Truncate

    d, data, model = work
    calls = spy_fit(monkeypatch)
    out = str(d / "m2.passage")
    assert main(["train", data, "--out", out, "--pool", "max", "--truncate", "3",
                 "--lr-schedule", "linear", "--direction", "bi", "--precision", "bf16",
                 *TINY]) == 0
    kwargs = calls[-1]
    assert isinstance(kwargs["len_filter"], Truncate) and kwargs["len_filter"].max_len == 3
    assert kwargs["lr_schedule"] == "linear"
    assert "longer than 3 tokens were trained on" in capsys.readouterr().err
    saved = load(out)
    assert saved.layers[1].pool == "max" and saved.layers[1].direction == "bi"
    assert saved.precision == "bf16"
    # the defaults are the recipe's (passage.options): max-pooled, Truncate(256), constant lr
    assert main(["train", data, "--out", out, *TINY]) == 0
    assert calls[-1]["len_filter"].max_len == 256 and calls[-1]["lr_schedule"] is None
    assert load(out).layers[1].pool == "max"
    # --truncate 0 trains on whole texts, --pool last reads the last state
    assert main(["train", data, "--out", out, "--truncate", "0", "--pool", "last", *TINY]) == 0
    assert calls[-1]["len_filter"] is None and load(out).layers[1].pool is None


# -- predict --keep -------------------------------------------------------------------------
def test_predict_keeps_the_columns_asked_for(work, capsys):
    d, data, model = work
    out = str(d / "p.csv")
    assert main(["predict", model, data, "--out", out, "--keep", "id"]) == 0
    rows = list(csv.DictReader(open(out, encoding="utf-8")))
    assert list(rows[0]) == ["index", "id", "prediction", "probability", "p_0", "p_1"]
    assert [r["id"] for r in rows] == [r["id"] for r in make_rows()]
    assert main(["predict", model, data, "--out", out, "--keep", "all"]) == 0
    assert list(next(csv.DictReader(open(out, encoding="utf-8")))) == [
        "index", "id", "label", "score", "prediction", "probability", "p_0", "p_1"]
    assert main(["predict", model, data, "--out", out]) == 0  # the default output as before
    assert list(next(csv.DictReader(open(out, encoding="utf-8"))))[:2] == ["index",
                                                                           "prediction"]
    capsys.readouterr()
    assert main(["predict", model, data, "--out", out, "--keep", "idx"]) == 1
    assert "has no column 'idx'" in one_error_line(capsys, "predict")


def test_predict_keep_on_json_lines_and_name_clashes(work, capsys):
    d, data, model = work
    path = d / "d.jsonl"
    path.write_text('{"text": "great", "meta": {"a": 1}}\n{"text": "awful", "n": 2}\n')
    out = str(d / "p.csv")
    assert main(["predict", model, str(path), "--out", out, "--keep", "all"]) == 0
    rows = list(csv.DictReader(open(out, encoding="utf-8")))
    assert [(r["meta"], r["n"]) for r in rows] == [('{"a": 1}', ""), ("", "2")]
    path.write_text('{"text": "great", "prediction": 1}\n')
    capsys.readouterr()
    assert main(["predict", model, str(path), "--out", out, "--keep", "prediction"]) == 1
    assert "name of an output column" in one_error_line(capsys, "predict")


# -- fuzz: malformed data files and command lines ----------------------------------------------
CELLS = st.sampled_from(["a", "great", "awful", "", "NA", "1", "0", '"', '""', ",", "\t",
                         "\n", "\r", "{", "}", ":", "null", "é", "\x00", " ", "text", "label"])
FILE_TEXT = st.lists(CELLS, max_size=30).map("".join)
FUZZ = settings(max_examples=25, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


@FUZZ
@given(body=FILE_TEXT, ext=st.sampled_from(["csv", "tsv", "jsonl"]),
       header=st.booleans())
def test_fuzz_malformed_data_files(trained, tmp_path_factory, capsys, body, ext, header):
    _, _, model = trained
    d = tmp_path_factory.mktemp("fuzz")
    path = d / f"data.{ext}"
    head = {"csv": "text,label\n", "tsv": "text\tlabel\n", "jsonl": ""}[ext] if header else ""
    path.write_bytes((head + body).encode("utf-8"))
    before = digest(path)
    out = str(d / "p.csv")
    capsys.readouterr()
    code = main(["predict", model, str(path), "--out", out])
    assert digest(path) == before
    if code == 0:  # a correct result: one prediction per text the reader found
        texts, _ = read_table(path, "text")
        assert len(list(csv.reader(open(out, encoding="utf-8")))) == len(texts) + 1
    else:
        assert code == 1
        one_error_line(capsys, "predict")
        assert not os.path.exists(out)
    try:
        table = read_data(path, "text", "label")
    except (ValueError, FileNotFoundError):
        return
    assert len(table.texts) == len(table.labels) > 0
    assert all(str(v).strip().lower() not in ("", "na", "null") for v in table.labels)


TOKENS = st.sampled_from(["predict", "evaluate", "trace", "--out", "--keep", "all", "--monitor",
                          "--text-column", "label", "--drop-missing", "{model}", "{data}",
                          "{missing}", "{d}", "-", "--html", "--png", "x", "--file", "--json",
                          "--color", "never", "--traceback"])


@FUZZ
@given(words=st.lists(TOKENS, min_size=1, max_size=7))
def test_fuzz_bad_command_lines(trained, tmp_path_factory, capsys, words):
    _, data, model = trained
    d = tmp_path_factory.mktemp("argv")
    argv = [w.format(model=model, data=data, missing=str(d / "no.csv"), d=d) for w in words]
    before = digest(data, model)
    try:
        code = main(argv)
    except SystemExit as e:  # argparse: usage error (2) or --help (0)
        assert e.code in (0, 2)
        assert "Traceback" not in capsys.readouterr().err
    else:
        err = capsys.readouterr().err
        assert code in (0, 1)
        if code == 1 and "--traceback" not in argv:
            assert "Traceback" not in err and err.endswith("\n")
    assert digest(data, model) == before


def test_the_showdown_benchmark_writes_to_results_by_default():
    import importlib.util

    path = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "showdown.py")
    spec = importlib.util.spec_from_file_location("showdown_benchmark", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.parse_args([]).out_dir == "results"
    assert bench.parse_args(["--out-dir", "docs/img"]).out_dir == "docs/img"
    ignored = open(os.path.join(os.path.dirname(__file__), "..", ".gitignore")).read().split()
    assert "results/" in ignored
