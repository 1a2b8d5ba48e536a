"""passage.utils: the 2015 names save and load, and the small data helpers iter_data, shuffle."""

from collections import Counter

import numpy as np
import pytest

import passage
from passage import io, utils
from passage.utils import iter_data, shuffle


def test_iter_data_gives_consecutive_slices_of_size_items():
    data = list(range(10))
    chunks = list(iter_data(data, size=4))
    assert chunks == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]  # the last one holds the rest
    assert [x for c in chunks for x in c] == data
    for size in (1, 3, 10, 11, 128):
        lengths = [len(c) for c in iter_data(data, size=size)]
        assert sum(lengths) == 10 and len(lengths) == -(-10 // size)
        assert all(n == size for n in lengths[:-1]) and 0 < lengths[-1] <= size
    assert list(iter_data([], size=4)) == []


def test_iter_data_of_several_sequences_slices_them_alike():
    X = np.arange(7 * 2).reshape(7, 2)
    Y = ["a", "b", "c", "d", "e", "f", "g"]
    chunks = list(iter_data(X, Y, size=3))
    assert len(chunks) == 3 and all(isinstance(c, tuple) and len(c) == 2 for c in chunks)
    for (x, y), start in zip(chunks, (0, 3, 6), strict=True):
        np.testing.assert_array_equal(x, X[start:start + 3])
        assert y == Y[start:start + 3]
    # the default size is 128
    assert [len(c) for c in iter_data(list(range(300)))] == [128, 128, 44]


def test_shuffle_moves_several_sequences_with_one_permutation():
    X = [f"text {i}" for i in range(50)]
    Y = list(range(50))
    Z = np.arange(50) * 10
    sx, sy, sz = shuffle(X, Y, Z, seed=1)
    assert sorted(sy) == Y and Counter(sx) == Counter(X)  # every item once
    assert sx != X  # 50 items: the odds of the identity permutation are 1 / 50!
    for x, y, z in zip(sx, sy, sz, strict=True):
        assert x == f"text {y}" and z == 10 * y  # the pairs stay together
    assert X == [f"text {i}" for i in range(50)] and Y == list(range(50))  # inputs untouched


def test_shuffle_follows_its_seed():
    data = list(range(40))
    assert shuffle(data, seed=3) == shuffle(data, seed=3)
    assert shuffle(data, seed=3) != shuffle(data, seed=4)
    one = shuffle(data, seed=5)
    assert isinstance(one, list) and sorted(one) == data  # one sequence in: one list out
    assert shuffle([], seed=0) == []


def test_save_and_load_are_the_library_ones(tmp_path):
    assert utils.save is io.save is passage.save and utils.load is io.load is passage.load
    assert set(utils.__all__) == {"save", "load", "iter_data", "shuffle"}
    assert all(callable(getattr(utils, name)) for name in utils.__all__)


def test_a_model_saved_and_loaded_through_utils_predicts_the_same(tmp_path):
    from passage.layers import Dense, Embedding, GatedRecurrent
    from passage.models import RNN

    model = RNN([Embedding(4, 8), GatedRecurrent(4), Dense(2, "softmax")], "cce", verbose=0,
                seed=0)
    model.fit([[1, 2, 3], [4], [5, 6]], [0, 1, 0], n_epochs=1)
    path = tmp_path / "m.passage"
    utils.save(model, path)
    loaded = utils.load(str(path))
    X = [[1, 2], [7, 7, 7], [3]]
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    assert loaded.predict(X).sum(axis=1) == pytest.approx(np.ones(3), abs=1e-6)
