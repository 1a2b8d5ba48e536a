"""Language models: next-token training on a token stream with truncated BPTT, and generation.

Documents are joined into one stream (END between them) and cut into ``batch_size`` parallel
rows; each step trains on the next ``seq_len`` tokens of every row. The recurrent state is
carried from one segment to the next (so the model sees context beyond a segment) while
gradients stop at segment borders: truncated backpropagation through time.

>>> from passage.layers import Embedding, GatedRecurrent, Dense
>>> from passage.updates import Adam
>>> lm = LanguageModel([Embedding(8, 6), GatedRecurrent(8), Dense(6, "softmax")],
...                    updater=Adam(lr=0.02), verbose=0, seed=0, seq_len=4)
>>> _ = lm.fit([[3, 4, 5]] * 40, n_epochs=10, batch_size=4)  # stream: 3 4 5 END 3 4 5 END ...
>>> lm.generate([3, 4], n=5, temperature=0)
[5, 1, 3, 4, 5]
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
import torch.nn.functional as F

from passage._checks import check_int, check_real
from passage.exceptions import NotFittedError
from passage.layers import AdaptiveSoftmax, Dense, Embedding, OneHot, full_precision, inference
from passage.models import RNN
from passage.preprocessing import END, PAD, UNK
from passage.registry import register_model
from passage.training import (
    Callback,
    EarlyStopping,
    EpochLog,
    PlateauLR,
    ProgressBar,
    Run,
    check_callbacks,
    train,
)

if TYPE_CHECKING:
    from passage.costs import Cost
    from passage.iterators import Padded
    from passage.layers import Layer
    from passage.preprocessing import Tokenizer
    from passage.updates import Update


@register_model
class LanguageModel(RNN):
    """An RNN that predicts each next token: ``fit`` on texts or id lists, ``evaluate`` gives
    perplexity and bits per token, ``generate`` samples a continuation.

    layers: an input layer (Embedding or OneHot), forward recurrent layers, Dense(n_features,
    'softmax') -- or AdaptiveSoftmax(n_features), several times faster for a vocabulary of
    thousands of words. seq_len: tokens per truncated-BPTT segment. carry_state: pass the state from
    one segment to the next (True) or restart every segment from the learned initial state.
    tie_weights: the output layer shares the Embedding's matrix (needs the last recurrent
    layer's size equal to the embedding size).
    """

    def __init__(self, layers: Iterable[Layer], cost: str | Cost = "cce",
                 updater: str | Update = "Adam", verbose: int = 2, Y: object = None,
                 iterator: str | Padded = "SortedPadded", *,
                 device: str | int | torch.device | None = None, seed: int | None = None,
                 tokenizer: Tokenizer | None = None, precision: str = "fp32",
                 seq_len: int = 35, carry_state: bool = True, tie_weights: bool = False):
        layers = list(layers)
        for layer in layers[1:-1]:
            if layer.is_recurrent:
                if layer.reversed != (False,):
                    raise ValueError("a language model reads left to right: its recurrent "
                                     "layers need direction='forward'")
                layer.seq_output = layer.sequence_out = True
        super().__init__(layers, cost, updater, verbose, Y, iterator, device=device, seed=seed,
                         tokenizer=tokenizer, precision=precision)
        first, last = self.layers[0], self.layers[-1]
        n = getattr(first, "n_features", None)
        softmax = isinstance(last, Dense) and last.activation.lower() == "softmax" and \
            self._logits_cost is not None
        adaptive = isinstance(last, AdaptiveSoftmax)  # RNN checked its cost
        if n is None or not (softmax or adaptive) or last.size != n:
            raise ValueError("a language model needs Embedding/OneHot(n_features=V) first, "
                             "Dense(V, 'softmax') or AdaptiveSoftmax(V) last and cost='cce'")
        if not isinstance(seq_len, int) or seq_len < 1:
            raise ValueError(f"seq_len must be a positive int, got {seq_len!r}")
        self.seq_len, self.carry_state, self.tie_weights = seq_len, carry_state, tie_weights
        if tie_weights:
            if adaptive:
                raise ValueError("tie_weights needs a Dense(V, 'softmax') output: an "
                                 "AdaptiveSoftmax has no single output matrix to share")
            if not hasattr(first, "weight") or last.w.shape != first.weight.shape:
                raise ValueError(
                    f"tie_weights needs an Embedding whose size equals the input of the output "
                    f"layer ({last.n_in}); got {type(first).__name__} of size {first.size}")
            last.w = first.weight  # one Parameter, two uses
        self.per_step = True

    def get_config(self) -> dict:
        return {**super().get_config(), "class": "LanguageModel",
                "options": {"seq_len": self.seq_len, "carry_state": self.carry_state,
                            "tie_weights": self.tie_weights}}

    # -- data ----------------------------------------------------------------------------------
    def stream(self, docs: Sequence[Any] | np.ndarray) -> np.ndarray:
        """Texts (with a tokenizer) or id lists as one int64 stream, END after each document.
        A 1-d array of ids is taken as a stream as it is."""
        if isinstance(docs, np.ndarray) and docs.ndim == 1 and docs.dtype.kind in "iu":
            return docs.astype(np.int64)
        docs = self._inputs(docs, "X")
        parts = []
        for d in docs:
            parts += [np.asarray(d, dtype=np.int64), np.array([END])]
        if not parts:
            raise ValueError("cannot train a language model on an empty list of documents")
        ids = np.concatenate(parts)
        n = cast("Embedding | OneHot", self.layers[0]).n_features  # see __init__
        if ids.min() < 0 or ids.max() >= n:
            raise ValueError(f"token ids must be in 0..{n - 1} (the input layer's n_features)")
        return ids

    def _rows(self, ids: np.ndarray, batch_size: int, what: str = "the stream") -> torch.Tensor:
        """The stream as ``batch_size`` contiguous rows (the tail that does not fit is dropped)."""
        check_int("batch_size", batch_size, hint=" (rows of the token stream read side by side)")
        width = len(ids) // batch_size
        if width < 2:
            raise ValueError(f"{what} has {len(ids)} tokens, too few for {batch_size} rows: "
                             f"lower batch_size or give at least {2 * batch_size} tokens")
        return torch.from_numpy(ids[:width * batch_size].reshape(batch_size, width)).to(
            self.device)

    def _segments(self, rows: torch.Tensor):
        for t in range(0, rows.shape[1] - 1, self.seq_len):
            x = rows[:, t:t + self.seq_len]
            y = rows[:, t + 1:t + 1 + x.shape[1]]
            yield x[:, :y.shape[1]], y

    def _segment_loss(self, x, y, states):
        lengths = torch.full((x.shape[0],), x.shape[1], device=self.device)
        if not self.carry_state:
            states = [None] * len(states)
        last = self.layers[-1]
        with self.autocast():
            if isinstance(last, AdaptiveSoftmax):  # only the clusters the targets fall in
                return last.cost(self.model(x, lengths, states=states, head=False), y)
            logits = full_precision(self.model(x, lengths, pre_act=True, states=states))
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))

    def _n_recurrent(self) -> int:
        return sum(layer.is_recurrent for layer in self.layers)

    # -- training ------------------------------------------------------------------------------
    # Not RNN.fit's signature, on purpose: no labels (Y stays None) and options of a language
    # model's own (see the docstring)
    def fit(self, X: Sequence[Any] | np.ndarray,  # type: ignore[override]
            Y: object = None, batch_size: int = 32, n_epochs: int = 1, *,
            validation_data: Sequence[Any] | np.ndarray | None = None,
            patience: int | None = None, lr_decay: float = 1.0, decay_after: int | None = None,
            callbacks: list[Callback] | tuple[Callback, ...] | None = None) -> list[float]:
        """Train on documents ``X`` (texts or id lists, or one id stream); returns the cost of
        every segment. The arguments line up with ``RNN.fit(trX, trY, batch_size, n_epochs)``;
        a language model's targets are the next tokens, so ``Y`` stays None (as scikit-learn's
        ``fit(X, y=None)``). ``batch_size``: rows the stream is cut into.
        With ``validation_data`` (documents), perplexity is reported each epoch, the best
        epoch's weights are kept, training stops after ``patience`` epochs without improvement,
        and the learning rate is multiplied by ``lr_decay`` after each of them -- or, with
        ``decay_after=k``, after every epoch past the k-th (Zaremba et al.'s schedule).
        callbacks: ``passage.training.Callback`` objects, run after the model's own."""
        if Y is not None:
            raise TypeError("LanguageModel.fit takes no labels: the targets are the next "
                            "tokens. Pass the documents only, with n_epochs and batch_size by "
                            "keyword, e.g. fit(texts, n_epochs=3, batch_size=32)")
        check_int("n_epochs", n_epochs, hint=" (passes over the training stream)")
        check_int("patience", patience, 0, optional=True)
        check_real("lr_decay", lr_decay, low=0.0, low_open=True,
                   hint=" (the factor the learning rate is multiplied by)")
        check_int("decay_after", decay_after, 0, optional=True)
        callbacks = check_callbacks(callbacks)
        rows = self._rows(self.stream(X), batch_size)
        val = self.stream(validation_data) if validation_data is not None else None
        if val is not None:  # evaluate reads it as 10 rows: checked now, not after an epoch
            self._rows(val, 10, "validation_data")
        elif patience is not None:
            warnings.warn("patience has no effect without validation_data", UserWarning,
                          stacklevel=2)
        run = Run(self, n_epochs, [], validate=None if val is None else
                  lambda: self.evaluate(val), forward=self.model)
        own: list[Callback] = []
        if self.verbose >= 2:
            own.append(ProgressBar(math.ceil((rows.shape[1] - 1) / self.seq_len), "seg",
                                   _bar_postfix))
        if self.verbose >= 1:
            own.append(EpochLog(_epoch_line))
        if val is not None:
            own.append(EarlyStopping("cost", patience))
        if decay_after is not None or val is not None:
            own.append(PlateauLR(lr_decay, decay_after))
        run.callbacks = own + callbacks
        costs = train(run, lambda run, epoch: self._stream_epoch(run, rows))
        self.costs_ += costs
        return costs

    def _stream_epoch(self, run: Run, rows: torch.Tensor) -> dict:
        """One pass over the stream's rows, a segment of ``seq_len`` steps per update, the
        recurrent state carried from segment to segment (gradients cut between them)."""
        self.model.train()
        states: list = [None] * self._n_recurrent()
        start, costs = time.time(), []
        for x, y in self._segments(rows):
            states = [None if s is None else tuple(t.detach() for t in s) for s in states]
            loss = self._segment_loss(x, y, states)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"the cost became {loss.item()} in epoch "
                                         f"{run.epoch + 1}: lower the learning rate")
            run.batch_begin()
            self._update(loss)
            costs.append(loss.item())
            run.batch_end(costs[-1], x.shape[0], int(y.numel()))
        secs = time.time() - start
        return {"cost": float(np.mean(costs)), "seconds": secs,
                "tokens_per_s": rows.numel() / secs}

    @torch.no_grad()
    @inference()  # not eval(): a fit running in another thread keeps its training mode
    def evaluate(self, X: Sequence[Any] | np.ndarray,  # type: ignore[override]
                 batch_size: int = 10) -> dict[str, float]:
        """Mean cost per predicted token (nats), perplexity and bits per token on documents X
        (or an id stream), reading it as ``batch_size`` rows with state carried throughout."""
        rows = self._rows(self.stream(X), batch_size)
        states: list = [None] * self._n_recurrent()
        total, count = 0.0, 0
        for x, y in self._segments(rows):
            loss = self._segment_loss(x, y, states)
            total, count = total + loss.item() * y.numel(), count + y.numel()
        cost = total / count
        return {"cost": cost, "perplexity": math.exp(cost), "bits": cost / math.log(2)}

    # -- generation ----------------------------------------------------------------------------
    @torch.no_grad()
    @inference()
    def generate(self, prompt: str | Iterable[int] | np.ndarray = (), n: int = 100,
                 temperature: float = 1.0, top_k: int | None = None, seed: int | None = None, *,
                 stop_at_end: bool = False, allow_unk: bool = False) -> str | list[int]:
        """Continue ``prompt`` (a text if the model has a tokenizer, else a list of ids) by ``n``
        sampled tokens; returns the continuation in the same form. ``temperature`` 0 always
        takes the most likely token; ``top_k`` samples among the k most likely only.

        Special ids: PAD (0) is never sampled. END (1) is the document break the model was
        trained on: by default it stays in the continuation (the id 1 in an id list, a line
        break in a text) and generation carries on into a new document; with
        ``stop_at_end=True`` the continuation ends before the first END (so it can be shorter
        than ``n``). UNK (2, words outside the vocabulary) is never sampled unless
        ``allow_unk=True``; a text continuation then shows it as the word 'UNK'."""
        if not self.fitted_:
            raise NotFittedError("this language model has not been trained: call fit first, or "
                                 "load a trained one")
        check_int("n", n, 0, hint=" (tokens to generate)")
        check_real("temperature", temperature, low=0.0)
        check_int("top_k", top_k, optional=True)
        check_int("seed", seed, 0, optional=True)
        text = isinstance(prompt, str)
        ids = self._inputs([prompt])[0] if text else self._prompt_ids(prompt)
        gen = torch.Generator(device="cpu")
        gen.manual_seed(seed if seed is not None else int(torch.randint(2**31, ())))
        states: list = [None] * self._n_recurrent()
        banned = [PAD] if allow_unk else [PAD, UNK]
        feed, out = [END, *ids], []
        for _ in range(n):
            x = torch.tensor([feed], device=self.device)
            logits = self.model(x, torch.tensor([len(feed)], device=self.device), pre_act=True,
                                states=states)[0, -1].float().cpu()
            logits[[b for b in banned if b < len(logits)]] = -math.inf
            nxt = self._sample(logits, temperature, top_k, gen)
            if nxt == END and stop_at_end:
                break
            out.append(nxt)
            feed = [nxt]
        if text and self.tokenizer is not None:
            return self._decode(out)
        return out

    def _prompt_ids(self, prompt) -> list[int]:
        """A prompt of ids as a list of ints, each in the vocabulary."""
        if isinstance(prompt, np.ndarray):
            prompt = prompt.tolist()
        if not hasattr(prompt, "__iter__"):
            raise TypeError(f"prompt must be a text or a list of token ids, got "
                            f"{type(prompt).__name__}")
        ids = list(prompt)
        n = cast("Embedding | OneHot", self.layers[0]).n_features  # see __init__
        for i, t in enumerate(ids):
            if isinstance(t, bool) or not isinstance(t, int | np.integer):
                raise TypeError(f"prompt[{i}] is {t!r}: a prompt of ids holds ints")
            if not 0 <= t < n:
                raise ValueError(f"prompt[{i}] = {t} is outside the vocabulary (ids 0..{n - 1}, "
                                 "the input layer's n_features); map unknown words to UNK (2), "
                                 "e.g. with the model's Tokenizer")
        return [int(t) for t in ids]

    @staticmethod
    def _sample(logits: torch.Tensor, temperature: float, top_k: int | None,
                gen: torch.Generator) -> int:
        if temperature == 0:
            return int(logits.argmax())
        logits = logits / temperature
        if top_k is not None and top_k < len(logits):
            cut = torch.topk(logits, top_k).values[-1]
            logits = logits.masked_fill(logits < cut, -math.inf)
        return int(torch.multinomial(torch.softmax(logits, -1), 1, generator=gen))

    def _decode(self, ids: list[int]) -> str:
        """Ids to text, each END a line break between documents."""
        docs: list[list[int]] = []
        cur: list[int] = []
        for i in ids:
            if i == END:
                docs.append(cur)
                cur = []
            else:
                cur.append(i)
        return "\n".join(self.tokenizer.inverse_transform([*docs, cur]))


def _bar_postfix(costs: list, tokens_per_s: float) -> str:
    return f"ppl {math.exp(np.mean(costs[-100:])):.1f}"


def _epoch_line(run: Run, record: dict) -> str:
    line = (f"Epoch {record['epoch']}/{run.n_epochs} cost {record['cost']:.4f} "
            f"ppl {math.exp(record['cost']):.1f} {record['seconds']:.0f}s")
    if "val_perplexity" in record:
        line += f"  validation ppl {record['val_perplexity']:.2f}"
    return line
