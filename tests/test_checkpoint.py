"""Checkpoints: a run killed with SIGKILL mid-epoch resumes and ends like an uninterrupted one."""

import io
import json
import os
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest
import torch

from passage import RNN, Dense, Embedding, GatedRecurrent, LstmRecurrent
from passage.checkpoint import load_checkpoint, save_checkpoint
from passage.updates import Adam, Momentum

SCRIPT = """
import sys
import numpy as np
from passage import RNN, Embedding, GatedRecurrent, Dense
from passage.updates import Adam
rng = np.random.default_rng(0)
X = [list(rng.integers(3, 50, size=rng.integers(20, 80))) for _ in range(3000)]
Y = [int(np.mean(np.array(x) < 20) > 0.33) for x in X]
m = RNN([Embedding(16, 50), GatedRecurrent(32, p_drop=0.1), Dense(1, 'sigmoid')], 'bce',
        updater=Adam(lr=3e-3), verbose=0, seed=0)
m.fit(X, Y, n_epochs=4, validation_split=0.1, checkpoint=sys.argv[1], resume=len(sys.argv) > 3)
np.save(sys.argv[2], m.predict(X[:50]))
"""


def run(tmp_path, *args, wait=True):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    cmd = [sys.executable, str(script), *map(str, args)]
    if wait:
        subprocess.run(cmd, check=True, timeout=300)
        return None
    return subprocess.Popen(cmd)


def test_killed_run_resumes_to_the_same_model(tmp_path):
    run(tmp_path, tmp_path / "full.ckpt", tmp_path / "full.npy")
    proc = run(tmp_path, tmp_path / "cut.ckpt", tmp_path / "cut.npy", wait=False)
    deadline = time.time() + 240
    while not (tmp_path / "cut.ckpt").exists() and proc.poll() is None:
        assert time.time() < deadline
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)  # mid-epoch 2 (or later): whatever is on disk is whole
    assert proc.wait() == -signal.SIGKILL
    done = load_checkpoint(tmp_path / "cut.ckpt")["epoch"]
    assert done < 3 and not (tmp_path / "cut.npy").exists()
    run(tmp_path, tmp_path / "cut.ckpt", tmp_path / "cut.npy", "resume")
    full, resumed = np.load(tmp_path / "full.npy"), np.load(tmp_path / "cut.npy")
    np.testing.assert_allclose(resumed, full, atol=1e-6)
    assert load_checkpoint(tmp_path / "cut.ckpt")["epoch"] == 3


def test_checkpoint_round_trip_and_bad_file(tmp_path):
    state = {"epoch": 2, "w": torch.ones(3), "nested": {1: [np.arange(2), "x", None]},
             "best": -float("inf")}
    save_checkpoint(tmp_path / "c", state)
    back = load_checkpoint(tmp_path / "c")
    assert back["epoch"] == 2 and torch.equal(back["w"], torch.ones(3))
    assert back["nested"][1][1:] == ["x", None] and back["best"] == -float("inf")
    (tmp_path / "bad").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a readable Passage checkpoint"):
        load_checkpoint(tmp_path / "bad")


# -- resuming another model, a new learning rate, hostile checkpoints (issue 16) ----------------

X_SMALL = [[3, 4, 5], [6, 7], [8, 3, 3, 9], [5]] * 8
Y_SMALL = [1, 0, 1, 0] * 8


def small(size=8, n_features=12, layer=GatedRecurrent, out=1, updater=None):
    return RNN([Embedding(8, n_features), layer(size), Dense(out, "sigmoid")], "bce",
               updater=updater or Adam(lr=1e-2), verbose=0, seed=0)


def weights(model):
    return {k: v.detach().clone() for k, v in model.model.state_dict().items()}


@pytest.fixture
def ckpt(tmp_path):
    path = tmp_path / "run.ckpt"
    small().fit(X_SMALL, Y_SMALL, n_epochs=1, checkpoint=path)
    return path


@pytest.mark.parametrize("other, message", [
    (lambda: small(size=16), r"layers\[1\] GatedRecurrent: size=8 in the checkpoint, 16 here"),
    (lambda: small(n_features=30), r"layers\[0\] Embedding: n_features=12 in the checkpoint, "
                                   "30 here"),
    (lambda: small(layer=LstmRecurrent), r"layers\[1\] is GatedRecurrent in the checkpoint, "
                                         "LstmRecurrent here"),
    (lambda: small(out=3), r"layers\[2\] Dense: size=1 in the checkpoint, 3 here"),
    (lambda: small(updater=Momentum(lr=1e-2)), "updater 'Adam' in the checkpoint, 'Momentum'"),
])
def test_resuming_another_model_names_what_differs(ckpt, other, message):
    model = other()
    before = weights(model)
    y = Y_SMALL if model.out_size == 1 else [[v, 1 - v, v] for v in Y_SMALL]
    with pytest.raises(ValueError, match="cannot resume from .*another model.*" + message):
        model.fit(X_SMALL, y, n_epochs=2, checkpoint=ckpt, resume=True)
    after = weights(model)
    assert all(torch.equal(before[k], after[k]) for k in before)  # nothing was loaded
    assert not model.fitted_


def _without_run(path):
    state = load_checkpoint(path)
    del state["run"]  # what checkpoints held before run_signature
    save_checkpoint(path, state)


def test_old_checkpoints_resume_where_compatible_and_name_the_rest(ckpt):
    _without_run(ckpt)
    model = small()
    model.fit(X_SMALL, Y_SMALL, n_epochs=2, checkpoint=ckpt, resume=True)
    assert len(model.history_) == 2 and load_checkpoint(ckpt)["epoch"] == 1
    _without_run(ckpt)
    with pytest.raises(ValueError, match=r"weight layers.1.directions.0.h0 is \(8,\) in the "
                                         r"checkpoint, \(16,\) here"):
        small(size=16).fit(X_SMALL, Y_SMALL, n_epochs=3, checkpoint=ckpt, resume=True)
    with pytest.raises(ValueError, match=r"optimizer is another kind \(settings \[.*'betas'"):
        small(updater=Momentum()).fit(X_SMALL, Y_SMALL, n_epochs=3, checkpoint=ckpt,
                                      resume=True)


def test_resume_honours_the_new_learning_rate_and_keeps_the_moments(ckpt):
    steps = int(load_checkpoint(ckpt)["optimizer"]["state"][0]["step"])
    assert steps > 0
    model = small(updater=Adam(lr=1e-4))
    model.fit(X_SMALL, Y_SMALL, n_epochs=2, checkpoint=ckpt, resume=True)
    opt = model.updater.optimizer
    assert [g["lr"] for g in opt.param_groups] == [1e-4]
    assert int(opt.state_dict()["state"][0]["step"]) == 2 * steps  # moments carried on


def test_hostile_checkpoints_are_value_errors_in_bounded_memory(tmp_path, ckpt):
    from test_io import npy_header, raw_zip

    with zipfile.ZipFile(ckpt) as z:
        files = {n: z.read(n) for n in z.namelist()}
    doc = json.loads(files["checkpoint.json"])
    cases = {}
    bomb = {n: [(d, 1)] for n, d in files.items()}
    bomb["a0.npy"] = [(npy_header((1 << 28,)), 1), (bytes(1 << 20), 1024)]  # 1 GiB of zeros
    raw_zip(tmp_path / "bomb.ckpt", bomb)
    cases["bomb.ckpt"] = r"member 'a0.npy' expands [\d,]+ times"
    deep = json.dumps({**doc, "state": "DEEP"}).replace('"DEEP"', "[" * 50_000 + "]" * 50_000)
    cases["deep.ckpt"] = "nests deeper than Python can parse"
    nan = np.load(io.BytesIO(files["a0.npy"]))
    nan.flat[0] = np.nan
    buf = io.BytesIO()
    np.save(buf, nan)
    cases["nan.ckpt"] = "array a0 holds 1 NaN or infinite values"
    evil = json.dumps({**doc, "state": {"__array__": "../../x"}})
    cases["ref.ckpt"] = "not a readable Passage checkpoint"
    for name, body in (("deep.ckpt", {"checkpoint.json": deep.encode()}),
                       ("nan.ckpt", {"a0.npy": buf.getvalue()}),
                       ("ref.ckpt", {"checkpoint.json": evil.encode()})):
        with zipfile.ZipFile(tmp_path / name, "w", zipfile.ZIP_DEFLATED) as z:
            for n, d in {**files, **body}.items():
                z.writestr(n, d)
    for name, message in cases.items():
        with pytest.raises(ValueError, match=message):
            load_checkpoint(tmp_path / name)
    script = ("import resource, sys\nfrom passage.checkpoint import load_checkpoint\n"
              "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
              "try:\n    load_checkpoint(sys.argv[1])\nexcept ValueError:\n    pass\n"
              "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) // 1024)\n")
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path / "bomb.ckpt")],
                         check=True, capture_output=True, text=True, timeout=120)
    assert int(out.stdout) < 100  # MB: refused from the header, before inflating 1 GiB
