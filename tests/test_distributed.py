"""Data-parallel training (passage.distributed): 2 CPU processes talking through gloo."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from passage import _processes, iterators
from passage.distributed import ShardedBatches, fit_distributed
from passage.layers import Dense, Embedding, GatedRecurrent
from passage.models import RNN
from passage.updates import Adam


def synthetic(n, seed):
    """Sequences of ids 4..19, 3..19 long; label 1 when the sequence holds token 3."""
    rng = np.random.default_rng(seed)
    X = [rng.integers(4, 20, rng.integers(3, 20)).tolist() for _ in range(n)]
    Y = (rng.random(n) < 0.5).astype(int).tolist()
    for x, y in zip(X, Y, strict=True):
        if y:
            x[rng.integers(len(x))] = 3
    return X, Y


def make_model():  # module level: the worker processes import it from here
    return RNN([Embedding(16, 20), GatedRecurrent(16), Dense(1, "sigmoid")], "bce",
               updater=Adam(lr=1e-2), verbose=0, seed=0)


def make_bf16_model():
    return RNN([Embedding(16, 20), GatedRecurrent(16), Dense(1, "sigmoid")], "bce",
               updater=Adam(lr=1e-2), verbose=0, seed=0, precision="bf16")


def not_a_model():
    return "a model"


def interactive_factory():
    return make_model()


def accuracy(model, X, Y):
    return float(np.mean((model.predict(X)[:, 0] > 0.5) == np.asarray(Y)))


def test_shards_are_disjoint_equal_in_count_and_cover_the_batches():
    lengths = np.random.default_rng(0).integers(1, 60, 640 + 11 * 32 + 2)  # last batch: 2
    full = list(iterators.SortedPadded(size=32).batches(lengths, True,
                                                        np.random.default_rng(5)))
    shards = [list(ShardedBatches(iterators.SortedPadded(size=32), r, 3).batches(
        lengths, True, np.random.default_rng(5))) for r in range(3)]
    kept = [b for b in full if len(b) >= 3]
    assert len(kept) == len(full) - 1 and all(len(s) == len(kept) for s in shards)
    for step, batch in enumerate(kept):
        parts = [s[step] for s in shards]
        assert sorted(np.concatenate(parts).tolist()) == sorted(batch.tolist())  # disjoint
        assert max(map(len, parts)) - min(map(len, parts)) <= 1
        for part in parts:  # length bucketing survives: each share is sorted by length
            assert np.all(np.diff(lengths[part]) >= 0)
    covered = np.concatenate([np.concatenate(s) for s in shards])
    assert len(covered) == len(set(covered.tolist())) == len(lengths) - 2  # the 2 dropped


def test_sharded_batch_size_is_global_and_checked():
    it = ShardedBatches(iterators.SortedPadded(size=64), 1, 2)
    it.size = 32  # what RNN.fit(batch_size=32) does
    assert it.base.size == 32 and it.get_config() == {"size": 32, "shuffle": True}
    with pytest.raises(ValueError, match="smaller than the number of processes"):
        it.size = 1
    with pytest.raises(ValueError, match="rank must be in 0..1"):
        ShardedBatches(iterators.SortedPadded(), 2, 2)


def test_two_processes_train_like_one_process():
    X, Y = synthetic(600, 0)
    vX, vY = synthetic(100, 2)
    tX, tY = synthetic(300, 1)
    kwargs = {"n_epochs": 2, "batch_size": 32, "validation_data": (vX, vY), "patience": 1}
    two = fit_distributed(make_model, X, Y, workers=2, timeout=60, **kwargs)
    one = make_model()
    one.fit(X, Y, **kwargs)
    assert isinstance(two, RNN) and two.fitted_ and len(two.history_) == len(one.history_)
    # Global batches: the averaged gradient of two halves is the whole batch's, so the two
    # runs take the same steps and differ only by float rounding.
    np.testing.assert_allclose(two.predict(tX), one.predict(tX), atol=1e-3)
    assert accuracy(one, tX, tY) > 0.9
    assert abs(accuracy(two, tX, tY) - accuracy(one, tX, tY)) <= 0.02
    assert two.history_[0]["tokens"] < 0.6 * one.history_[0]["tokens"]  # process 0's half
    assert two.history_[-1]["val_cost"] == pytest.approx(one.history_[-1]["val_cost"], abs=1e-3)


def test_two_processes_train_in_bf16():
    X, Y = synthetic(600, 0)
    tX, tY = synthetic(300, 1)
    two = fit_distributed(make_bf16_model, X, Y, workers=2, timeout=60, n_epochs=2,
                          batch_size=32)
    one = make_bf16_model()
    one.fit(X, Y, n_epochs=2, batch_size=32)
    assert two.precision == "bf16"
    assert accuracy(two, tX, tY) > 0.9
    # bfloat16 rounding differs with the summation order: looser than float32's 1e-3
    np.testing.assert_allclose(two.predict(tX), one.predict(tX), atol=0.05)


TORCHRUN_SCRIPT = """
    import json, os, sys
    import numpy as np
    from passage.distributed import fit_distributed
    sys.path.insert(0, {tests!r})
    from test_distributed import make_model, synthetic

    X, Y = synthetic(600, 0)
    model = fit_distributed(lambda: make_model(), X, Y, n_epochs=2, batch_size=32, timeout=60)
    out, rank = sys.argv[1], os.environ["RANK"]
    np.savez(os.path.join(out, f"rank{{rank}}.npz"),
             **{{k: v.numpy() for k, v in model.model.state_dict().items()}})
    with open(os.path.join(out, f"rank{{rank}}.json"), "w") as f:
        json.dump({{"tokens": [h["tokens"] for h in model.history_]}}, f)
"""


def test_torchrun_launch(tmp_path):
    script = tmp_path / "train.py"
    tests = os.path.dirname(os.path.abspath(__file__))
    script.write_text(textwrap.dedent(TORCHRUN_SCRIPT.format(tests=tests)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                          "--nproc_per_node=2", str(script), str(tmp_path)],
                         capture_output=True, text=True, timeout=180, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    w0, w1 = np.load(tmp_path / "rank0.npz"), np.load(tmp_path / "rank1.npz")
    assert sorted(w0) == sorted(w1)
    for k in w0:
        np.testing.assert_array_equal(w0[k], w1[k])  # identical weights on both ranks
    t0, t1 = (json.loads((tmp_path / f"rank{r}.json").read_text())["tokens"] for r in (0, 1))
    total = sum(map(len, synthetic(600, 0)[0]))
    assert [a + b for a, b in zip(t0, t1, strict=True)] == [total, total]  # nothing dropped


def test_bad_arguments_say_what_to_do(monkeypatch):
    X, Y = synthetic(8, 0)
    with pytest.raises(ValueError, match="workers must be at least 1"):
        fit_distributed(make_model, X, Y, workers=0)
    with pytest.raises(TypeError, match="workers must be an int"):
        fit_distributed(make_model, X, Y, workers=1.5)
    with pytest.raises(TypeError, match="picklable.*top level of a module"):
        fit_distributed(lambda: make_model(), X, Y, workers=2)

    def local_factory():
        return make_model()

    with pytest.raises(TypeError, match="picklable"):
        fit_distributed(local_factory, X, Y, workers=2)
    with pytest.raises(TypeError, match="zero-argument function"):
        fit_distributed(make_model(), X, Y, workers=2)
    with pytest.raises(TypeError, match="no argument"):
        fit_distributed(make_model, X, Y, workers=2, n_epoch=2)
    with pytest.raises(ValueError, match="not supported"):
        fit_distributed(make_model, X, Y, workers=2, checkpoint="run.ckpt")
    with pytest.raises(ValueError, match="batch_size=1 is smaller"):
        fit_distributed(make_model, X, Y, workers=2, batch_size=1)
    main = sys.modules["__main__"]  # as in a notebook: __main__ has no file to import
    monkeypatch.setattr(interactive_factory, "__module__", "__main__")
    monkeypatch.setattr(main, "interactive_factory", interactive_factory, raising=False)
    monkeypatch.delattr(main, "__file__", raising=False)
    with pytest.raises(TypeError, match="interactive session"):
        fit_distributed(interactive_factory, X, Y, workers=2)
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="torchrun started 2 processes"):
        fit_distributed(make_model, X, Y, workers=3)


def test_worker_errors_come_back_with_their_type(tmp_path, monkeypatch):
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where torch puts its error files
    X, Y = synthetic(8, 0)
    with pytest.raises(TypeError, match="must return a passage.models.RNN.*worker process 0"):
        fit_distributed(not_a_model, X, Y, workers=1, timeout=60)
    assert list(tmp_path.iterdir()) == []  # no error file or job directory left behind


UNGUARDED_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from test_distributed import make_model
from passage.distributed import fit_distributed

X = [list(range(4, 20)) * 20 for _ in range(20000)]  # 6.4M ids: MBs, far past a pipe's buffer
fit_distributed(make_model, X, [0, 1] * 10000, workers=2, n_epochs=1)  # no __main__ guard
"""


def test_script_without_main_guard_fails_fast_and_says_why(tmp_path):
    """The workers re-run an unguarded script; that must end in a clear error, not a hang
    (passing the data through the start-up pipes left the parent blocked on a write)."""
    script = tmp_path / "unguarded.py"
    tests = os.path.dirname(os.path.abspath(__file__))
    script.write_text(UNGUARDED_SCRIPT.format(tests=tests))
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})  # hung before
    assert run.returncode != 0
    assert "must sit under `if __name__ == '__main__':`" in run.stderr, run.stderr[-3000:]
    assert "worker process" in run.stderr and "died" in run.stderr, run.stderr[-3000:]


SLOW_SCRIPT = """
import os, sys, time
from passage.distributed import fit_distributed
from passage.ensemble import fit_ensemble


def slow_model():  # a worker that trains for a long time: it records its pid, then waits
    with open(os.path.join(os.environ["PASSAGE_TEST_PIDS"], str(os.getpid())), "w"):
        pass
    time.sleep(600)


if __name__ == "__main__":
    X, Y = [[4, 5, 6]] * 8, [0, 1] * 4
    if sys.argv[1] == "ensemble":
        fit_ensemble([slow_model, slow_model], X, Y)
    else:
        fit_distributed(slow_model, X, Y, workers=2)
"""


def _wait_for(condition, seconds, what):
    """Poll ``condition`` until it holds; fail naming ``what`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"after {seconds} s: {what}")
        time.sleep(0.05)


def _running(pid):
    """Whether process ``pid`` exists and is not a zombie (orphans may never be reaped here)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("how, sig", [("distributed", signal.SIGKILL),
                                      ("ensemble", signal.SIGTERM)])
def test_killing_the_parent_ends_its_workers(tmp_path, how, sig):
    """Workers never outlive their parent, even SIGKILLed, and on SIGTERM the parent removes
    the job folder (with the data) first. Started with SIGINT ignored, as a script run in the
    background is: torch's own parent-death signal (SIGINT) did nothing then."""
    script, pids, tmp = tmp_path / "slow.py", tmp_path / "pids", tmp_path / "tmp"
    script.write_text(SLOW_SCRIPT)
    pids.mkdir()
    tmp.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(tmp),
           "PASSAGE_TEST_PIDS": str(pids)}
    parent = subprocess.Popen([sys.executable, str(script), how], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        _wait_for(lambda: len(os.listdir(pids)) == 2, 90, "the 2 workers did not start")
        workers = [int(p) for p in os.listdir(pids)]
        jobs = [p for p in tmp.iterdir() if p.name.startswith("passage-ddp-")]
        assert len(jobs) == 1 and (jobs[0] / "job.pickle").exists()
        parent.send_signal(sig)
        assert parent.wait(30) == -sig
        _wait_for(lambda: not any(map(_running, workers)), 5,
                  f"workers {[p for p in workers if _running(p)]} outlived their parent")
    finally:
        if parent.poll() is None:
            parent.kill()
        for pid in os.listdir(pids):
            with contextlib.suppress(OSError):
                os.kill(int(pid), signal.SIGKILL)
    if sig == signal.SIGTERM:
        assert not jobs[0].exists()  # removed before the parent ended
    else:  # nothing can run in a SIGKILLed process: the next run removes its folder
        assert jobs[0].exists()
        assert _processes.remove_stale_job_folders(str(tmp)) == [str(jobs[0])]
        assert not jobs[0].exists()


def test_only_folders_of_dead_owners_are_removed(tmp_path):
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    owners = {"dead": int(done.stdout), "alive": os.getpid()}
    for name, pid in owners.items():
        folder = tmp_path / f"passage-ddp-{name}"
        folder.mkdir()
        owner = {**_processes._owner(), "pid": pid}
        (folder / _processes.OWNER_FILE).write_text(json.dumps(owner))
    (tmp_path / "passage-ddp-old").mkdir()  # no owner file: not touched
    (tmp_path / "other").mkdir()
    assert _processes.remove_stale_job_folders(str(tmp_path)) == [
        str(tmp_path / "passage-ddp-dead")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other", "passage-ddp-alive",
                                                         "passage-ddp-old"]


def test_the_sigterm_handler_is_put_back_and_never_replaces_ones_own():
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    with _processes._cleanup_on_sigterm():
        assert callable(signal.getsignal(signal.SIGTERM))
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL

    def own(signum, frame):
        pass

    previous = signal.signal(signal.SIGTERM, own)
    try:
        with _processes._cleanup_on_sigterm():
            assert signal.getsignal(signal.SIGTERM) is own
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_the_fallback_watch_ends_a_worker_whose_parent_is_gone():
    """Where PR_SET_PDEATHSIG is missing, a worker's thread watching its parent's pid ends it."""
    code = ("import os, threading; from passage import _processes\n"
            "_processes._exit_with_parent(os.getppid())  # the real parent: keeps running\n"
            "print('alive', flush=True)\n"
            "threading.Thread(target=_processes._watch_parent, args=(-1,)).start()")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert run.stdout == "alive\n" and run.returncode == 1
    assert "its parent process -1 died; stopping" in run.stderr


def test_bad_fit_arguments_are_refused_before_any_process_starts():
    def make_model():
        raise AssertionError("no worker may start")

    with pytest.raises(ValueError, match="n_epochs"):
        fit_distributed(make_model, [[1, 2]] * 8, [0, 1] * 4, 2, n_epochs=0)
    with pytest.raises(ValueError, match="batch_size"):
        fit_distributed(make_model, [[1, 2]] * 8, [0, 1] * 4, 2, batch_size=-5)
