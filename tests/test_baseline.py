"""passage.baseline: TF-IDF + a linear model, grid-searched by cross-validation or on a held-out
split, on tiny problems whose answer is known."""

import sys

import numpy as np
import pytest

pytest.importorskip("sklearn")

from passage.baseline import (  # noqa: E402
    CLASSIFIER_GRID,
    default_grid,
    fit_baseline,
    fit_on_split,
    make_pipeline,
    validation_score,
)

TEMPLATES = ["the movie was {}", "a {} film", "this story is {} and long", "it was {} really"]


def texts_with(words, n, templates=TEMPLATES):
    """``n`` texts, each one of ``words`` (cycled; its index is the label) in one of the
    ``templates``: every template holds every word alike, so the word alone decides."""
    texts, labels = [], []
    for i in range(n):
        k = i % len(words)
        texts.append(templates[(i // len(words)) % len(templates)].format(words[k]))
        labels.append(k)
    return texts, np.array(labels)


UNSEEN = ["what a {} plot", "so {} overall"]  # the words in templates never trained on


def test_the_pipeline_is_tfidf_then_the_task_model():
    from sklearn.linear_model import LogisticRegression, Ridge

    for task, model in [("binary", LogisticRegression), ("multiclass", LogisticRegression),
                        ("regression", Ridge)]:
        pipe = make_pipeline(task)
        assert [name for name, _ in pipe.steps] == ["tfidf", "model"]
        assert isinstance(pipe.named_steps["model"], model)
        tfidf = pipe.named_steps["tfidf"]
        assert tfidf.ngram_range == (1, 2) and tfidf.sublinear_tf
        # every grid key is a parameter of the pipeline of its task
        assert set(default_grid(task)) <= set(pipe.get_params())


def test_default_grid_is_a_copy():
    grid = default_grid("binary")
    grid["model__C"] = [0.5]
    assert default_grid("binary")["model__C"] != [0.5] and CLASSIFIER_GRID["model__C"] != [0.5]
    assert "model__alpha" in default_grid("regression") and "model__C" not in \
        default_grid("regression")


def test_a_separable_binary_problem_is_learned():
    texts, y = texts_with(["great", "awful"], 30)
    result = fit_baseline(texts, y, "binary")
    assert result.name == "tfidf+logreg" and result.cv_score == 1.0  # one word decides
    assert set(result.best_params) == set(CLASSIFIER_GRID)
    assert all(result.best_params[k] in CLASSIFIER_GRID[k] for k in CLASSIFIER_GRID)
    assert result.seconds > 0
    new, new_y = texts_with(["great", "awful"], 10, UNSEEN)
    assert result.model.predict(new).tolist() == new_y.tolist()


def test_a_separable_multiclass_problem_is_learned():
    words = ["great", "awful", "boring"]
    texts, y = texts_with(words, 36)
    result = fit_baseline(texts, y, "multiclass", grid={"tfidf__min_df": [1], "model__C": [10.0]})
    assert result.cv_score == 1.0
    assert result.best_params == {"tfidf__min_df": 1, "model__C": 10.0}
    assert result.model.predict(["boring it was", "great film", "the awful plot"]).tolist() == \
        [2, 0, 1]


def test_regression_scores_rmse_and_follows_the_signal():
    texts, k = texts_with(["low", "high"], 40)
    y = 10.0 * k  # 0 or 10: the word says which
    result = fit_baseline(texts, y, "regression", grid={"tfidf__min_df": [1],
                                                        "model__alpha": [0.1]})
    assert result.name == "tfidf+ridge"
    # cv_score is the RMSE (positive, lower is better); predicting the mean would score std(y)
    assert 0 < result.cv_score < 0.3 * np.std(y)
    pred = result.model.predict(["high it was", "low film"])
    assert pred[0] == pytest.approx(10, abs=2) and pred[1] == pytest.approx(0, abs=2)


def test_baseline_refuses_too_few_examples_per_class():
    with pytest.raises(ValueError, match="3-fold grid search needs at least 3"):
        fit_baseline(["a", "b", "c", "d"], [0, 0, 0, 1], "binary", grid=CLASSIFIER_GRID)


@pytest.mark.parametrize("texts, y, task, match", [
    (["a b", "c d", "e f"], [0, 1], "binary", "3 texts but 2 labels: they must match"),
    (["a b"] * 6, [1] * 6, "binary", "a single class: the baseline needs 2"),
    (["a b"] * 5, [1.0, 2.0, 3.0, 4.0, 5.0], "regression",
     "3-fold grid search needs at least 6 training texts"),
])
def test_fit_baseline_refuses_data_it_cannot_search(texts, y, task, match):
    with pytest.raises(ValueError, match=match):
        fit_baseline(texts, y, task)


def test_the_rarest_class_decides_how_many_folds_fit():
    texts, y = texts_with(["great", "awful"], 8)  # 4 of each class
    with pytest.raises(ValueError, match="5-fold grid search needs at least 5 training texts of "
                                         "every class; the rarest class has 4"):
        fit_baseline(texts, y, "binary", cv=5)


def test_validation_score_is_accuracy_or_r2():
    assert validation_score("binary", [1, 0, 1, 1], [1, 1, 1, 0]) == 0.5
    assert validation_score("multiclass", [[2], [0], [1]], [2, 0, 0]) == pytest.approx(2 / 3)
    y = np.array([1.0, 2.0, 4.0, 7.0])
    p = np.array([1.5, 2.0, 3.0, 8.0])
    expected = 1 - np.sum((y - p) ** 2) / np.sum((y - y.mean()) ** 2)
    assert validation_score("regression", y, p) == pytest.approx(expected)
    assert validation_score("regression", y, y) == 1.0
    assert validation_score("regression", y, np.full(4, y.mean())) == pytest.approx(0.0)
    assert validation_score("regression", [3.0, 3.0], [1.0, 5.0]) == 0.0  # R^2 undefined


def test_fit_on_split_keeps_the_grid_point_that_scores_best_on_the_split():
    words = ["great", "awful"]
    texts, y = texts_with(words, 20)   # each label word in 10 of the 20 texts
    texts = ["review " + t for t in texts]     # and one word in all of them
    val, val_y = texts_with(words, 10, UNSEEN)
    # min_df=15 keeps no label word: the first grid point cannot tell the classes apart
    blind = make_pipeline("binary").set_params(tfidf__min_df=15).fit(texts, y)
    assert "great" not in blind.named_steps["tfidf"].vocabulary_
    assert validation_score("binary", val_y, blind.predict(val)) < 1
    result = fit_on_split(texts, y, val, val_y, "binary",
                          grid={"tfidf__min_df": [15, 1], "model__C": [10.0]})
    assert result.best_params == {"tfidf__min_df": 1, "model__C": 10.0}
    assert result.cv_score == 1.0 and result.name == "tfidf+logreg" and result.seconds > 0
    assert result.model.predict(val).tolist() == val_y.tolist()


def test_fit_on_split_skips_grid_points_that_cannot_be_fitted():
    texts, y = texts_with(["great", "awful"], 12)
    val, val_y = texts_with(["great", "awful"], 6, UNSEEN)
    # min_df=100 is more documents than there are: that point fails and is skipped
    result = fit_on_split(texts, y, val, val_y, "binary",
                          grid={"tfidf__min_df": [100, 1], "model__C": [10.0]})
    assert result.best_params["tfidf__min_df"] == 1 and result.cv_score == 1.0
    with pytest.raises(ValueError, match="could not be fitted at any grid point"):
        fit_on_split(texts, y, val, val_y, "binary",
                     grid={"tfidf__min_df": [100], "model__C": [10.0]})


def test_fit_on_split_regression_scores_r2():
    texts, k = texts_with(["low", "high"], 30)
    val, val_k = texts_with(["low", "high"], 10, UNSEEN)
    result = fit_on_split(texts, 10.0 * k, val, 10.0 * val_k, "regression",
                          grid={"tfidf__min_df": [1], "model__alpha": [0.1, 100.0]})
    assert result.name == "tfidf+ridge"
    # heavy regularisation shrinks towards the mean: the light one explains more of the split
    assert result.best_params["model__alpha"] == 0.1
    assert result.cv_score == pytest.approx(
        validation_score("regression", 10.0 * val_k, result.model.predict(val)))
    # on templates it never saw, the word alone still orders the texts, better than the mean
    pred = result.model.predict(val)
    assert pred[val_k == 1].min() > pred[val_k == 0].max() and result.cv_score > 0


def test_fit_on_split_needs_texts_on_both_sides():
    with pytest.raises(ValueError, match="needs training and validation texts"):
        fit_on_split([], [], ["a"], [0], "binary")
    with pytest.raises(ValueError, match="needs training and validation texts"):
        fit_on_split(["a", "b"], [0, 1], [], [], "binary")


def test_without_scikit_learn_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)  # import sklearn now fails
    for call in (lambda: make_pipeline("binary"), lambda: fit_baseline(["a"], [0], "binary"),
                 lambda: fit_on_split(["a"], [0], ["a"], [0], "binary")):
        with pytest.raises(ImportError, match=r"needs scikit-learn: pip install 'passage\[sklearn"):
            call()
