"""Ensembles (passage.ensemble): members trained side by side in processes, predictions averaged."""

import functools

import numpy as np
import pytest
from test_distributed import not_a_model, synthetic

from passage.ensemble import Ensemble, fit_ensemble
from passage.layers import Dense, Embedding, GatedRecurrent
from passage.models import RNN
from passage.updates import Adam


def make_member(direction, seed=0, out=1):  # module level: the worker processes import it
    return RNN([Embedding(16, 20), GatedRecurrent(16, direction=direction),
                Dense(out, "sigmoid")], "bce", updater=Adam(lr=1e-2), verbose=0, seed=seed)


def test_members_train_in_their_own_processes_as_they_would_alone():
    X, Y = synthetic(600, 0)
    tX, tY = synthetic(300, 1)
    makers = [functools.partial(make_member, "forward"), functools.partial(make_member, "backward")]
    ens = fit_ensemble(makers, X, Y, n_epochs=2, batch_size=32)
    assert isinstance(ens, Ensemble) and len(ens.models) == 2
    for make, member in zip(makers, ens.models, strict=True):
        alone = make()
        alone.fit(X, Y, n_epochs=2, batch_size=32)
        assert member.fitted_ and len(member.history_) == 2
        assert member.layers[1].direction == alone.layers[1].direction
        # the same steps as in this process; only thread count (float rounding) differs
        np.testing.assert_allclose(member.predict(tX), alone.predict(tX), atol=1e-3)
    p = ens.predict(tX)
    np.testing.assert_allclose(p, (ens.models[0].predict(tX) + ens.models[1].predict(tX)) / 2)
    assert np.mean((p[:, 0] > 0.5) == np.asarray(tY)) > 0.9


def test_predict_averages_and_checks_its_members():
    X, Y = synthetic(64, 0)
    a, b = make_member("forward", 0), make_member("forward", 1)
    for m in (a, b):
        m.fit(X, Y)
    assert not np.allclose(a.predict(X), b.predict(X))  # different seeds: different models
    np.testing.assert_allclose(Ensemble([a, b]).predict(X), (a.predict(X) + b.predict(X)) / 2)
    with pytest.raises(ValueError, match="at least one model"):
        Ensemble([]).predict(X)
    two = make_member("forward", out=2)
    two.fit(X, np.eye(2)[Y])
    with pytest.raises(ValueError, match="different shapes"):
        Ensemble([a, two]).predict(X)
    with pytest.raises(TypeError, match=r"models\[1\] is a str"):
        Ensemble([a, "b"]).predict(X)


def test_bad_arguments_say_what_to_do():
    X, Y = synthetic(8, 0)
    with pytest.raises(TypeError, match="list of zero-argument functions"):
        fit_ensemble(make_member, X, Y)
    with pytest.raises(ValueError, match="at least 2 members"):
        fit_ensemble([make_member], X, Y)
    with pytest.raises(TypeError, match=r"make_models\[1\] must be a zero-argument function"):
        fit_ensemble([make_member, make_member("forward")], X, Y)
    with pytest.raises(TypeError, match="picklable"):
        fit_ensemble([make_member, lambda: make_member("forward")], X, Y)
    with pytest.raises(ValueError, match="threads must be a positive int"):
        fit_ensemble([make_member, make_member], X, Y, threads=0)
    with pytest.raises(ValueError, match="not supported by fit_ensemble"):
        fit_ensemble([make_member, make_member], X, Y, path="snap")


def test_a_member_that_is_not_a_model_fails_with_its_index():
    X, Y = synthetic(8, 0)
    with pytest.raises(TypeError, match=r"make_models\[1\]\(\) must return.*worker process 1"):
        fit_ensemble([functools.partial(make_member, "forward"), not_a_model], X, Y)


SCRIPT = """
import functools, sys
sys.path.insert(0, {tests!r})
from test_distributed import synthetic
from passage.ensemble import fit_ensemble
from passage.layers import Dense, Embedding, GatedRecurrent
from passage.models import RNN

def make(direction):  # default verbose: process 0 draws tqdm progress bars
    return RNN([Embedding(8, 20), GatedRecurrent(8, direction=direction), Dense(1, "sigmoid")],
               "bce", seed=0)

if __name__ == "__main__":
    X, Y = synthetic(200, 0)
    ens = fit_ensemble([functools.partial(make, "forward"), functools.partial(make, "backward")],
                       X, Y)
    print("members", len(ens.models))
"""


def test_a_script_with_progress_bars_leaves_nothing_behind(tmp_path):
    """A worker ends with os._exit; tqdm's multiprocessing lock used to be left behind then
    (a 'leaked semaphore' warning when the script ended)."""
    import os
    import subprocess
    import sys

    script = tmp_path / "ensemble.py"
    script.write_text(SCRIPT.format(tests=os.path.dirname(os.path.abspath(__file__))))
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=180, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr[-3000:]
    assert "members 2" in run.stdout and "Epoch 1/1" in run.stderr
    assert "leaked" not in run.stderr, run.stderr[-3000:]
