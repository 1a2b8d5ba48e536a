"""The talk's showdown: linear baseline vs RNN as the training set grows, on one test set.

For every training-set size, the same random subset (nested: each size contains the smaller
ones) trains the grid-searched TF-IDF linear model and an RNN (Embedding 128 -> GRU 128 -> Dense,
early stopping on 10% of the subset); both are scored on the same test texts (accuracy for
classes, RMSE for regression). ``plot_learning_curve`` draws the table as a PNG.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, cast

import numpy as np

from passage.baseline import fit_baseline
from passage.labels import LabelCoding
from passage.options import TextModelOptions
from passage.recipe import fit_text_model

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

DEFAULT_SIZES = (1000, 5000, 25000)
SHOWDOWN_RNN = TextModelOptions()  # what `passage train` gives a user: the recipe's defaults


def metric_name(task: str) -> str:
    return "rmse" if task == "regression" else "accuracy"


def score(task: str, y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Accuracy of class ids, or RMSE of values."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if task == "regression":
        return float(np.sqrt(np.mean((y_pred.astype(float) - y_true.astype(float)) ** 2)))
    return float(np.mean(y_true == y_pred))


def training_subsets(n: int, sizes: Sequence[int], seed: int = 0) -> list[np.ndarray]:
    """Nested random index subsets of range(n), one per size (capped at n, duplicates dropped).

    >>> [len(s) for s in training_subsets(30, [10, 50, 20])]
    [10, 20, 30]
    """
    if not sizes or any(int(s) < 1 for s in sizes):
        raise ValueError(f"sizes must be positive numbers of training texts, got {list(sizes)}")
    order = np.random.default_rng(seed).permutation(n)
    capped = sorted({min(int(s), n) for s in sizes})
    return [order[:s] for s in capped]


def run_showdown(train_texts: Iterable[str], train_labels: Iterable[object],
                 test_texts: Sequence[str], test_labels: Sequence[object], *,
                 sizes: Sequence[int] = DEFAULT_SIZES, task: str = "auto",
                 rnn: TextModelOptions | None = None, grid: dict | None = None, cv: int = 3,
                 n_jobs: int = 1, seed: int = 0,
                 log: Callable[[str], None] | None = print) -> list[dict]:
    """Train both models at every size; rows of {size, model, metric, score, seconds}.

    rnn: the RNN's settings (default ``SHOWDOWN_RNN``); grid: the baseline's parameter grid.
    ``seconds`` is the wall time of training (grid search or early-stopped epochs included).
    """
    train_texts, train_labels = list(train_texts), list(train_labels)
    if len(train_texts) != len(train_labels) or len(test_texts) != len(test_labels):
        raise ValueError("every text needs exactly one label (training or test set mismatch)")
    coding = LabelCoding.fit(train_labels, task)
    y_train, y_test = coding.encode(train_labels), coding.encode(test_labels)
    options = (rnn or SHOWDOWN_RNN).updated(seed=seed)
    metric = metric_name(coding.task)
    rows: list[dict] = []
    for subset in training_subsets(len(train_texts), sizes, seed):
        texts = [train_texts[i] for i in subset]
        base = fit_baseline(texts, y_train[subset], coding.task, grid=grid, cv=cv,
                            n_jobs=n_jobs)
        base_pred = cast("Pipeline", base.model).predict(list(test_texts))
        if coding.task != "regression":
            base_pred = np.asarray(base_pred).astype(np.int64)
        rows.append({"size": len(subset), "model": base.name, "metric": metric,
                     "score": score(coding.task, y_test, base_pred), "seconds": base.seconds,
                     "params": base.best_params})
        start = time.perf_counter()
        model = fit_text_model(texts, [train_labels[i] for i in subset], coding, options)
        seconds = time.perf_counter() - start
        rnn_pred = coding.output_ids(cast(np.ndarray, model.predict(list(test_texts))))
        rows.append({"size": len(subset), "model": f"rnn-{options.layer}", "metric": metric,
                     "score": score(coding.task, y_test, rnn_pred), "seconds": seconds,
                     "params": {"best_epoch": getattr(model, "best_epoch_", options.n_epochs)}})
        if log is not None:
            for row in rows[-2:]:
                log(f"{row['size']:>7,} {row['model']:<14} {metric} {row['score']:.4f} "
                    f"({row['seconds']:.1f}s)")
    return rows


def format_table(rows: list[dict]) -> str:
    """The rows as a Markdown table (size, model, metric, seconds)."""
    metric = rows[0]["metric"] if rows else "score"
    lines = [f"| training texts | model | test {metric} | seconds |", "|---:|---|---:|---:|"]
    lines += [f"| {r['size']:,} | {r['model']} | {r['score']:.4f} | {r['seconds']:.1f} |"
              for r in rows]
    return "\n".join(lines)


def plot_learning_curve(rows: list[dict], path: str | os.PathLike, title: str | None = None,
                        n_test: int | None = None) -> None:
    """PNG of test metric vs training size (log x), one line per model, wall time per point."""
    from passage.showcase.figures import new_figure, save_png

    if not rows:
        raise ValueError("no showdown results to plot")
    metric = rows[0]["metric"]
    fig = new_figure(7.5, 4.8)
    ax = fig.add_subplot()
    sizes = sorted({r["size"] for r in rows})
    for model in dict.fromkeys(r["model"] for r in rows):
        mine = sorted((r for r in rows if r["model"] == model), key=lambda r: r["size"])
        xs, ys = [r["size"] for r in mine], [r["score"] for r in mine]
        (line,) = ax.plot(xs, ys, marker="o", linewidth=2, label=model)
        for r in mine:
            ax.annotate(_seconds(r["seconds"]), (r["size"], r["score"]),
                        textcoords="offset points", xytext=(0, 8), ha="center", fontsize=8,
                        color=line.get_color())
    ax.set_xscale("log")
    ax.set_xticks(sizes, labels=[f"{s:,}" for s in sizes])
    ax.minorticks_off()
    ax.margins(x=0.08, y=0.15)
    ax.grid(True, alpha=0.3)
    ax.set_xlabel("training texts (log scale)")
    better = "lower is better" if metric == "rmse" else "higher is better"
    ax.set_ylabel(f"test {metric.upper() if metric == 'rmse' else metric} ({better})")
    on = f" on {n_test:,} test texts" if n_test else ""
    ax.set_title(title or f"Linear baseline vs RNN: test {metric}{on}")
    ax.legend(title="labels: training wall time", loc="best", fontsize=9, title_fontsize=8)
    save_png(fig, path)


def _seconds(s: float) -> str:
    if s < 10:
        return f"{s:.1f}s"
    if s < 600:
        return f"{s:.0f}s"
    return f"{s / 60:.0f}min"
