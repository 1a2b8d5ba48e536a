"""passage.serve.replicas: batches run in worker processes, each with its own copy of the model
file; answers equal the model's own, errors come back as the same errors, a dead process is
replaced, a changed model file is refused, and no process outlives the server."""

import os
import signal
import time

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the serve extra: pip install -e '.[serve]'")
from fastapi.testclient import TestClient  # noqa: E402

from passage.io import save  # noqa: E402
from passage.recipe import TextModelOptions, fit_text_model  # noqa: E402
from passage.serve import create_app  # noqa: E402
from passage.serve.predictor import InputError, file_sha256  # noqa: E402
from passage.serve.replicas import ReplicaError, Replicas  # noqa: E402

TEXTS = ["good fun film", "awful dull film", "the film was", "good", "bad bad bad"]


@pytest.fixture(scope="module")
def model():
    texts = ["good fun film", "great lovely fun", "bad awful dull", "boring dull bad"] * 15
    labels = ["pos", "pos", "neg", "neg"] * 15
    return fit_text_model(texts, labels, options=TextModelOptions(
        size=8, embedding_size=8, n_epochs=2, min_df=1, validation_split=0.0,
        direction="bi", pool="max", wide=False, truncate=None))


@pytest.fixture(scope="module")
def model_file(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("replicas") / "m.passage"
    save(model, path)
    return path


def gone(pid: int, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:  # reaped by its parent, or a zombie not yet reaped
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split(")")[1].split()[0] == "Z":
                    return True
        except OSError:
            return True
        time.sleep(0.05)
    return False


def pos_scores(answers):
    return [{a["label"]: a["score"] for a in x}["pos"] for x in answers]


def test_answers_and_trace_come_from_the_processes_and_equal_the_models(model, model_file):
    replicas = Replicas(str(model_file), 2, file_sha256(str(model_file)))
    replicas.start()
    try:
        pids = replicas.pids
        assert len(pids) == 2 and os.getpid() not in pids
        replicas.attach()
        answers = replicas.answers(TEXTS)
        assert all([a["score"] for a in x] == sorted((a["score"] for a in x), reverse=True)
                   for x in answers)  # best first
        np.testing.assert_allclose(pos_scores(answers), model.predict(TEXTS)[:, 0], rtol=1e-5,
                                   atol=1e-6)
        assert [t["token"] for t in replicas.trace("good fun film")["tokens"]] == \
            ["good", "fun", "film"]
        with pytest.raises(InputError, match="no tokens"):  # the same error class, re-raised
            replicas.trace("   ")
    finally:
        replicas.stop()
    assert all(gone(p) for p in pids)


def test_a_killed_process_is_replaced_by_the_next_batch(model, model_file):
    replicas = Replicas(str(model_file), 1)
    replicas.start()
    try:
        replicas.attach()
        first = replicas.pids[0]
        os.kill(first, signal.SIGKILL)
        assert gone(first)
        got = pos_scores(replicas.answers(TEXTS))  # a new process answers
        np.testing.assert_allclose(got, model.predict(TEXTS)[:, 0], rtol=1e-5, atol=1e-6)
        assert replicas.pids and first not in replicas.pids
    finally:
        replicas.stop()


def test_a_model_file_changed_after_the_server_read_it_is_refused(model, model_file, tmp_path):
    path = tmp_path / "changing.passage"
    save(model, path)
    sha = file_sha256(str(path))
    with open(path, "ab") as f:  # another model written over it, say
        f.write(b"\0")
    with pytest.raises(ReplicaError, match="changed on disk"):
        Replicas(str(path), 1, sha).start()


def test_the_app_runs_a_model_file_in_processes_and_a_model_object_in_its_own(model,
                                                                             model_file):
    app = create_app(model_file, workers=2, max_wait_ms=0)
    with TestClient(app) as c:
        replicas = app.state.replicas
        assert replicas is not None and len(replicas.pids) == 2
        pids = replicas.pids
        answer = c.post("/predict", json={"inputs": TEXTS}).json()
        np.testing.assert_allclose(pos_scores(answer), model.predict(TEXTS)[:, 0], rtol=1e-5,
                                   atol=1e-6)
        top = c.post("/predict", json={"inputs": TEXTS[0], "parameters": {"top_k": 1}}).json()
        assert top == answer[0][:1]
        assert c.post("/trace", json={"inputs": " "}).status_code == 422  # no tokens
        assert c.post("/trace", json={"inputs": "good film"}).status_code == 200
    assert all(gone(p) for p in pids)  # the app's shutdown ended them
    assert create_app(model).state.replicas is None
    assert create_app(model_file, processes=False).state.replicas is None
    with pytest.raises(ValueError, match="needs a model file"):
        create_app(model, processes=True)


def test_the_processes_run_this_copy_of_passage(model, model_file, tmp_path, monkeypatch):
    """Another ``passage`` in the working directory (or first on PYTHONPATH) is not the one a
    worker process imports: it runs the server's own code."""
    for where in ("cwd", "path"):
        fake = tmp_path / where / "passage"
        fake.mkdir(parents=True)
        (fake / "__init__.py").write_text("raise SystemExit('the wrong passage')\n")
    monkeypatch.chdir(tmp_path / "cwd")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "path"))
    replicas = Replicas(str(model_file), 1)
    replicas.start()
    try:
        replicas.attach()
        got = pos_scores(replicas.answers(TEXTS[:2]))
        np.testing.assert_allclose(got, model.predict(TEXTS[:2])[:, 0], rtol=1e-5, atol=1e-6)
    finally:
        replicas.stop()
