"""TokenArray: a sequence of sequences in two flat arrays, interchangeable with lists of lists."""

import numpy as np
import pytest

from passage.iterators import SortedPadded, make_batch, sequence_lengths
from passage.sequences import TokenArray

LISTS = [[5, 6, 7], [], [8], [9, 10, 11, 12], [], [3]]


def test_behaves_like_the_lists():
    ta = TokenArray.from_sequences(LISTS)
    assert len(ta) == 6 and ta.tolist() == LISTS
    assert [x.tolist() for x in ta] == LISTS
    assert isinstance(ta[0], np.ndarray) and ta[0].dtype == np.int32
    assert ta[-1].tolist() == [3] and ta[np.int64(3)].tolist() == [9, 10, 11, 12]
    assert ta.lengths().tolist() == [3, 0, 1, 4, 0, 1]
    assert ta.nbytes == 4 * 9 + 8 * 7
    assert [8] in ta and [8, 9] not in ta and ta.index([]) == 1 and ta.count([]) == 2
    with pytest.raises(IndexError):
        ta[6]
    with pytest.raises(IndexError):
        ta[-7]


@pytest.mark.parametrize("index", [slice(1, 4), slice(None, None, 2), slice(4, 1), slice(None),
                                   [3, 0, 3], np.array([5, 1]), [], [-1, -6],
                                   np.array([True, False, True, False, False, True])])
def test_slices_and_fancy_indexes_give_a_token_array(index):
    ta = TokenArray.from_sequences(LISTS)
    sub = ta[index]
    assert isinstance(sub, TokenArray)
    if isinstance(index, slice):
        expected = LISTS[index]
    elif np.asarray(index).dtype == bool:
        expected = [s for s, keep in zip(LISTS, index, strict=True) if keep]
    else:
        expected = [LISTS[i] for i in index]
    assert sub.tolist() == expected


def test_bad_indexes_and_arrays():
    ta = TokenArray.from_sequences(LISTS)
    with pytest.raises(IndexError):
        ta[[0, 6]]
    with pytest.raises(IndexError):
        ta[np.array([True, False])]
    with pytest.raises(IndexError):
        ta[[0.5]]
    with pytest.raises(ValueError, match="offsets"):
        TokenArray(np.arange(3), np.array([0, 2]))
    with pytest.raises(ValueError, match="integer"):
        TokenArray(np.zeros(2), np.array([0, 2]))
    with pytest.raises(TypeError, match="integers"):
        TokenArray.from_sequences([[0.5]])


def test_empty():
    for ta in (TokenArray.from_sequences([]), TokenArray.concatenate([])):
        assert len(ta) == 0 and ta.tolist() == [] and list(ta) == []
        assert sequence_lengths(ta).tolist() == []
    only_empty = TokenArray.from_sequences([[], []])
    x, lengths = make_batch(only_empty, [1, 0])
    assert x.shape == (2, 1) and not x.any() and lengths.tolist() == [0, 0]


def test_concatenate_and_equality():
    a, b = TokenArray.from_sequences(LISTS[:2]), TokenArray.from_sequences(LISTS[2:])
    assert (a + b) == TokenArray.from_sequences(LISTS)
    assert (a + b).tolist() == LISTS and a != b
    assert TokenArray.from_sequences(a, dtype=np.int64).values.dtype == np.int64


def test_tolist_shares_int_objects_and_handles_large_ids():
    ta = TokenArray.from_sequences([[1000] * 600, [1000] * 500])
    out = ta.tolist()
    assert out == [[1000] * 600, [1000] * 500] and out[0][0] is out[1][0]
    big = TokenArray(np.array([2**40, -3], np.int64), np.array([0, 1, 2]))
    assert big.tolist() == [[2**40], [-3]]


def test_make_batch_and_lengths_match_the_list_path():
    rng = np.random.default_rng(0)
    lists = [rng.integers(0, 50, size=rng.integers(0, 30)).tolist() for _ in range(500)]
    ta = TokenArray.from_sequences(lists)
    assert np.array_equal(sequence_lengths(ta), sequence_lengths(lists))
    lengths = sequence_lengths(ta)
    for idx in SortedPadded(size=64).batches(lengths, rng=np.random.default_rng(1)):
        x_fast, l_fast = make_batch(ta, idx)
        x_list, l_list = make_batch(lists, idx)
        assert x_fast.dtype == x_list.dtype == np.int64
        assert np.array_equal(x_fast, x_list) and np.array_equal(l_fast, l_list)
    x, lengths = make_batch(ta, [-1, 0])
    assert np.array_equal(x, make_batch(lists, [499, 0])[0])
    with pytest.raises(IndexError):
        make_batch(ta, [500])


def test_a_model_trains_and_predicts_on_a_token_array():
    import torch

    from passage.layers import Dense, Embedding, GatedRecurrent
    from passage.models import RNN
    from passage.preprocessing import Tokenizer

    texts = ["good film", "bad film", "a good one", "a bad one"] * 8
    labels = [1, 0, 1, 0] * 8
    tok = Tokenizer(min_df=1)
    X = tok.fit_transform(texts, as_array=True)
    torch.manual_seed(0)
    model = RNN([Embedding(8, tok.n_features), GatedRecurrent(8), Dense(1, "sigmoid")],
                "bce", verbose=0, seed=0)
    model.fit(X, labels, n_epochs=2)
    from_arrays = model.predict(X)
    assert from_arrays.shape == (32, 1)
    assert np.allclose(from_arrays, model.predict(X.tolist()))
