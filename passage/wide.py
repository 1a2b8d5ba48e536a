"""A linear term over a text's word uni- and bigrams, blended into a recurrent model's output.

"Wide and deep": the model's pre-activation is ``Dense(recurrent state) + NgramLinear(ids)``.
The term is a TF-IDF linear model, fitted first and on its own (``fit_term``: L-BFGS, the
regularisation chosen on validation data, like the baseline the talk measures RNNs against);
``passage.recipe`` then trains the RNN and weighs the two on validation data, so the model
is at least as good there as the better of them, and usually better than both.

Features of a document of ``n`` tokens: its ``n`` token ids and its ``n - 1`` bigrams, each
bigram hashed into one of ``buckets`` rows after the vocabulary's. Each occurrence weighs the
idf of its row (from the training texts' document frequencies); the document's vector is
divided by the root of its summed squared idfs, so it has about unit length as in TF-IDF.
Only sums over occurrences: any runtime computes it (see ``passage.export``).

Inputs: ids ``(batch, time)`` int64, padded past ``lengths`` ``(batch,)``. Output:
``(batch, n_out)``.

>>> import torch
>>> term = NgramLinear(n_features=10, n_out=2, buckets=16)
>>> term(torch.tensor([[3, 4, 5], [6, 0, 0]]), torch.tensor([3, 1])).shape
torch.Size([2, 2])
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from passage import iterators
from passage._checks import check_int
from passage._memory import release_free_memory

if TYPE_CHECKING:
    from passage.layers import Dense
    RNN = Any  # passage.models.RNN, which imports this module: no import back up

INIT_SCALE = 1e-4
HASH_MULTIPLIER = 2654435761  # Knuth's multiplicative hash constant; ids stay far below 2**32


def bigram_rows(first: torch.Tensor, second: torch.Tensor, n_features: int,
                buckets: int) -> torch.Tensor:
    """The weight row of each bigram (first, second): a hash into the ``buckets`` rows after
    the ``n_features`` unigram rows. Any runtime can compute it: int64 multiply, add, modulo."""
    return (first * HASH_MULTIPLIER + second) % buckets + n_features


class NgramLinear(nn.Module):
    """The linear n-gram term (see the module docstring)."""

    idf: torch.Tensor  # a buffer, set by fit_term

    def __init__(self, n_features: int, n_out: int, buckets: int = 1 << 18):
        super().__init__()
        check_int("NgramLinear(n_features=...)", n_features)
        check_int("NgramLinear(n_out=...)", n_out)
        check_int("NgramLinear(buckets=...)", buckets)
        self.n_features, self.n_out, self.buckets = n_features, n_out, buckets
        # A near-zero start, for a term trained with the RNN by gradient steps (fit_term
        # replaces it); from a generator of its own, so it neither depends on nor moves the
        # global random state.
        start = torch.Generator().manual_seed(n_features * 31 + n_out)
        self.weight = nn.Parameter(
            torch.randn(n_features + buckets, n_out, generator=start) * INIT_SCALE)
        self.register_buffer("idf", torch.ones(n_features + buckets))  # set by fit_term

    def get_config(self) -> dict:
        return {"n_features": self.n_features, "n_out": self.n_out, "buckets": self.buckets}

    def rows(self, ids: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(document, row) of every unigram and bigram of the padded batch."""
        ids = ids.long()
        steps = torch.arange(ids.shape[1], device=ids.device)
        valid = steps[None, :] < lengths[:, None]
        pair = valid[:, 1:]  # a bigram at t needs tokens t and t + 1
        bigrams = bigram_rows(ids[:, :-1], ids[:, 1:], self.n_features, self.buckets)
        rows = torch.cat([ids[valid], bigrams[pair]])
        docs = torch.cat([valid.nonzero()[:, 0], pair.nonzero()[:, 0]])
        return docs, rows

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        docs, rows = self.rows(ids, lengths)
        idf = self.idf[rows]
        out = torch.zeros(ids.shape[0], self.n_out, device=ids.device, dtype=self.weight.dtype)
        out = out.index_add(0, docs, F.embedding(rows, self.weight) * idf[:, None])
        norm = torch.zeros(ids.shape[0], device=ids.device, dtype=idf.dtype)
        norm = norm.index_add(0, docs, idf * idf).sqrt().clamp(min=1e-12)
        return out / norm[:, None].to(out.dtype)


def fit_term(model: RNN, X: Sequence[Any] | np.ndarray, Y: Sequence[Any] | np.ndarray,
             validation_data: Sequence[Any] | None = None, monitor: str = "cost",
             strengths: Sequence[float] = (1.0, 10.0, 100.0, 1000.0),
             max_iter: int = 200) -> dict:
    """Fit ``model.wide`` alone, with a bias of its own, as an L2-regularised linear model on
    the model's cost (logistic, softmax or squared): what ``passage.recipe.blend`` later
    weighs against the recurrent part.

    The document frequencies of the training texts' n-grams set the term's idf; then, for each
    inverse regularisation strength C in ``strengths`` (as scikit-learn's ``C``: the mean cost
    plus ``|W|^2 / (2 C n)``), L-BFGS on the whole training set, warm-started from the last C;
    the C whose fit scores best on ``validation_data`` by ``monitor`` is kept (without
    validation data, the middle one). Returns {"bias", "C", "scores"}.
    """
    from passage import metrics

    term = cast(NgramLinear, model.wide)  # a model with the term
    cost = model._logits_cost or model.cost
    lengths, Yt = prepared_targets(model, X, Y)
    n, n_rows = len(lengths), term.n_features + term.buckets
    release_free_memory()  # what came before: returned first, so the matrix does not stack on it
    used, matrix, df = _tfidf_matrix(term, X, lengths)
    idf = np.full(n_rows, np.log(1.0 + n) + 1.0)  # rows no training text has: df 0
    idf[used] = np.log((1.0 + n) / (1.0 + df)) + 1.0  # scikit-learn's smooth idf
    with torch.no_grad():
        term.idf.copy_(torch.from_numpy(idf.astype(np.float32)))
    y = torch.from_numpy(Yt).to(model.device)
    val = None
    if validation_data is not None:
        v_lengths, v_y = prepared_targets(model, *validation_data)
        val = (validation_data[0], cast(np.ndarray, v_y))  # (one output per document)
    weight = torch.zeros(len(used), term.n_out, device=model.device, requires_grad=True)
    bias = torch.zeros(term.n_out, device=model.device, requires_grad=True)
    history = 10 if len(used) * term.n_out <= 1 << 21 else 5
    used_rows = torch.from_numpy(used).long().to(model.device)
    lower = monitor in ("cost", "mse", "mae")
    chosen = len(strengths) // 2 if val is None else None
    best: tuple[float | None, float, torch.Tensor, torch.Tensor] | None = None
    scores = {}
    for k, strength in enumerate(sorted(strengths)):
        penalty = 1.0 / (2.0 * strength * n)
        _lbfgs(matrix, y, cost, weight, bias, penalty, max_iter, history)
        with torch.no_grad():
            term.weight.zero_()
            term.weight[used_rows] = weight
        if val is None:
            if k == chosen:
                best = (None, strength, bias.detach().clone(), weight.detach().clone())
            continue
        z = term_logits(model, val[0], bias.detach())
        out = activated(model, torch.from_numpy(z)).numpy()
        score = metrics.scores(model.cost, val[1], out)[monitor]
        scores[strength] = score
        # best[0] is None only without validation data, which does not come here
        if best is None or best[0] is None or (score < best[0] if lower else score > best[0]):
            best = (score, strength, bias.detach().clone(), weight.detach().clone())
    with torch.no_grad():
        term.weight.zero_()
        assert best is not None  # strengths is not empty
        term.weight[used_rows] = best[3]
    term.weight.grad = None
    return {"bias": best[2], "C": best[1], "scores": scores}


def _lbfgs(matrix, y, cost, weight, bias, penalty: float, max_iter: int, history: int) -> None:
    """Minimise cost(y, matrix @ weight + bias) + penalty |weight|^2 in place (L-BFGS)."""
    matrix, transposed = matrix
    opt = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=max_iter, history_size=history,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        z = (torch.sparse.mm(matrix, weight) + bias).detach().requires_grad_(True)
        loss = cost(y, z)
        g_z, = torch.autograd.grad(loss, z)
        with torch.no_grad():
            weight.grad = torch.sparse.mm(transposed, g_z) + 2 * penalty * weight
            bias.grad = g_z.sum(0)
        return loss.detach() + penalty * (weight.detach() ** 2).sum()

    opt.step(closure)


def activated(model: RNN, z: torch.Tensor) -> torch.Tensor:
    """The output layer's activation on pre-activations z (what the cost compares)."""
    last = cast("Dense", model.layers[-1])
    return z if last.activation.lower() == "linear" else last.act(z)


def _counted_rows(term: NgramLinear, X, lengths, batch_size: int = 512):
    """(document, row, count) of every distinct n-gram row of every sequence of X, sorted by
    document then row, as int32 numpy arrays: counted a batch of documents at a time, so no
    array ever holds every occurrence of the corpus (a fifth of the memory of one sort)."""
    width = term.n_features + term.buckets
    docs, rows, counts = [], [], []
    with torch.no_grad():
        for idx, x, lt in _batches(None, X, lengths, np.arange(len(lengths)), batch_size):
            d, r = term.rows(x, lt)
            keys, tf = torch.unique(d * width + r, return_counts=True)  # sorted: doc, then row
            docs.append((keys // width + int(idx[0])).to(torch.int32).numpy())
            rows.append((keys % width).to(torch.int32).numpy())
            counts.append(tf.to(torch.int32).numpy())
    empty = [np.zeros(0, np.int32)]
    return (np.concatenate(docs or empty), np.concatenate(rows or empty),
            np.concatenate(counts or empty))


def _tfidf_matrix(term: NgramLinear, X, lengths):
    """The rows some document of X has (``used``), the (documents, used rows) matrix the term
    multiplies with its transpose (CSR both, what the forward pass computes: each entry its
    count times its row's idf, over the root of the document's summed squared idfs), and the
    used rows' document frequencies (each (document, row) pair is counted once)."""
    doc, row, tf = _counted_rows(term, X, lengths)
    n = len(lengths)
    df_all = np.bincount(row, minlength=term.n_features + term.buckets)
    used = np.flatnonzero(df_all)
    col = (np.cumsum(df_all > 0) - 1).astype(np.int32)[row]  # row -> its index in used
    del row
    df = df_all[used]
    # the idf as the term stores it (float32), so the matrix is what the forward pass computes
    idf = (np.log((1.0 + n) / (1.0 + df)) + 1.0).astype(np.float32).astype(np.float64)
    idf_col = idf[col]
    values = tf * idf_col
    del tf
    norm = np.sqrt(np.bincount(doc, weights=values * idf_col, minlength=n)).clip(1e-12)
    del idf_col
    values = (values / norm[doc]).astype(np.float32)
    matrix = _csr(doc, col, values, n, len(used))
    order = np.argsort(col, kind="stable")
    transposed = _csr(col[order], doc[order], values[order], len(used), n)
    return used, (matrix, transposed), df


def _csr(rows: np.ndarray, cols: np.ndarray, values: np.ndarray, n_rows: int, n_cols: int):
    """A CSR tensor from entries sorted by row (int32 indices)."""
    crow = np.zeros(n_rows + 1, np.int32)
    np.cumsum(np.bincount(rows, minlength=n_rows), out=crow[1:])
    with warnings.catch_warnings():  # "CSR support is in beta": what we use of it is not
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support")
        return torch.sparse_csr_tensor(torch.from_numpy(crow), torch.from_numpy(cols),
                                       torch.from_numpy(values), (n_rows, n_cols),
                                       check_invariants=False)


def term_logits(model: RNN, X: Sequence[Any] | np.ndarray, bias: torch.Tensor,
                batch_size: int = 256) -> np.ndarray:
    """``model.wide`` plus ``bias`` on the sequences X: (len(X), n_out) pre-activations."""
    lengths = iterators.sequence_lengths(X)
    out = np.zeros((len(lengths), cast(NgramLinear, model.wide).n_out), np.float32)
    with torch.no_grad():
        for idx, x, lt in _batches(model, X, lengths, np.arange(len(lengths)), batch_size):
            out[idx] = (cast(NgramLinear, model.wide)(x, lt) + bias).float().cpu().numpy()
    return out


def prepared_targets(model: RNN, X: Sequence[Any] | np.ndarray, Y: Sequence[Any] | np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray | list[np.ndarray]]:
    """(lengths of X, Y as the model's cost takes it: scaled for a regression)."""
    lengths = iterators.sequence_lengths(X)
    return lengths, model._scale_targets(model._targets(Y, lengths))


def _batches(model, X, lengths, order, batch_size: int):
    device = model.device if model is not None else "cpu"
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        x, lt = iterators.make_batch(X, idx)
        yield idx, torch.from_numpy(x).to(device), torch.from_numpy(lt).to(device)
