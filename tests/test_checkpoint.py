"""Checkpoints: a run killed with SIGKILL mid-epoch resumes and ends like an uninterrupted one."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from passage.checkpoint import load_checkpoint, save_checkpoint

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
    import torch

    state = {"epoch": 2, "w": torch.ones(3), "nested": {1: [np.arange(2), "x", None]},
             "best": -float("inf")}
    save_checkpoint(tmp_path / "c", state)
    back = load_checkpoint(tmp_path / "c")
    assert back["epoch"] == 2 and torch.equal(back["w"], torch.ones(3))
    assert back["nested"][1][1:] == ["x", None] and back["best"] == -float("inf")
    (tmp_path / "bad").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a readable Passage checkpoint"):
        load_checkpoint(tmp_path / "bad")
