"""Batch samplers under a token budget (fairseq's max_tokens)."""

import numpy as np
import pytest

from passage import iterators
from passage.iterators import DEFAULT_MAX_TOKENS, Linear, Padded, SortedPadded, budget_batches
from passage.layers import Dense, Embedding, GatedRecurrent
from passage.models import RNN

SAMPLERS = [Padded, SortedPadded, Linear]


def _long_tail(n=3000, seed=0):
    """IMDB-like lengths (median ~230, up to ~2.5k) plus a few documents of 5k-40k tokens."""
    rng = np.random.default_rng(seed)
    lengths = np.clip(rng.lognormal(np.log(230), 0.7, n), 1, 2500).astype(np.int64)
    lengths[rng.choice(n, 12, replace=False)] = rng.integers(5000, 40000, 12)
    return lengths


@pytest.mark.parametrize("cls", SAMPLERS)
@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("budget", [1, 50, 4096, DEFAULT_MAX_TOKENS, None])
def test_budget_respected_and_every_example_exactly_once(cls, train, budget):
    lengths = _long_tail()
    batches = list(cls(size=64, max_tokens=budget).batches(lengths, train,
                                                           np.random.default_rng(1)))
    seen = np.concatenate(batches)
    assert np.array_equal(np.sort(seen), np.arange(len(lengths)))  # each once
    for b in batches:
        assert 1 <= len(b) <= 64
        if budget is not None and len(b) > 1:
            assert len(b) * lengths[b].max() <= budget
    if budget is None:
        assert max(len(b) * lengths[b].max() for b in batches) > 64 * 5000  # it did matter


def test_a_document_longer_than_the_budget_gets_a_batch_of_its_own():
    lengths = np.array([3, 100, 4, 5])
    assert [b.tolist() for b in SortedPadded(size=8, max_tokens=20).batches(
        lengths, train=False)] == [[0, 2, 3], [1]]
    assert [b.tolist() for b in budget_batches(np.arange(4), lengths, 8, 20)] == [
        [0], [1], [2, 3]]


def test_long_documents_share_a_batch_in_fewer_rows():
    lengths = np.array([10] * 6 + [1000] * 6)
    batches = list(SortedPadded(size=64, max_tokens=3000).batches(lengths, train=False))
    assert [len(b) for b in batches] == [6, 3, 3]


def test_the_default_leaves_typical_batches_unchanged():
    """IMDB-like data: every batch without a review over 2,048 tokens is the same as without a
    budget; only the batches holding one are split."""
    lengths = _long_tail()
    for cls in (Padded, SortedPadded):
        def batches(budget, cls=cls):
            return {tuple(b.tolist()) for b in cls(size=64, max_tokens=budget).batches(
                lengths, True, np.random.default_rng(5))}
        old, new = batches(None), batches(DEFAULT_MAX_TOKENS)
        fits = {b for b in old if len(b) * lengths[list(b)].max() <= DEFAULT_MAX_TOKENS}
        assert fits <= new  # every batch within the budget is unchanged
        assert fits != old and len(new) > len(old)  # the others (with a long doc) were split
        if cls is SortedPadded:  # the long documents sit together, at the end of a bucket
            assert len(fits) >= 0.9 * len(old)


def test_no_long_documents_means_identical_batches_in_the_same_order():
    lengths = np.random.default_rng(0).integers(1, 2048, 2000)
    for cls in (Padded, SortedPadded):
        a = list(cls(max_tokens=None).batches(lengths, True, np.random.default_rng(2)))
        b = list(cls().batches(lengths, True, np.random.default_rng(2)))
        assert len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("bad", [0, -3, 2.5, "many", True])
def test_a_bad_budget_is_refused(bad):
    with pytest.raises(ValueError, match="max_tokens must be a positive int"):
        SortedPadded(size=64, max_tokens=bad)


def test_2015_positional_arguments_still_work():
    it = SortedPadded(32)
    assert (it.size, it.shuffle, it.max_tokens) == (32, True, DEFAULT_MAX_TOKENS)
    it = Padded(16, False, "int32", "float32")
    assert it.get_config() == {"size": 16, "shuffle": False}  # the default is not written
    assert Padded(max_tokens=None).get_config()["max_tokens"] is None
    assert isinstance(iterators.get("sortedpadded"), SortedPadded)


@pytest.mark.parametrize("budget", [999, None])
def test_max_tokens_survives_save_and_load(tmp_path, budget):
    from passage.utils import load, save

    model = RNN([Embedding(size=4, n_features=10), GatedRecurrent(size=4),
                 Dense(size=1, activation="sigmoid")], cost="bce", verbose=0, seed=0,
                iterator=SortedPadded(size=8, max_tokens=budget))
    model.fit([[1, 2, 3], [4, 5]] * 4, [0, 1] * 4)
    save(model, tmp_path / "m.passage")
    back = load(tmp_path / "m.passage")
    assert (back.iterator.size, back.iterator.max_tokens) == (8, budget)
    assert back.get_config()["iterator"]["config"]["max_tokens"] == budget
