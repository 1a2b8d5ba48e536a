import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from passage.sklearn import RNNClassifier, RNNRegressor


def texts(n=120, seed=0):
    rng = np.random.default_rng(seed)
    words = "the a movie plot was it and".split()
    out, y = [], []
    for _ in range(n):
        k = int(rng.integers(0, 3))
        w = list(rng.choice(words, size=5)) + [["awful", "okay", "great"][k]]
        rng.shuffle(w)
        out.append(" ".join(w))
        y.append(["neg", "mid", "pos"][k])
    return out, np.array(y)


def test_classifier_multiclass_with_string_labels():
    X, y = texts()
    clf = RNNClassifier(size=16, embedding_size=16, n_epochs=8, lr=1e-2, min_df=1, seed=0)
    clf.fit(X, y)
    assert list(clf.classes_) == ["mid", "neg", "pos"]
    proba = clf.predict_proba(X)
    assert proba.shape == (120, 3) and np.allclose(proba.sum(1), 1, atol=1e-5)
    assert clf.score(X, y) > 0.9
    assert set(clf.predict(X[:5])) <= set(y)


def test_clone_pipeline_gridsearch():
    X, y = texts(90)
    yb = (y == "pos").astype(int)
    clf = RNNClassifier(size=8, embedding_size=8, n_epochs=2, min_df=1, seed=0)
    assert clone(clf).get_params() == clf.get_params()
    pipe = Pipeline([("strip", FunctionTransformer(lambda xs: [x.strip() for x in xs])),
                     ("rnn", clf)])
    grid = GridSearchCV(pipe, {"rnn__size": [4, 8]}, cv=2).fit(X, yb)
    assert grid.best_params_["rnn__size"] in (4, 8)
    assert grid.predict(X[:3]).shape == (3,)


def test_regressor_and_errors():
    X, y = texts()
    target = np.where(y == "pos", 9.0, np.where(y == "neg", 1.0, 5.0))
    reg = RNNRegressor(size=16, embedding_size=16, n_epochs=8, lr=1e-2, min_df=1, seed=0)
    assert reg.fit(X, target).score(X, target) > 0.8
    assert reg.predict(X[:4]).shape == (4,)
    with pytest.raises(ValueError, match="at least 2"):
        RNNClassifier().fit(["a", "b"], [1, 1])
    with pytest.raises(TypeError, match="single str"):
        reg.predict("one text")
    from sklearn.exceptions import NotFittedError
    with pytest.raises(NotFittedError):
        RNNClassifier().predict(["x"])
