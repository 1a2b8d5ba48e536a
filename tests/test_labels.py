"""passage.labels: the task from the labels, class names <-> ids, and codings read from files."""

import numpy as np
import pytest

from passage.labels import MAX_CLASSES, LabelCoding, canonical, infer_task


@pytest.mark.parametrize("labels, task", [
    (["pos", "neg"], "binary"),
    ([0, 1, 1], "binary"),
    (["1", "2", "3"], "multiclass"),          # integers written as text are numbers
    (list(range(MAX_CLASSES)), "multiclass"),
    (list(range(MAX_CLASSES + 1)), "regression"),
    ([0.5, 1.0, 2.0], "regression"),
    (["a", "b", "c", 1], "multiclass"),        # any string makes classes
])
def test_the_task_follows_from_the_labels(labels, task):
    assert infer_task(labels) == task


def test_one_label_or_a_non_finite_one_is_refused():
    with pytest.raises(ValueError, match="at least 2 different labels"):
        infer_task(["pos", " pos "])  # the same label once stripped
    with pytest.raises(ValueError, match="not a finite number"):
        canonical(float("nan"))
    with pytest.raises(ValueError, match="neither a number nor a string"):
        canonical(None)


def test_names_are_kept_as_given_and_sorted_numbers_first():
    coding = LabelCoding.fit([" b", 10, "a", "2", 10.0])
    assert coding.task == "multiclass"
    # sorted as numbers first ("2" is the number 2), each name as first given (" b" stripped)
    assert coding.classes == ["2", 10, "a", "b"]
    ids = coding.encode(["a", 10, "2.0", "b"])
    assert ids.dtype == np.int64 and ids.tolist() == [2, 1, 0, 3]
    assert coding.decode(ids) == ["a", 10, "2", "b"]
    with pytest.raises(ValueError, match=r"label 'c' \(text 2\) is not one of the model's"):
        coding.encode(["a", "c"])


def test_binary_and_regression_codings():
    binary = LabelCoding.fit(["yes", "no", "yes"])
    assert binary.classes == ["no", "yes"] and binary.n_outputs == 1  # the larger is positive
    out = np.array([[0.2], [0.9]])
    assert binary.output_ids(out).tolist() == [0, 1]
    np.testing.assert_allclose(binary.probabilities(out), [[0.8, 0.2], [0.1, 0.9]])
    reg = LabelCoding.fit(["1.5", 2, 3.25])
    assert reg.task == "regression" and reg.classes is None and reg.n_outputs == 1
    assert reg.encode(["1.5", 2]).tolist() == [1.5, 2.0]
    assert reg.probabilities(out) is None
    with pytest.raises(ValueError, match="regression needs numeric labels"):
        LabelCoding.fit(["1", "x", "2"], task="regression")
    with pytest.raises(ValueError, match="exactly 2 different labels"):
        LabelCoding.fit(["a", "b", "c"], task="binary")


def test_a_coding_from_a_file_is_checked():
    assert LabelCoding._checked("multiclass", ["a", "b", "c"]).n_outputs == 3
    for task, classes, match in [("multiclass", ["a"], "at least 2 class names"),
                                 ("multiclass", ["a", "a"], "repeat"),
                                 ("binary", ["a", "b", "c"], "names 3 classes"),
                                 ("multiclass", [True, False], "at least 2 class names")]:
        with pytest.raises(ValueError, match=match):
            LabelCoding._checked(task, classes)
    with pytest.raises(ValueError, match="output layer has 1 unit"):
        LabelCoding("multiclass", ["a", "b", "c"]).check_outputs(1)
    LabelCoding("binary", ["a", "b"]).check_outputs(2)  # a softmax over 2 also reads as binary
