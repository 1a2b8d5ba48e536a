"""passage.targets: labels -> the arrays each cost trains on, per-step labels, class weights."""

import re
from collections import Counter

import numpy as np
import pytest

from passage import costs as C
from passage.targets import class_weights, prepare, prepare_per_step


def test_class_labels_for_cce_are_integer_indices():
    y = prepare([2, 0, 1, 2], C.CategoricalCrossEntropy, out_size=3)
    assert y.dtype == np.int64 and y.shape == (4,) and y.tolist() == [2, 0, 1, 2]
    # whole-number floats, a column of labels and numbers written as text read the same
    for labels in ([2.0, 0.0, 1.0, 2.0], [[2], [0], [1], [2]], np.array([2, 0, 1, 2], np.uint8),
                   ["2", "0", "1", "2"]):
        got = prepare(labels, C.CategoricalCrossEntropy, out_size=3)
        assert got.dtype == np.int64 and got.tolist() == [2, 0, 1, 2], labels


def test_rows_of_class_probabilities_for_cce_are_kept_as_floats():
    probs = np.array([[0.2, 0.8, 0.0], [1.0, 0.0, 0.0]])
    y = prepare(probs, C.CategoricalCrossEntropy, out_size=3)
    assert y.dtype == np.float32 and y.shape == (2, 3)
    np.testing.assert_allclose(y, probs, rtol=1e-7)
    with pytest.raises(ValueError, match=r"labels have 3 columns but the output layer has 4 "
                                         r"units \(CategoricalCrossEntropy\)"):
        prepare(probs, C.CategoricalCrossEntropy, out_size=4)


@pytest.mark.parametrize("labels, match", [
    ([0, 1, 3], r"class label 3 does not fit an output layer of 3 units; use Dense\(size=4, "
                r"activation='softmax'\)"),
    ([0, 7, 1], r"class label 7 does not fit an output layer of 3 units; use Dense\(size=8"),
    ([0, -1, 1], r"class label -1 does not fit an output layer of 3 units; use Dense\(size=3"),
    ([0, 1.5, 2], "needs integer class labels"),
])
def test_cce_labels_that_are_not_class_indices_say_how_to_fix_it(labels, match):
    with pytest.raises(ValueError, match=match):
        prepare(labels, C.CategoricalCrossEntropy, out_size=3)


def test_binary_labels_become_a_float_column():
    y = prepare([1, 0, 1], C.BinaryCrossEntropy, out_size=1)
    assert y.dtype == np.float32 and y.shape == (3, 1) and y[:, 0].tolist() == [1, 0, 1]
    soft = prepare(np.array([0.25, 0.75]), C.BinaryCrossEntropy, out_size=1)  # soft labels
    np.testing.assert_array_equal(soft, [[0.25], [0.75]])
    with pytest.raises(ValueError, match="labels have 1 columns but the output layer has 2 units "
                                         r"\(BinaryCrossEntropy\)"):
        prepare([1, 0, 1], C.BinaryCrossEntropy, out_size=2)


def test_labels_outside_0_1_for_bce_get_a_hint_for_classes_or_regression():
    with pytest.raises(ValueError, match=r"labels in \[0, 1\], got values from 0 to 2: for 3 "
                                         r"classes use Dense\(size=3, activation='softmax'\) "
                                         "with cost='cce'"):
        prepare([0, 1, 2, 1], C.BinaryCrossEntropy, out_size=1)
    with pytest.raises(ValueError, match="got values from -0.5 to 3.25: use cost='mse' for "
                                         "regression"):
        prepare([-0.5, 3.25, 1.0], C.BinaryCrossEntropy, out_size=1)


def test_regression_targets_are_a_float_column_of_the_values():
    values = [1.5, -2.0, 1e6]
    y = prepare(values, C.MeanSquaredError, out_size=1)
    assert y.dtype == np.float32 and y.shape == (3, 1)
    np.testing.assert_array_equal(y[:, 0], np.float32(values))
    two = prepare([[1.0, 2.0], [3.0, 4.0]], C.MeanAbsoluteError, out_size=2)
    assert two.shape == (2, 2)
    # many distinct values into one unit read as regression: fine; a width mismatch is not
    with pytest.raises(ValueError, match=r"labels have 2 columns but the output layer has 1 "
                                         r"units \(MeanSquaredError\)"):
        prepare([[1.0, 2.0], [3.0, 4.0]], C.MeanSquaredError, out_size=1)


@pytest.mark.parametrize("cost", [C.Hinge, C.SquaredHinge])
def test_hinge_targets_are_minus_one_and_plus_one(cost):
    y = prepare([0, 1, 1, 0], cost, out_size=1)
    assert y.dtype == np.float32 and y[:, 0].tolist() == [-1, 1, 1, -1]
    labels = np.array([2, 0, 1, 2])
    multi = prepare(labels, cost, out_size=3)
    expected = 2 * np.eye(3)[labels] - 1  # one-vs-rest: +1 for the class, -1 elsewhere
    np.testing.assert_array_equal(multi, expected)
    with pytest.raises(ValueError, match=r"class labels must be in 0\.\.2 for 3 output units"):
        prepare([0, 3], cost, out_size=3)


def test_labels_that_are_not_finite_numbers_are_refused_by_position():
    with pytest.raises(ValueError, match="label 2 is nan: labels must be finite numbers"):
        prepare([0, 1, float("nan"), 1], C.BinaryCrossEntropy, out_size=1)
    with pytest.raises(ValueError, match="label 1 is inf"):
        prepare([0.5, float("inf")], C.MeanSquaredError, out_size=1)
    with pytest.raises(TypeError, match="labels must be numbers .* got list holding str"):
        prepare(["pos", "neg"], C.BinaryCrossEntropy, out_size=1)
    with pytest.raises(TypeError, match="one label per example, got a scalar"):
        prepare(1, C.BinaryCrossEntropy, out_size=1)


def test_per_step_labels_are_prepared_sequence_by_sequence():
    Y = [[0, 2, 1], [1], [2, 2]]
    lengths = np.array([3, 1, 2])
    out = prepare_per_step(Y, C.CategoricalCrossEntropy, 3, lengths)
    assert [a.tolist() for a in out] == Y and all(a.dtype == np.int64 for a in out)
    binary = prepare_per_step([[1, 0], [0]], C.BinaryCrossEntropy, 1, np.array([2, 1]))
    assert [a.shape for a in binary] == [(2, 1), (1, 1)]
    assert [a[:, 0].tolist() for a in binary] == [[1, 0], [0]]
    # a label out of range is found in whichever sequence it sits
    with pytest.raises(ValueError, match="class label 5 does not fit an output layer of 3"):
        prepare_per_step([[0], [1, 5]], C.CategoricalCrossEntropy, 3, np.array([1, 2]))


def test_per_step_labels_must_match_the_sequences():
    with pytest.raises(ValueError, match="got 2 sequences but 3 label sequences"):
        prepare_per_step([[0], [1], [0]], C.CategoricalCrossEntropy, 2, np.array([1, 1]))
    with pytest.raises(ValueError, match="example 1 has 3 steps but 2 labels: a model whose "
                                         "output is a sequence needs one label per step"):
        prepare_per_step([[0], [1, 0]], C.CategoricalCrossEntropy, 2, np.array([1, 3]))
    with pytest.raises(ValueError, match="example 0 has 2 steps but a single label"):
        prepare_per_step([1, [1, 0]], C.CategoricalCrossEntropy, 2, np.array([2, 2]))


def test_balanced_class_weights_are_n_over_classes_times_count():
    labels = [0, 0, 0, 1, 2, 2, 0, 1]
    y = prepare(labels, C.CategoricalCrossEntropy, out_size=4)  # class 3 never seen
    w = class_weights("balanced", y, C.CategoricalCrossEntropy, 4, per_step=False)
    counts = Counter(labels)
    expected = [len(labels) / (4 * counts[k]) if counts[k] else 1.0 for k in range(4)]
    np.testing.assert_allclose(w, expected)
    # weighted, every seen class carries the same total weight
    totals = [w[k] * counts[k] for k in range(3)]
    np.testing.assert_allclose(totals, totals[0])


def test_balanced_class_weights_of_binary_probability_and_per_step_targets():
    labels = [1, 0, 0, 0]
    yb = prepare(labels, C.BinaryCrossEntropy, out_size=1)
    wb = class_weights("balanced", yb, C.BinaryCrossEntropy, 1, per_step=False)
    np.testing.assert_allclose(wb, [4 / (2 * 3), 4 / (2 * 1)])  # a binary model has 2 classes
    # rows of probabilities count for their most likely class
    probs = prepare(np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]), C.CategoricalCrossEntropy, 2)
    wp = class_weights("balanced", probs, C.CategoricalCrossEntropy, 2, per_step=False)
    np.testing.assert_allclose(wp, [3 / (2 * 2), 3 / (2 * 1)])
    steps = prepare_per_step([[0, 1, 1], [1]], C.CategoricalCrossEntropy, 2, np.array([3, 1]))
    ws = class_weights("balanced", steps, C.CategoricalCrossEntropy, 2, per_step=True)
    np.testing.assert_allclose(ws, [4 / (2 * 1), 4 / (2 * 3)])


def test_class_weights_from_a_dict_default_to_one():
    y = prepare([0, 1, 2], C.CategoricalCrossEntropy, out_size=3)
    w = class_weights({2: 5.0, 0: 0.0}, y, C.CategoricalCrossEntropy, 3, per_step=False)
    assert w.tolist() == [0.0, 1.0, 5.0]
    w = class_weights({np.int64(1): 2}, y, C.CategoricalCrossEntropy, 3, per_step=False)
    assert w.tolist() == [1.0, 2.0, 1.0]


@pytest.mark.parametrize("class_weight, exc, match", [
    ("equal", ValueError, "class_weight must be 'balanced' or a dict {class: weight}, got 'equal'"),
    ([1.0, 2.0], TypeError, "class_weight must be 'balanced' or a dict, got list"),
    ({3: 1.0}, ValueError, "class_weight key 3 is not a class index 0..2: keys are the integer"),
    ({"a": 1.0}, ValueError, "class_weight key 'a' is not a class index"),
    ({1.0: 1.0}, ValueError, "class_weight key 1.0 is not a class index"),
    ({1: -0.5}, ValueError, "class_weight[1] = -0.5: weights must be >= 0"),
    ({1: float("inf")}, ValueError, "class_weight[1] = inf: weights must be >= 0"),
])
def test_bad_class_weights_say_what_is_wrong(class_weight, exc, match):
    y = prepare([0, 1, 2], C.CategoricalCrossEntropy, out_size=3)
    with pytest.raises(exc, match=re.escape(match)):
        class_weights(class_weight, y, C.CategoricalCrossEntropy, 3, per_step=False)


def test_class_weights_need_a_classifier():
    y = prepare([0.5, 2.0], C.MeanSquaredError, out_size=1)
    for cost, out_size in [(C.MeanSquaredError, 1), (C.Hinge, 2), (C.BinaryCrossEntropy, 2)]:
        with pytest.raises(ValueError, match="class_weight needs a classifier"):
            class_weights("balanced", y, cost, out_size, per_step=False)


def test_a_row_with_one_missing_value_is_named_in_the_error():
    with pytest.raises(ValueError, match=r"label 1 is \[0.5, nan\].*finite"):
        prepare([[0.5, 0.5], [0.5, float("nan")]], C.CategoricalCrossEntropy, 2)


def test_a_scalar_nan_is_refused_as_a_scalar():
    with pytest.raises(TypeError, match="one label per example, got a scalar"):
        prepare(float("nan"), C.BinaryCrossEntropy, 1)
