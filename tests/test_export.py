"""ONNX export and tokenizer.json: onnxruntime and tokenizers give what Passage gives."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch


def _require(name):
    """Import an export dependency; missing, the tests skip, except in CI (which installs the
    export extra), where they fail."""
    try:
        return __import__(name)
    except ImportError:
        message = f"{name} is not installed (pip install -e '.[export]')"
        if os.environ.get("CI") or os.environ.get("PASSAGE_REQUIRE_COMPILED"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message, allow_module_level=True)


onnx = _require("onnx")
ort = _require("onnxruntime")
tokenizers = _require("tokenizers")

from test_preprocessing import TRICKY  # noqa: E402

from passage import iterators  # noqa: E402
from passage.export import export_model, onnx_model, to_onnx, tokenizer_json  # noqa: E402
from passage.export.tokenizer import split_pattern  # noqa: E402
from passage.files import open_text  # noqa: E402
from passage.layers import (  # noqa: E402
    Dense,
    Embedding,
    FeatureEmbedding,
    GatedRecurrent,
    Generic,
    LstmRecurrent,
    OneHot,
    SimpleRecurrent,
)
from passage.models import RNN  # noqa: E402
from passage.preprocessing import Tokenizer, tokenize  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(ROOT, "passage", "data", "imdb_sample.jsonl.gz")
N_FEATURES = 40
# very short, very long and empty sequences in one batch, out of length order
LENGTHS = [3, 0, 120, 1, 0, 57, 2, 120, 9]
RECURRENT = {"gru": GatedRecurrent, "lstm": LstmRecurrent, "simple": SimpleRecurrent}


def _model(layers, cost="cce", seed=0):
    """An RNN with random, far-from-zero weights and learned initial states (a trained model's
    are not special; zeros would hide a missing initial state or bias)."""
    model = RNN(layers, cost, verbose=0, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.6)
    model.fitted_ = True  # the weights are set: predict may run
    return model


def _ids(lengths=LENGTHS, seed=0, slots=None):
    rng = np.random.default_rng(seed)
    shape = (lambda n: (n, slots)) if slots else (lambda n: n)
    return [rng.integers(0, N_FEATURES, shape(n)).astype(np.int64) for n in lengths]


def _session(model):
    return ort.InferenceSession(onnx_model(model).SerializeToString(),
                                providers=["CPUExecutionProvider"])


def _run(session, X, input_name="ids", pad_value=7):
    """onnxruntime on one right-padded batch of X, padded with junk (``pad_value``)."""
    x, lengths = iterators.make_batch(X, np.arange(len(X)))
    real = np.arange(x.shape[1])[None, :] < lengths[:, None]
    real = real.reshape(real.shape + (1,) * (x.ndim - 2))
    x = np.where(real, x, np.asarray(pad_value, x.dtype))
    return session.run(None, {input_name: x, "lengths": lengths.astype(np.int64)})[0]


def _assert_parity(model, X, input_name="ids", pad_value=7):
    expected = model.predict(X)
    got = _run(_session(model), X, input_name, pad_value)
    assert got.dtype == np.float32
    if model.per_step:
        width = max(len(x) for x in X)
        assert got.shape[:2] == (len(X), width)
        for row, exp in zip(got, expected, strict=True):
            np.testing.assert_allclose(row[:len(exp)], exp, rtol=0, atol=1e-5)
            assert not row[len(exp):].any()  # padding steps are zeros
    else:
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)


# -- parity: every layer x direction x pool x output kind --------------------------------------
@pytest.mark.parametrize("output", ["last", "max", "mean", "seq"])
@pytest.mark.parametrize("direction", ["forward", "backward", "bi"])
@pytest.mark.parametrize("kind", ["gru", "lstm", "simple"])
def test_parity_every_layer_direction_pool_and_output(kind, direction, output):
    rec = RECURRENT[kind](6, direction=direction, seq_output=output == "seq",
                          pool=output if output in ("max", "mean") else None)
    model = _model([Embedding(5, N_FEATURES), rec, Dense(3, "softmax")])
    assert model.per_step == (output == "seq")
    _assert_parity(model, _ids())


@pytest.mark.parametrize("activation", ["linear", "sigmoid", "steeper_sigmoid", "hard_sigmoid",
                                        "tanh", "hard_tanh", "rectify", "clipped_rectify", "elu",
                                        "softmax"])
def test_parity_every_output_activation(activation):
    model = _model([Embedding(5, N_FEATURES), GatedRecurrent(6, direction="bi"),
                    Dense(4, activation)], cost="mse")
    _assert_parity(model, _ids())


@pytest.mark.parametrize("kind", ["gru", "lstm", "simple"])
@pytest.mark.parametrize("gates", [("tanh", "steeper_sigmoid"), ("tanh", "sigmoid"),
                                   ("rectify", "hard_sigmoid"), ("elu", "sigmoid"),
                                   ("linear", "steeper_sigmoid")])
def test_parity_recurrent_activations(kind, gates):
    activation, gate = gates
    rec = RECURRENT[kind](5, activation=activation, gate_activation=gate, direction="bi")
    # an unbounded (linear) recurrence amplifies float32 rounding over long sequences in any
    # implementation: at 120 steps PyTorch's own float32 LSTM is 1.6e-3 from float64 here
    lengths = [min(n, 12) for n in LENGTHS] if activation == "linear" else LENGTHS
    _assert_parity(_model([Embedding(4, N_FEATURES), rec, Dense(2, "softmax")]), _ids(lengths))


def test_parity_deep_stack_with_dense_before_between_and_after():
    layers = [Embedding(6, N_FEATURES), Dense(5, "tanh"), LstmRecurrent(4, direction="bi"),
              Dense(6, "elu"), GatedRecurrent(5, direction="backward", pool="max"),
              Dense(4, "rectify"), Dense(1, "sigmoid")]
    _assert_parity(_model(layers, cost="bce"), _ids())


def test_parity_tagger_features_and_onehot_and_vectors():
    tagger = _model([FeatureEmbedding(3, N_FEATURES, n_slots=4),
                     LstmRecurrent(5, direction="bi", seq_output=True),
                     GatedRecurrent(4, direction="bi", seq_output=True), Dense(6, "softmax")])
    _assert_parity(tagger, _ids(slots=4))
    onehot = _model([OneHot(N_FEATURES), SimpleRecurrent(5, direction="backward"),
                     Dense(2, "softmax")])
    _assert_parity(onehot, _ids())
    rng = np.random.default_rng(1)
    vectors = [rng.normal(size=(n, 3)).astype(np.float32) for n in LENGTHS]
    generic = _model([Generic(3), GatedRecurrent(5, pool="mean"), Dense(2, "tanh")], "mse")
    _assert_parity(generic, vectors, input_name="x", pad_value=1e6)


def test_parity_regression_target_scale_and_row_independence():
    model = _model([Embedding(4, N_FEATURES), GatedRecurrent(5), Dense(1, "linear")], "mse")
    model.target_scale_ = (np.array([3.5], np.float32), np.array([2.0], np.float32))
    _assert_parity(model, _ids())
    session = _session(model)
    X = _ids()
    together = _run(session, X)
    alone = np.concatenate([_run(session, [x], pad_value=0) for x in X])
    np.testing.assert_allclose(together, alone, rtol=0, atol=1e-6)  # padding changes nothing


def test_batches_of_only_empty_sequences():
    for output in ("last", "seq"):
        model = _model([Embedding(4, N_FEATURES),
                        GatedRecurrent(5, direction="bi", seq_output=output == "seq"),
                        Dense(2, "softmax")])
        session = _session(model)
        got = session.run(None, {"ids": np.zeros((3, 0), np.int64),
                                 "lengths": np.zeros(3, np.int64)})[0]
        if output == "seq":
            assert got.shape[:2] == (3, 0)
        else:
            np.testing.assert_allclose(got, model.predict([[], [], []]), rtol=0, atol=1e-5)


# -- metadata ------------------------------------------------------------------------------------
def test_metadata_names_task_labels_and_version():
    import passage

    model = _model([Embedding(4, N_FEATURES), GatedRecurrent(5), Dense(3, "softmax")])
    model.extra_ = {"task": "multiclass", "classes": ["a", "b", "c"]}
    props = {p.key: p.value for p in onnx_model(model).metadata_props}
    assert props["task"] == "multiclass" and json.loads(props["labels"]) == ["a", "b", "c"]
    assert props["passage_version"] == passage.__version__ and props["output"] == "per_example"
    tagger = _model([FeatureEmbedding(3, N_FEATURES, n_slots=2),
                     GatedRecurrent(4, seq_output=True), Dense(2, "softmax")])
    tagger.extra_ = {"tagger": {"tags": ["NOUN", "VERB"]}}
    props = {p.key: p.value for p in onnx_model(tagger).metadata_props}
    assert props["task"] == "tagging" and json.loads(props["labels"]) == ["NOUN", "VERB"]
    assert props["output"] == "per_step" and props["input"] == "feature_ids"


# -- refusals --------------------------------------------------------------------------------
def test_refuses_what_it_cannot_export(tmp_path):
    from passage.lm import LanguageModel

    rec = GatedRecurrent(4, activation="hard_tanh")
    with pytest.raises(ValueError, match="hard_tanh.*cannot run"):
        onnx_model(_model([Embedding(4, N_FEATURES), rec, Dense(1, "sigmoid")], "bce"))
    rec = LstmRecurrent(4, gate_activation="softmax")
    with pytest.raises(ValueError, match="gate_activation='softmax'"):
        onnx_model(_model([Embedding(4, N_FEATURES), rec, Dense(1, "sigmoid")], "bce"))
    unfitted = RNN([Embedding(4, N_FEATURES), GatedRecurrent(4), Dense(1, "sigmoid")], "bce",
                   verbose=0)
    with pytest.raises(ValueError, match="not been trained"):
        onnx_model(unfitted)
    lm = LanguageModel([Embedding(4, N_FEATURES), GatedRecurrent(4),
                        Dense(N_FEATURES, "softmax")], verbose=0)
    lm.fitted_ = True
    with pytest.raises(TypeError, match="LanguageModel"):
        onnx_model(lm)
    path = tmp_path / "m.onnx"
    with pytest.raises(ValueError):
        to_onnx(_model([Embedding(4, N_FEATURES), GatedRecurrent(4, activation="softmax"),
                        Dense(1, "sigmoid")], "bce"), path)
    assert not path.exists()  # nothing written


# -- tokenizer.json ------------------------------------------------------------------------------
def _sample_texts():
    with open_text(SAMPLE) as f:
        return [json.loads(line)["text"] for line in f]


def _hf_ids(tok, texts):
    hf = tokenizers.Tokenizer.from_str(tokenizer_json(tok))
    single = [hf.encode(t).ids for t in texts[:200]]
    batch = [e.ids[:sum(e.attention_mask)] for e in hf.encode_batch(texts)]
    assert single == batch[:200]
    return batch


PASSABLE = [t for t in TRICKY if not any(0xD800 <= ord(c) < 0xE000 for c in t)]


@pytest.mark.parametrize("options", [{"min_df": 1}, {"min_df": 3, "max_features": 2000},
                                     {"min_df": 1, "lowercase": False},
                                     {"min_df": 1, "character": True},
                                     {"min_df": 1, "character": True, "lowercase": False}])
def test_tokenizer_json_gives_passage_ids(options):
    texts = _sample_texts()
    if options != {"min_df": 1}:  # the whole sample once; tokenizers takes ~1 s per 600 texts
        texts = texts[:600]
    tok = Tokenizer(**options).fit(texts)
    for batch in (texts, PASSABLE):
        assert _hf_ids(tok, batch) == tok.transform(batch)


def test_tokenizer_fit_on_tricky_texts():
    cased = Tokenizer(min_df=1, lowercase=False).fit(PASSABLE)
    assert _hf_ids(cased, PASSABLE) == cased.transform(PASSABLE)
    assert "PAD" in cased.encoder and cased.transform(["PAD END"]) == [[0, 1]]
    chars = Tokenizer(min_df=1, character=True).fit([t for t in PASSABLE if "\u03a3" not in t])
    assert _hf_ids(chars, PASSABLE) == chars.transform(PASSABLE)


def test_tokenizer_split_regex_equals_passage_on_every_code_point():
    chars = [chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000]
    text = " ".join("".join(chars[i:i + 5]) for i in range(0, len(chars), 5))
    split = tokenizers.pre_tokenizers.Split(tokenizers.Regex(split_pattern(False)), "removed",
                                            invert=True)
    assert [p for p, _ in split.pre_tokenize_str(text)] == tokenize(text)


def test_tokenizer_refusals():
    greek = Tokenizer(min_df=1).fit(["\u039f\u0394\u039f\u03a3 \u03c3\u03c3", "abc"])
    with pytest.raises(ValueError, match="final sigma"):
        tokenizer_json(greek)
    new_char = Tokenizer(min_df=1).fit(["x\ua7cb y"])  # a capital Python 3.11 does not lowercase
    with pytest.raises(ValueError, match="U\\+A7CB"):
        tokenizer_json(new_char)
    surrogate = Tokenizer(min_df=1, lowercase=False).fit(["lone \ud800 x"])
    with pytest.raises(ValueError, match="surrogate"):
        tokenizer_json(surrogate)
    with pytest.raises(ValueError, match="not fitted"):
        tokenizer_json(Tokenizer())


# -- the command line and the example client -------------------------------------------------
@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    from passage.io import save

    texts = _sample_texts()[:300]
    tok = Tokenizer(min_df=2).fit(texts)
    model = _model([Embedding(6, tok.n_features), GatedRecurrent(8, direction="bi"),
                    Dense(1, "sigmoid")], cost="bce")
    model.tokenizer = tok
    model.extra_ = {"task": "binary", "classes": ["neg", "pos"]}
    path = tmp_path_factory.mktemp("export") / "model.passage"
    save(model, path)
    return model, path, texts


def test_cli_export_writes_onnx_and_tokenizer(saved_model, tmp_path, capsys):
    from passage.cli import main

    model, path, texts = saved_model
    out = tmp_path / "m.onnx"
    assert main(["export", str(path), "--out", str(out)]) == 0
    assert (tmp_path / "m.tokenizer.json").exists()
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    hf = tokenizers.Tokenizer.from_file(str(tmp_path / "m.tokenizer.json"))
    enc = hf.encode_batch(texts[:40])
    ids = np.array([e.ids for e in enc], np.int64)
    lengths = np.array([sum(e.attention_mask) for e in enc], np.int64)
    got = session.run(None, {"ids": ids, "lengths": lengths})[0]
    np.testing.assert_allclose(got, model.predict(texts[:40]), rtol=0, atol=1e-5)
    assert "wrote" in capsys.readouterr().out


def test_cli_export_refuses_to_overwrite_the_model(saved_model, tmp_path, capsys):
    from passage.cli import main

    _, path, _ = saved_model
    before = path.read_bytes()
    assert main(["export", str(path), "--out", str(path)]) == 1
    clash = tmp_path / "x.tokenizer.json"
    clash.write_bytes(before)
    assert main(["export", str(clash), "--out", str(tmp_path / "x.onnx")]) == 1
    err = capsys.readouterr().err
    assert err.count("passage export: error:") == 2 and len(err.strip().splitlines()) == 2
    assert path.read_bytes() == before and clash.read_bytes() == before
    assert not (tmp_path / "x.onnx").exists()


def test_example_client_predicts_without_torch(saved_model, tmp_path):
    model, _, texts = saved_model
    onnx_path, tok_path = export_model(model, tmp_path / "c.onnx")
    assert tok_path == str(tmp_path / "c.tokenizer.json")
    script = os.path.join(ROOT, "examples", "onnx_predict.py")
    code = ("import runpy, sys; sys.argv = [sys.argv[0]] + sys.argv[1:]; "
            f"runpy.run_path({script!r}, run_name='__main__'); "
            "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')")
    run = subprocess.run([sys.executable, "-c", code, onnx_path, *texts[:5]],
                         capture_output=True, text=True, timeout=120, check=True)
    lines = run.stdout.strip().splitlines()
    assert lines[-1] == "NO-TORCH"
    rows = [json.loads(line) for line in lines[:-1]]
    expected = model.predict(texts[:5])
    np.testing.assert_allclose([r["outputs"] for r in rows], expected, rtol=0, atol=1e-5)
    assert [r["label"] for r in rows] == [["neg", "pos"][int(p[0] > 0.5)] for p in expected]


# -- the linear n-gram term ("wide") -----------------------------------------------------------
@pytest.mark.parametrize("n_out,activation,cost", [(1, "sigmoid", "bce"), (3, "softmax", "cce")])
def test_parity_with_the_ngram_term(n_out, activation, cost):
    from passage.wide import NgramLinear

    wide = NgramLinear(N_FEATURES, n_out, buckets=64)
    model = _model([Embedding(5, N_FEATURES), GatedRecurrent(6, direction="bi", pool="max"),
                    Dense(n_out, activation)], cost=cost)
    model.model.wide = model.wide = wide  # after _model's random weights: set its own below
    with torch.no_grad():
        wide.weight.copy_(torch.randn(wide.weight.shape, generator=torch.Generator()
                                      .manual_seed(3)))
    _assert_parity(model, _ids(), pad_value=39)  # junk padding must not reach the bigrams
