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


def _fitted_pair():
    X, Y = synthetic(64, 0)
    members = [make_member("forward", 0), make_member("backward", 1)]
    for m in members:
        m.fit(X, Y)
    return Ensemble(members), X


def test_save_and_load_an_ensemble(tmp_path):
    import zipfile

    from passage import io
    from passage.utils import load, save

    ens, X = _fitted_pair()
    path = tmp_path / "ens.passage"
    save(ens, path, extra={"classes": ["neg", "pos"]})
    back = load(path)
    assert isinstance(back, Ensemble) and len(back.models) == 2
    assert back.extra_ == {"classes": ["neg", "pos"]}
    np.testing.assert_array_equal(back.predict(X), ens.predict(X))
    assert [m.layers[1].direction for m in back.models] == ["forward", "backward"]
    with zipfile.ZipFile(path) as z:  # the members are ordinary model files
        assert z.namelist() == ["passage-ensemble.json", "members/0.passage",
                                "members/1.passage"]
        z.extract("members/1.passage", tmp_path)
    np.testing.assert_array_equal(io.load(tmp_path / "members/1.passage").predict(X),
                                  ens.models[1].predict(X))


def test_loading_an_ensemble_without_its_module_says_what_to_import(tmp_path):
    """passage.io cannot import passage.ensemble (which imports io): the reader is registered
    when passage.ensemble is imported, and without it load says so."""
    import subprocess
    import sys

    from passage.utils import save

    ens, _ = _fitted_pair()
    save(ens, tmp_path / "ens.passage")
    code = "import sys; from passage.utils import load; load(sys.argv[1])"
    run = subprocess.run([sys.executable, "-c", code, str(tmp_path / "ens.passage")],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert "`import passage.ensemble` before loading it" in run.stderr, run.stderr[-2000:]


def test_saving_a_bad_ensemble_is_refused_and_writes_nothing(tmp_path):
    from passage.utils import save

    ens, _ = _fitted_pair()
    path = tmp_path / "ens.passage"
    with pytest.raises(ValueError, match="has not been trained"):
        save(Ensemble([ens.models[0], make_member("forward")]), path)
    with pytest.raises(ValueError, match="at least one model"):
        save(Ensemble([]), path)
    with pytest.raises(ValueError, match="each member keeps its own"):
        save(ens, path, tokenizer=object())
    with pytest.raises(TypeError, match="plain JSON"):
        save(ens, path, extra={"f": object()})
    assert list(tmp_path.iterdir()) == []


def _rewrite(path, out, change):
    """A copy of the ensemble file ``path`` at ``out`` with ``change(name, data) -> (name,
    data, compression)`` applied to every member (None drops it)."""
    import zipfile

    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            changed = change(info.filename, src.read(info))
            if changed is not None:
                name, data, how = changed
                dst.writestr(name, data, compress_type=how)


def test_damaged_or_hostile_ensemble_files_get_clear_errors(tmp_path):
    import json
    import zipfile

    from passage.utils import load, save

    ens, _ = _fitted_pair()
    path = tmp_path / "ens.passage"
    save(ens, path)
    stored = zipfile.ZIP_STORED

    def config(**changes):
        def change(name, data):
            if name == "passage-ensemble.json":
                meta = {**json.loads(data), **changes}
                return name, json.dumps(meta), stored
            return name, data, stored
        return change

    cases = {
        "traversal": (config(members=["../../etc/passwd"]), "member list must be"),
        "many": (config(members=[f"members/{i}.passage" for i in range(2000)]),
                 "member list must be"),
        "newer": (config(format_version=99), "newer than this Passage reads"),
        "missing": (lambda n, d: None if n == "members/1.passage" else (n, d, stored),
                    "members/1.passage' is missing"),
        "bad member": (lambda n, d: (n, b"not a zip" if n == "members/0.passage" else d,
                                     stored), "not a readable Passage model file"),
    }
    for name, (change, message) in cases.items():
        bad = tmp_path / f"{name}.passage"
        _rewrite(path, bad, change)
        with pytest.raises(ValueError, match=message):
            load(bad)
    truncated = tmp_path / "truncated.passage"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match="not a readable"):
        load(truncated)
