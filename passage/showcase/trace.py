"""The model's prediction after every token of a text: watch the opinion form while it reads.

A model whose recurrent layers all read forwards gets the whole trace in one pass: the layers run
with their recurrent ones returning every step (copies of them made for the call, the model left
as it is) and the output layer is applied to each. A model that also reads backwards cannot know
the future, so each prefix is predicted on its own (one batch). Shown as ANSI colours in a
terminal, a standalone HTML page, or a PNG.
"""

from __future__ import annotations

import copy
import html
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import numpy as np
import torch

from passage.files import atomic_write
from passage.labels import LabelCoding
from passage.layers import Layer, inference
from passage.preprocessing import tokenize
from passage.stack import Stack

if TYPE_CHECKING:
    from passage.models import RNN
    from passage.recurrent_layers import _Recurrent

# matplotlib's RdBu at 0.1, 0.3, 0.5, 0.7, 0.9: red is low, blue is high (no matplotlib needed)
_ANCHORS = [(177, 24, 43), (243, 164, 129), (246, 247, 247), (144, 196, 221), (32, 101, 171)]


@dataclass
class Trace:
    """Tokens, the model output after each (steps, units), and the number shown per token."""

    tokens: list[str]
    outputs: np.ndarray
    values: np.ndarray
    meaning: str  # what ``values`` are, e.g. "p('pos')"
    final: object  # the prediction for the whole text (class name or value)
    low: float
    center: float
    high: float
    one_pass: bool  # False: every prefix was predicted separately
    character: bool = False


def step_outputs(model: RNN, ids: list[int]) -> tuple[np.ndarray, bool]:
    """Output after every token of one token-id sequence, and whether it took a single pass."""
    if model.per_step:  # the model already outputs one prediction per step
        return np.asarray(model.predict([ids])[0]), True
    recurrent = cast("list[_Recurrent]", [layer for layer in model.layers
                                            if getattr(layer, "is_recurrent", False)])
    # one pass gives the prefix outputs only for forward layers read at their last state with
    # no n-gram term; otherwise every prefix is predicted as a text of its own
    if any(tuple(layer.reversed) != (False,) or layer.pool for layer in recurrent) or \
            getattr(model, "wide", None) is not None:
        return np.asarray(model.predict([ids[:k] for k in range(1, len(ids) + 1)])), False
    stack = _every_step(model.model)
    with torch.inference_mode(), inference():  # as predict runs: no mode of the model changed
        x = torch.as_tensor([ids], dtype=torch.long, device=model.device)
        lengths = torch.as_tensor([len(ids)], dtype=torch.long, device=model.device)
        out = stack(x, lengths)[0].float().cpu().numpy()
    scale = getattr(model, "target_scale_", None)
    if scale is not None:  # back to the units of the labels, as predict does
        out = out * scale[1] + scale[0]
    return out, True


def _every_step(stack: Stack) -> Stack:
    """A ``Stack`` of the same layers, in which every recurrent layer returns each step.

    A recurrent layer that returns its last state only is replaced by a shallow copy
    (``copy.copy``) whose own ``sequence_out`` is True: the copy holds the very parameters and
    submodules of the original (no weight is copied), only its attribute dictionary is its
    own. The model's layers are never changed, so a ``predict`` running in another thread
    meanwhile (a served model) gets what it always gets.
    """
    layers = []
    for layer in cast("list[Layer]", list(stack.layers)):
        if layer.is_recurrent and not layer.sequence_out:
            layer = copy.copy(layer)
            layer.sequence_out = True
        layers.append(layer)
    return Stack(layers, stack.wide)


def trace(model: RNN, text: str, coding: LabelCoding | None = None) -> Trace:
    """Predict after every token of ``text`` (a str) with a model that has a tokenizer."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    tokenizer = getattr(model, "tokenizer", None)
    if tokenizer is None:
        raise ValueError("this model has no tokenizer, so it cannot read raw text; save it "
                         "with its tokenizer (RNN(..., tokenizer=tok))")
    coding = coding or LabelCoding.from_model(model)
    ids = tokenizer.transform([text])[0]
    if not ids:
        raise ValueError("the text has no tokens to trace; give some words")
    shown = list(text) if tokenizer.character else tokenize(text)
    if len(shown) != len(ids):  # e.g. characters whose lowercase form is longer
        shown = [tokenizer.decoder[i] for i in ids]
    outputs, one_pass = step_outputs(model, ids)
    final = coding.output_ids(outputs[-1:])
    if coding.task == "regression":
        values = outputs[:, 0].astype(np.float64)
        scale = getattr(model, "target_scale_", None)
        if scale is not None:
            center, spread = float(scale[0][0]), 2 * float(scale[1][0])
        else:
            center = float(values.mean())
            spread = max(float(np.abs(values - center).max()), 1e-6)
        return Trace(shown, outputs, values, "predicted value", float(final[0]),
                     center - spread, center, center + spread, one_pass, tokenizer.character)
    k = int(final[0])
    assert coding.classes is not None  # a classification coding has its class names
    column = -1 if coding.task == "binary" else k
    name = coding.classes[-1] if coding.task == "binary" else coding.classes[k]
    center = 0.5 if coding.task == "binary" else 1.0 / len(coding.classes)
    return Trace(shown, outputs, outputs[:, column].astype(np.float64), f"p({name!r})",
                 coding.classes[k], 0.0, center, 1.0, one_pass, tokenizer.character)


def colour(value: float, low: float, center: float, high: float) -> tuple[int, int, int]:
    """RGB of a value on a red (low) - white (center) - blue (high) scale."""
    if value >= center:
        t = (value - center) / (high - center) if high > center else 0.0
    else:
        t = (value - center) / (center - low) if center > low else 0.0
    pos = (min(max(t, -1.0), 1.0) + 1.0) * 2.0  # 0..4 over the 5 anchors
    i = min(int(pos), 3)
    f = pos - i
    a, b = _ANCHORS[i], _ANCHORS[i + 1]
    return cast(tuple[int, int, int], tuple(round(a[c] + f * (b[c] - a[c])) for c in range(3)))


def _ink(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black or white text, whichever reads better on ``rgb``."""
    light = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    return (0, 0, 0) if light > 140 else (255, 255, 255)


def _colours(tr: Trace) -> list[tuple[int, int, int]]:
    return [colour(float(v), tr.low, tr.center, tr.high) for v in tr.values]


def to_ansi(tr: Trace, color: bool = True) -> str:
    """The text with every token on its colour (24-bit ANSI); ``color=False``: token[value]."""
    head = (f"{tr.meaning} after each token (red: low, blue: high); whole text: {tr.final!r}"
            + ("" if tr.one_pass else " [each prefix predicted separately]"))
    sep = "" if tr.character else " "
    if not color:
        return head + "\n" + sep.join(f"{t}[{v:.2f}]" for t, v in
                                      zip(tr.tokens, tr.values, strict=True))
    parts = []
    for token, rgb in zip(tr.tokens, _colours(tr), strict=True):
        ink = _ink(rgb)
        parts.append(f"\x1b[48;2;{rgb[0]};{rgb[1]};{rgb[2]}m\x1b[38;2;{ink[0]};{ink[1]};{ink[2]}m"
                     f"{token}\x1b[0m")
    return head + "\n" + sep.join(parts)


def to_html(tr: Trace, title: str = "Passage: prediction after every token") -> str:
    """A standalone HTML page: tokens on a background coloured by the prediction so far."""
    spans = []
    for i, (token, value, rgb) in enumerate(zip(tr.tokens, tr.values, _colours(tr),
                                                strict=True)):
        ink = _ink(rgb)
        spans.append(f'<span style="background:rgb{rgb};color:rgb{ink}" '
                     f'title="{html.escape(tr.meaning)} = {value:.3f} after token {i + 1}">'
                     f"{html.escape(token)}</span>")
    legend = "".join(
        f'<span style="background:rgb{colour(v, tr.low, tr.center, tr.high)};'
        f'color:rgb{_ink(colour(v, tr.low, tr.center, tr.high))}">&nbsp;{v:.2f}&nbsp;</span>'
        for v in np.linspace(tr.low, tr.high, 5))
    how = ("one pass of the model" if tr.one_pass else
           "each prefix predicted separately (the model also reads backwards)")
    joiner = "" if tr.character else " "
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 52em; margin: 2em auto; line-height: 2; }}
.text span {{ padding: 0.15em 0.1em; border-radius: 0.2em; white-space: pre-wrap; }}
.meta {{ color: #555; line-height: 1.5; }}
</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p class="meta">Colour: {html.escape(tr.meaning)} after reading up to each token ({how}).
Whole text: <b>{html.escape(repr(tr.final))}</b>. Hover a token for its value.</p>
<p class="meta">Scale: {legend}</p>
<p class="text">{joiner.join(spans)}</p>
</body></html>
"""


def write_html(tr: Trace, path: str | os.PathLike, title: str | None = None) -> None:
    """Write ``to_html`` to ``path`` atomically."""
    page = to_html(tr) if title is None else to_html(tr, title)

    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(page)

    atomic_write(path, write)


def plot_trace(tr: Trace, path: str | os.PathLike, title: str | None = None) -> None:
    """PNG: the prediction after each token, tokens along the x axis."""
    from passage.showcase.figures import new_figure, save_png

    n = len(tr.tokens)
    fig = new_figure(min(4.0 + 0.22 * n, 24.0), 4.2)
    ax = fig.add_subplot()
    xs = np.arange(n)
    ax.plot(xs, tr.values, color="0.35", linewidth=1.2, zorder=1)
    ax.scatter(xs, tr.values, c=[tuple(c / 255 for c in rgb) for rgb in _colours(tr)], s=40,
               edgecolors="0.3", linewidths=0.5, zorder=2)
    ax.axhline(tr.center, color="0.6", linestyle="--", linewidth=0.8)
    step = max(1, n // 80)
    ax.set_xticks(xs[::step], labels=[repr(t)[1:-1] for t in tr.tokens[::step]], rotation=90,
                  fontsize=8)
    bottom, top = min(tr.low, float(tr.values.min())), max(tr.high, float(tr.values.max()))
    pad = 0.04 * (top - bottom)
    ax.set_ylim(bottom - pad, top + pad)
    ax.set_ylabel(tr.meaning)
    ax.set_xlabel("token (prediction after reading up to it)")
    ax.set_title(title or f"Prediction after every token; whole text: {tr.final!r}")
    ax.grid(True, axis="y", alpha=0.3)
    save_png(fig, path)
