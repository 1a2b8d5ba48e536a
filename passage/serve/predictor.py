"""The model behind the service: load it, say what it is, and turn its outputs into answers.

Answers follow the Hugging Face pipelines: text classification gives ``[{"label", "score"}, ...]``
per text (best first, ``top_k`` of them, labels as the model file names them); regression gives
``{"value": x}``; a tagger gives one ``{"entity", "score", "index", "word", "start", "end"}`` per
token, as token classification does.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Sequence
from typing import cast

import numpy as np
import torch

from passage.exceptions import NotFittedError
from passage.labels import LabelCoding
from passage.lm import LanguageModel
from passage.models import RNN
from passage.preprocessing import tokenize
from passage.tagging import Tagger

TRACE_PREFIX_LIMIT = 1000  # tokens: a model that reads backwards predicts every prefix


class InputError(ValueError):
    """A text the model cannot answer: the client's to fix (answered with 422)."""


def encode(answer: object) -> bytes:
    """JSON as a response sends it: compact, UTF-8, no NaN (as Starlette's ``JSONResponse``)."""
    return json.dumps(answer, ensure_ascii=False, allow_nan=False, indent=None,
                      separators=(",", ":")).encode("utf-8")


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def spans(text: str, tokens: list[str]) -> list[tuple[int, int]] | None:
    """Character offsets of ``tokens`` in ``text`` (tokens in order, separated by spaces or
    nothing), or None when a token is not spelled as in the text (e.g. lowercased forms)."""
    out, pos = [], 0
    for token in tokens:
        start = text.find(token, pos)
        if start < 0 or text[pos:start].strip(" "):
            return None
        pos = start + len(token)
        out.append((start, pos))
    return out


def _load(path: str):
    from passage.io import load, read

    if os.path.isdir(path):
        raise ValueError(f"{os.path.basename(path)!r} is a directory, not a model file")
    read(path)  # clear errors for missing, truncated or foreign files
    return load(path)  # (a Tagger's file gives the Tagger)


class Predictor:
    """A text classifier, regressor or tagger ready to answer texts.

    model_or_path: a model file (``passage train``, ``passage.io.save``, ``Tagger.save``) or a
    fitted ``RNN`` with a tokenizer, or a fitted ``Tagger``. tables: make the projection
    tables now (``make_tables``); False when this process will not predict (or not yet).
    """

    def __init__(self, model_or_path: str | os.PathLike | RNN | Tagger, tables: bool = True):
        self.sha256_ = None
        self._label_json: list[bytes] | None = None  # '{"label":L,"score":' of each class
        if isinstance(model_or_path, str | os.PathLike):
            path = os.fspath(model_or_path)
            if not os.path.exists(path):
                raise FileNotFoundError(f"no model file at {path!r}")
            self.sha256_ = file_sha256(path) if os.path.isfile(path) else None
            model_or_path = _load(path)
        self.tagger_ = model_or_path if isinstance(model_or_path, Tagger) else None
        if self.tagger_ is not None:
            if not hasattr(self.tagger_, "model_"):
                raise NotFittedError("this Tagger is not fitted: fit or load it first")
            self.rnn_, self.coding_, self.task_ = self.tagger_.model_, None, "tagging"
            return
        model = model_or_path
        if isinstance(model, LanguageModel) or not isinstance(model, RNN):
            raise TypeError(f"serve answers text classifiers, regressors and taggers; got a "
                            f"{type(model).__name__}")
        if not model.fitted_:
            raise NotFittedError("this RNN has not been trained: fit it or load a trained model")
        if model.tokenizer is None:
            raise ValueError("this model has no tokenizer, so it cannot read raw text; save it "
                             "with its tokenizer (RNN(..., tokenizer=tok))")
        if model.per_step:
            raise ValueError("this RNN outputs a prediction per token: serve answers one per "
                             "text, or per token for a Tagger (save it with Tagger.save)")
        self.rnn_, self.coding_ = model, LabelCoding.from_model(model)
        self.task_ = self.coding_.task
        if tables:
            self.make_tables()

    def make_tables(self) -> None:
        """The vocabulary's input projections, made once now: every later request looks its
        tokens up in them instead of projecting them (``Stack.projection_tables``). A model
        loaded here from its file is this service's own, whose weights nothing changes: the
        tables are then used without comparing the weights each time (``Stack.fix_tables``);
        a model passed in keeps them only while its weights stay the same."""
        from passage.layers import inference

        if self.tagger_ is not None:
            return
        with torch.inference_mode(), inference():
            if self.sha256_ is not None:  # loaded here from its file: owned
                self.rnn_.model.fix_tables()
            else:
                self.rnn_.model.projection_tables(getattr(self.rnn_.layers[0], "n_features", 0))

    @property
    def cores(self) -> int:
        """How many batches may run side by side: one per core on the CPU (each on a thread
        with one intra-op thread: ``passage.parallel.one_core``), one on a GPU."""
        return max(1, torch.get_num_threads()) if self.rnn_.device.type == "cpu" else 1

    @property
    def labels(self) -> list | None:
        if self.tagger_ is not None:
            return list(self.tagger_.tags_)
        coding = cast(LabelCoding, self.coding_)  # (set when there is no tagger)
        return None if coding.classes is None else list(coding.classes)

    def metadata(self) -> dict:
        """What the model is: task, labels, vocabulary, layers, file hash."""
        from passage import __version__

        tok = self.rnn_.tokenizer
        vocab = tok.n_features if tok is not None else \
            cast(Tagger, self.tagger_).features_.n_features_  # (no tokenizer: a tagger)
        return {"task": self.task_, "labels": self.labels, "vocabulary_size": int(vocab),
                "character_tokens": bool(tok is not None and tok.character),
                "layers": self.rnn_.get_config()["layers"], "passage_version": __version__,
                "model_sha256": self.sha256_}

    # -- prediction (on a batcher's worker thread) ---------------------------------------------
    def answers(self, texts: list[str]) -> list:
        """The JSON answer of every text, tokenized at once and predicted together in the
        calling thread; all labels best first for classification (a request's ``top_k`` is
        then a slice), the probabilities of the whole batch at once."""
        n = max(1, len(texts))
        if self.tagger_ is not None:
            words = [tokenize(t) for t in texts]
            probs = self.rnn_.predict(self.tagger_.features_.transform(words), n)
            return [self._tags(t, w, p) for t, w, p in zip(texts, words, probs, strict=True)]
        outputs = self._outputs(texts)
        if self.task_ == "regression":
            return [{"value": v} for v in outputs[:, 0].tolist()]
        return self._ranked(outputs)

    def encoded(self, texts: list[str]) -> list[bytes]:
        """``answers`` as JSON, each in the compact UTF-8 form a response sends (Starlette's
        ``JSONResponse``): encoded where the batch runs, the event loop only joins them (and
        cuts them to a request's ``top_k``: ``limited_json``).
        Classification answers are written straight from the probabilities (the same bytes
        as ``encode`` gives, in a fraction of its time)."""
        if self.tagger_ is not None or self.task_ == "regression":
            return [encode(a) for a in self.answers(texts)]
        orders, scores = self._best_first(self._outputs(texts))
        if not math.isfinite(sum(map(sum, scores))):  # (probabilities: finite iff each is)
            raise ValueError("Out of range float values are not JSON compliant: the model "
                             "gave a NaN or infinite probability")
        if self._label_json is None:
            self._label_json = [b'{"label":' + encode(c) + b',"score":'
                                for c in cast(list, cast(LabelCoding, self.coding_).classes)]
        heads = self._label_json
        return [b"[" + b"},".join([heads[i] + repr(p).encode()
                                    for i, p in zip(o, ps, strict=True)]) + b"}]"
                for o, ps in zip(orders, scores, strict=True)]

    def _outputs(self, texts: list[str]) -> np.ndarray:
        """The model's outputs for the texts (not a tagger's), predicted as one batch."""
        return cast(np.ndarray, self.rnn_.predict(  # (token ids as arrays, not lists of ints)
            self.rnn_.tokenizer.transform(texts, as_array=True), max(1, len(texts))))

    def limited_json(self, answer: bytes, top_k: int | None) -> bytes:
        """An answer of ``encoded`` cut to the request's ``top_k`` labels (classification)."""
        if top_k is None or self.tagger_ is not None or self.task_ == "regression":
            return answer
        return encode(json.loads(answer)[:top_k])

    def answer(self, text: str, output: np.ndarray | tuple[list[str], np.ndarray],
               top_k: int | None = None) -> dict | list[dict]:
        """The JSON answer for one text from its output."""
        if self.tagger_ is not None:
            return self._tags(text, *output)
        if self.task_ == "regression":
            return {"value": float(cast(np.ndarray, output)[0])}
        return self._ranked(np.asarray(output)[None, :], top_k)[0]

    def _ranked(self, outputs: np.ndarray, top_k: int | None = None) -> list[list[dict]]:
        """Each row of classifier outputs as its labels and scores, best first."""
        classes = cast(list, cast(LabelCoding, self.coding_).classes)  # (classification)
        orders, scores = self._best_first(outputs, top_k)
        return [[{"label": classes[i], "score": p} for i, p in zip(o, ps, strict=True)]
                for o, ps in zip(orders, scores, strict=True)]

    def _best_first(self, outputs: np.ndarray, top_k: int | None = None
                    ) -> tuple[list[list[int]], list[list[float]]]:
        """Each row's class indices, most probable first (``top_k`` of them), and their
        probabilities."""
        coding = cast(LabelCoding, self.coding_)  # (set when there is no tagger)
        proba = cast(np.ndarray, coding.probabilities(outputs))
        order = np.argsort(-proba, axis=1, kind="stable")[:, :top_k]
        return order.tolist(), np.take_along_axis(proba, order, 1).tolist()

    def _tags(self, text: str, words: list[str], probs: np.ndarray) -> list[dict]:
        where: Sequence[tuple[int | None, int | None]] = (spans(text, words)
                                                          or [(None, None)] * len(words))
        best = probs.argmax(-1)
        tags = cast(Tagger, self.tagger_).tags_  # (a tagger's answer)
        return [{"entity": tags[k], "score": float(probs[i, k]), "index": i,
                 "word": w, "start": s, "end": e}
                for i, (w, k, (s, e)) in enumerate(zip(words, best, where, strict=True))]

    def trace(self, text: str) -> dict:
        """The reading trace as data: each token, its offsets, the prediction after it and
        its colour on the red (low) - white - blue (high) scale of ``passage trace``."""
        from passage.showcase.trace import colour, trace

        if self.tagger_ is not None:
            raise InputError("this model tags tokens: /predict already gives a tag per token")
        n = len(self.rnn_.tokenizer.transform([text])[0])
        if n == 0:
            raise InputError("the text has no tokens to trace; give some words")
        if n > TRACE_PREFIX_LIMIT and self._reads_backwards():
            raise InputError(f"the text has {n} tokens; this model reads backwards too, so a "
                             f"trace predicts every prefix: send at most {TRACE_PREFIX_LIMIT}")
        tr = trace(self.rnn_, text, self.coding_)
        where: Sequence[tuple[int | None, int | None]] = (spans(text, tr.tokens)
                                                          or [(None, None)] * len(tr.tokens))
        tokens = []
        for i, (token, (s, e)) in enumerate(zip(tr.tokens, where, strict=True)):
            item = {"token": token, "start": s, "end": e, "value": float(tr.values[i]),
                    "rgb": list(colour(float(tr.values[i]), tr.low, tr.center, tr.high))}
            if self.task_ != "regression":
                item.update(self.answer(text, tr.outputs[i], 1)[0])
            tokens.append(item)
        return {"tokens": tokens, "meaning": tr.meaning,
                "prediction": tr.final if self.task_ == "regression" else
                self.answer(text, tr.outputs[-1]),
                "scale": {"low": tr.low, "center": tr.center, "high": tr.high},
                "one_pass": tr.one_pass, "character_tokens": tr.character}

    def _reads_backwards(self) -> bool:
        return any(tuple(getattr(la, "reversed", (False,))) != (False,)
                   for la in self.rnn_.layers if la.is_recurrent)
