"""A t-SNE map of what the Embedding layer learned: the most frequent words, placed by their
vectors and coloured by the average label of the documents they occur in.

Words the model treats alike land together; the colour shows whether that agrees with the
labels (e.g. 'awful' near 'worst', both red). Needs scikit-learn and matplotlib.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, cast

import numpy as np

from passage.layers import Embedding
from passage.preprocessing import SPECIAL

if TYPE_CHECKING:
    import numpy.typing as npt
    from matplotlib.axes import Axes
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from passage.models import RNN
    from passage.preprocessing import Tokenizer


def frequent_words(tokenizer: Tokenizer, n_words: int,
                   words_only: bool = True) -> list[tuple[int, str]]:
    """(id, token) of the ``n_words`` most frequent tokens (ids follow document frequency);
    ``words_only`` skips punctuation and other tokens without a letter or digit."""
    out = []
    for i in range(len(SPECIAL), tokenizer.n_features):
        token = tokenizer.decoder[i]
        if words_only and not any(ch.isalnum() for ch in token):
            continue
        out.append((i, token))
        if len(out) == n_words:
            break
    return out


def label_means(tokenizer: Tokenizer, texts: Sequence[str], values: np.ndarray,
                ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """For each token id: the mean of ``values`` over the texts containing it, and their count."""
    position = np.full(tokenizer.n_features, -1, dtype=np.int64)
    position[ids] = np.arange(len(ids))
    sums, counts = np.zeros(len(ids)), np.zeros(len(ids))
    for doc, value in zip(tokenizer.transform(texts), values, strict=True):
        where = position[np.unique(np.asarray(doc, dtype=np.int64))]
        where = where[where >= 0]
        sums[where] += value
        counts[where] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts, counts


def embedding_map(model: RNN, texts: Sequence[str], values: npt.ArrayLike,
                  path: str | os.PathLike, *, n_words: int = 500,
                  n_labels: int = 40, value_name: str = "average label", seed: int = 0,
                  title: str | None = None) -> list[dict]:
    """Draw the map to ``path`` (PNG); returns one dict per word: word, x, y, mean, n_docs and
    labelled (whether its label found a free place on the map).

    values: one number per text (0/1 for binary labels, the rating for regression).
    n_labels: how many words get a text label: the most extreme ones and a random sample.
    value_name: what the colour shows, e.g. 'average rating' or "share labelled 'pos'".
    """
    from sklearn.manifold import TSNE

    tokenizer = getattr(model, "tokenizer", None)
    if tokenizer is None or not hasattr(tokenizer, "decoder"):
        raise ValueError("this model has no tokenizer, so its embedding rows have no words; "
                         "save it with its tokenizer (RNN(..., tokenizer=tok))")
    layer = model.layers[0]
    if not isinstance(layer, Embedding):
        raise ValueError(f"the model starts with {type(layer).__name__}, not an Embedding: it "
                         "has no learned word vectors to map")
    values = np.asarray(values, dtype=np.float64)
    if len(values) != len(texts):
        raise ValueError(f"{len(texts)} texts but {len(values)} label values: they must match")
    words = frequent_words(tokenizer, n_words)
    means, counts = label_means(tokenizer, texts, values, [i for i, _ in words])
    seen = counts > 0
    words, means, counts = [w for w, s in zip(words, seen, strict=True) if s], means[seen], \
        counts[seen]
    if len(words) < 5:
        raise ValueError(f"only {len(words)} of the model's frequent words occur in these "
                         "texts; a map needs at least 5 (give texts like the training data)")
    vectors = layer.weight.detach().cpu().numpy()[[i for i, _ in words]]
    perplexity = min(30.0, (len(words) - 1) / 3)
    xy = TSNE(n_components=2, perplexity=perplexity, init="pca", metric="cosine",
              random_state=seed).fit_transform(vectors.astype(np.float64))
    center = float(values.mean())
    points = [{"word": w, "x": float(x), "y": float(y), "mean": float(m), "n_docs": int(c)}
              for (_, w), (x, y), m, c in zip(words, xy, means, counts, strict=True)]
    _draw(points, center, path, value_name, n_labels, seed,
          title or f"Word embeddings of the {len(points)} most frequent words (t-SNE)")
    return points


def pick_labelled(means: np.ndarray, center: float, n_labels: int, seed: int) -> list[int]:
    """Indices of the words to label: the most extreme two thirds, then a random sample."""
    n_labels = min(n_labels, len(means))
    order = np.argsort(-np.abs(means - center), kind="stable")
    extreme = list(order[: (2 * n_labels) // 3])
    rest = order[len(extreme):]
    sample = np.random.default_rng(seed).choice(rest, size=min(len(rest), n_labels - len(extreme)),
                                                replace=False)
    return extreme + list(sample)


# where a label may go relative to its dot: 8 directions at growing distances (points)
_DIRECTIONS = [(1, 1), (1, -1), (-1, 1), (-1, -1), (1, 0), (-1, 0), (0, 1), (0, -1)]
_RADII = [4, 12, 22, 34, 48, 64, 84]


def _padded(v: np.ndarray) -> tuple[float, float]:
    lo, hi = float(v.min()), float(v.max())
    pad = 0.05 * (hi - lo or 1.0)
    return lo - pad, hi + pad


def place_labels(fig: Figure, ax: Axes, xs: Iterable[float], ys: Iterable[float],
                 words: list[str], fontsize: int = 8) -> list[tuple]:
    """Label each dot (in priority order) where its text overlaps no label placed before and
    stays inside the axes: tried in 8 directions at growing distances, with a thin line back to
    the dot when moved away. Returns (word or None if no free place was found, box) per dot."""
    renderer = cast("FigureCanvasAgg", fig.canvas).get_renderer()  # (new_figure's canvas)
    frame = ax.get_window_extent(renderer)
    placed: list = []  # the boxes of the labels placed so far
    out: list[tuple] = []
    for x, y, word in zip(xs, ys, words, strict=True):
        spot = _free_spot(ax, renderer, frame, placed, word, (x, y), fontsize)
        if spot is not None:
            where, box, r = spot
            line = dict(arrowstyle="-", lw=0.4, color="0.45", shrinkA=0, shrinkB=2)
            ax.annotate(word, **where, arrowprops=line if r > _RADII[0] else None)
            placed.append(box)
        out.append((word, spot[1]) if spot is not None else (None, None))
    return out


def _free_spot(ax, renderer, frame, placed, word, xy, fontsize):
    """The first (annotate arguments, box, distance) where ``word`` overlaps no box in
    ``placed`` and stays inside ``frame``; None if there is none."""
    for r in _RADII:
        for dx, dy in _DIRECTIONS:
            where = dict(xy=xy, xytext=(dx * r, dy * r), textcoords="offset points",
                         fontsize=fontsize,
                         ha="left" if dx > 0 else "right" if dx < 0 else "center",
                         va="bottom" if dy > 0 else "top" if dy < 0 else "center")
            text = ax.annotate(word, **where)
            box = text.get_window_extent(renderer)  # measured, then removed
            text.remove()
            inside = frame.contains(box.x0, box.y0) and frame.contains(box.x1, box.y1)
            if inside and not any(box.overlaps(b) for b in placed):
                return where, box, r
    return None


def _draw(points: list[dict], center: float, path, value_name: str, n_labels: int, seed: int,
          title: str) -> None:
    from matplotlib.colors import TwoSlopeNorm

    from passage.showcase.figures import colormap, new_figure, save_png

    xs = np.array([p["x"] for p in points])
    ys = np.array([p["y"] for p in points])
    means = np.array([p["mean"] for p in points])
    # white at the average over all texts; the colour bar spans the words' actual range
    norm = TwoSlopeNorm(center, vmin=min(float(means.min()), center - 1e-6),
                        vmax=max(float(means.max()), center + 1e-6))
    fig = new_figure(10, 8.5)
    ax = fig.add_subplot()
    dots = ax.scatter(xs, ys, c=means, cmap=colormap("RdBu"), norm=norm, s=18,
                      edgecolors="0.4", linewidths=0.3)
    bar = fig.colorbar(dots, ax=ax, shrink=0.8)
    bar.set_label(f"{value_name} of the texts containing the word (all texts: {center:.2f})")
    ax.set_title(title)
    ax.set_xlabel("t-SNE 1")
    ax.set_ylabel("t-SNE 2")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlim(*_padded(xs))
    ax.set_ylim(*_padded(ys))
    fig.canvas.draw()  # lay the figure out once, then keep it so label boxes stay where measured
    fig.set_layout_engine("none")
    chosen = pick_labelled(means, center, n_labels, seed)
    placed = place_labels(fig, ax, xs[chosen], ys[chosen], [points[i]["word"] for i in chosen])
    for i, (word, _) in zip(chosen, placed, strict=True):
        points[i]["labelled"] = word is not None
    for p in points:
        p.setdefault("labelled", False)
    save_png(fig, path)
