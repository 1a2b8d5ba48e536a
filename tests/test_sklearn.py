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
    clf = RNNClassifier(size=16, embedding_size=16, n_epochs=15, lr=1e-2, min_df=1, seed=0)
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


API_CHECKS = ["check_estimator_cloneable", "check_estimator_repr",
              "check_no_attributes_set_in_init",
              "check_parameters_default_constructible", "check_get_params_invariance",
              "check_set_params", "check_do_not_raise_errors_in_init_or_set_params",
              "check_mixin_order", "check_valid_tag_types", "check_estimator_tags_renamed"]


@pytest.mark.parametrize("name", API_CHECKS)
@pytest.mark.parametrize("Est", [RNNClassifier, RNNRegressor])
def test_sklearn_api_checks(Est, name):
    # sklearn's check_estimator runs only check_estimator_cloneable for estimators tagged as
    # taking strings; its numeric-data checks do not apply to raw text. These API checks do.
    from sklearn.utils import estimator_checks
    getattr(estimator_checks, name)(Est.__name__, Est(size=4, embedding_size=4, n_epochs=1))


def test_text_versions_of_data_checks():
    X, y = texts(60)
    clf = RNNClassifier(size=8, embedding_size=8, n_epochs=2, min_df=1, seed=0)
    assert clf.fit(X, y) is clf  # fit returns self
    params = clf.get_params()
    p1 = clf.predict_proba(X)
    assert clf.get_params() == params  # predict does not change parameters
    perm = np.random.default_rng(1).permutation(len(X))
    np.testing.assert_allclose(clf.predict_proba([X[i] for i in perm]), p1[perm], atol=1e-6)
    np.testing.assert_allclose(clf.predict_proba(X[:7]), p1[:7], atol=1e-6)  # subsets
    p2 = clone(clf).fit(X, y).predict_proba(X)  # seeded fit is idempotent
    np.testing.assert_allclose(p1, p2, atol=1e-6)
    with pytest.raises(ValueError, match="requires y"):
        clf.fit(X, None)
    with pytest.raises(ValueError, match="empty"):
        RNNRegressor().fit([], [])
    with pytest.raises(ValueError, match="finite"):
        RNNRegressor(min_df=1).fit(["a b", "c d"], [1.0, float("inf")])


def test_class_weight_by_label():
    X, y = texts(60)
    clf = RNNClassifier(size=8, embedding_size=8, n_epochs=1, min_df=1, seed=0,
                        class_weight={"neg": 2.0, "pos": 0.5})
    assert clf.fit(X, y).predict(X[:3]).shape == (3,)
    with pytest.raises(ValueError, match="not in y"):
        clone(clf).set_params(class_weight={"bad": 1.0}).fit(X, y)
    with pytest.raises(ValueError, match="for classifiers"):
        RNNRegressor(class_weight="balanced").fit(["a", "b"], [1.0, 2.0])


def test_without_scikit_learn_the_error_names_the_extra(tmp_path):
    import subprocess
    import sys

    blocker = tmp_path / "sklearn"  # a package named sklearn that cannot be imported
    blocker.mkdir()
    (blocker / "__init__.py").write_text("raise ImportError('no scikit-learn here')\n")
    out = subprocess.run([sys.executable, "-c", "import passage.sklearn"], capture_output=True,
                         text=True, env={**__import__("os").environ, "PYTHONPATH": str(tmp_path)})
    assert out.returncode != 0
    assert "pip install 'passage[sklearn]'" in out.stderr
