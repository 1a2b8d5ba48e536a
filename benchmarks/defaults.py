"""What a user gets by default: `passage train` against the TF-IDF + linear model, per corpus.

For every labelled corpus in the data folder (IMDB binary sentiment, IMDB 1-10 rating as
regression, TREC-6 question classes), two runs on the same training file, each in a process
of its own (so each peak RSS is its own), both scored on the corpus's test split:

- ``passage train TRAIN --out m.passage`` with its defaults (nothing tuned per corpus), then
  ``passage predict`` in a process of its own; seconds: the wall time of ``passage train``
  (reading the file included); peak RSS: that of ``passage train`` (predict's is in the JSON).
- the linear baseline: TF-IDF word uni+bigrams (sublinear tf) and LogisticRegression (Ridge for
  the rating), min_df and C (alpha) grid-searched by 3-fold cross-validation on the training
  texts (``passage.baseline.fit_baseline``); seconds: the grid search and refit.

Prints one Markdown table (test accuracy or R^2, seconds, peak RSS, ratios to the linear
model) and writes it as JSON to ``results/defaults.json``.

    python benchmarks/defaults.py [--data-root ../shared/data] [--only imdb trec6 rating]
    python benchmarks/defaults.py --limit 2000   # a quick run on the first texts of each set
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from passage.files import open_text

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import data_dir, peak_rss_mb, write_results  # noqa: E402

# name -> (data folder, label column, task, metric)
CORPORA = {
    "imdb": ("imdb", "label", "binary", "accuracy"),
    "rating": ("imdb", "rating", "regression", "r2"),
    "trec6": ("trec6", "label", "multiclass", "accuracy"),
}


def read(path: str, label: str, limit: int | None) -> tuple[list[str], list]:
    """(texts, labels) of a JSON-lines file, shuffled with a fixed seed (IMDB's files are
    sorted by label), the first ``limit`` of them."""
    texts, labels = [], []
    with open_text(path) as f:
        for line in f:
            row = json.loads(line)
            texts.append(row["text"])
            labels.append(row[label])
    order = np.random.default_rng(0).permutation(len(texts))[:limit]
    return [texts[i] for i in order], [labels[i] for i in order]


def write_jsonl(path: str, texts: list[str], labels: list) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for t, y in zip(texts, labels, strict=True):
            f.write(json.dumps({"text": t, "label": y}) + "\n")


def score(metric: str, truth, pred) -> float:
    truth, pred = np.asarray(truth), np.asarray(pred)
    if metric == "r2":
        truth, pred = truth.astype(float), pred.astype(float)
        return float(1 - ((truth - pred) ** 2).sum() / ((truth - truth.mean()) ** 2).sum())
    return float(np.mean(truth.astype(str) == pred.astype(str)))


# -- the two runs, each in a child process ----------------------------------------------------
def child_train(train: str, task: str, work: str) -> dict:
    """``passage train`` with its defaults; its own process, so the peak RSS is its own."""
    from passage.cli import main

    model = os.path.join(work, "m.passage")
    start = time.perf_counter()
    args = ["train", train, "--out", model, "--quiet"]
    if task == "regression":
        args += ["--task", "regression"]
    if main(args) != 0:
        raise SystemExit("passage train failed")
    return {"seconds": time.perf_counter() - start, "rss_mb": peak_rss_mb(),
            "model_mb": os.path.getsize(model) / 2**20}


def child_predict(test: str, work: str) -> dict:
    """``passage predict`` of the model child_train wrote, on the test file."""
    from passage.cli import main

    out = os.path.join(work, "pred.csv")
    start = time.perf_counter()
    if main(["predict", os.path.join(work, "m.passage"), test, "--out", out]) != 0:
        raise SystemExit("passage predict failed")
    seconds = time.perf_counter() - start
    with open(out, newline="", encoding="utf-8") as f:
        pred = [row["prediction"] for row in csv.DictReader(f)]
    return {"seconds": seconds, "pred": pred, "rss_mb": peak_rss_mb()}


def child_linear(train: str, test: str, task: str) -> dict:
    from passage.baseline import fit_baseline
    from passage.labels import LabelCoding

    texts, labels = read_jsonl(train)
    test_texts, _ = read_jsonl(test)
    coding = LabelCoding.fit(labels, task)
    result = fit_baseline(texts, coding.encode(labels), task)
    pred = result.model.predict(test_texts)
    if task != "regression":
        pred = [coding.classes[int(k)] for k in pred]
    return {"seconds": result.seconds, "pred": [str(p) for p in pred],
            "params": result.best_params, "rss_mb": peak_rss_mb()}


def read_jsonl(path: str) -> tuple[list[str], list]:
    texts, labels = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            texts.append(row["text"])
            labels.append(row["label"])
    return texts, labels


def run_child(*args: str) -> dict:
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", *args],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"child {args[0]} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", default=None, help="folder holding imdb/ and trec6/")
    ap.add_argument("--only", nargs="+", choices=list(CORPORA), default=list(CORPORA))
    ap.add_argument("--limit", type=int, default=None,
                    help="use only this many training and test texts of each set")
    ap.add_argument("--json", default=os.path.join("results", "defaults.json"))
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        kind, *rest = args.child
        children = {"train": child_train, "predict": child_predict, "linear": child_linear}
        result = children[kind](*rest)
        print(json.dumps(result))
        return
    rows = []
    for name in args.only:
        folder, label, task, metric = CORPORA[name]
        root = data_dir(folder, args.data_root)
        texts, labels = read(os.path.join(root, "train.jsonl.gz"), label, args.limit)
        test_texts, test_labels = read(os.path.join(root, "test.jsonl.gz"), label, args.limit)
        with tempfile.TemporaryDirectory() as work:
            train, test = os.path.join(work, "train.jsonl"), os.path.join(work, "test.jsonl")
            write_jsonl(train, texts, labels)
            write_jsonl(test, test_texts, test_labels)
            linear = run_child("linear", train, test, task)
            rnn = run_child("train", train, task, work)
            predicted = run_child("predict", test, work)
        truth = [str(y) for y in test_labels] if task != "regression" else test_labels
        row = {"corpus": name, "task": task, "metric": metric, "n_train": len(texts),
               "n_test": len(test_texts),
               "linear": score(metric, truth, linear["pred"]),
               "passage": score(metric, truth, predicted["pred"]),
               "linear_seconds": linear["seconds"], "passage_seconds": rnn["seconds"],
               "passage_predict_seconds": predicted["seconds"],
               "passage_predict_rss_mb": predicted["rss_mb"],
               "linear_rss_mb": linear["rss_mb"], "passage_rss_mb": rnn["rss_mb"],
               "passage_model_mb": rnn["model_mb"], "linear_params": linear["params"]}
        rows.append(row)
        print(f"{name}: linear {row['linear']:.4f} ({row['linear_seconds']:.0f}s), passage "
              f"{row['passage']:.4f} ({row['passage_seconds']:.0f}s, "
              f"{row['passage_rss_mb']:.0f} MB)", flush=True)
    print(table(rows))
    write_results(args.json, "defaults", rows, limit=args.limit)


def table(rows: list[dict]) -> str:
    lines = ["| corpus (task) | train / test texts | metric | TF-IDF + linear | passage train "
             "| difference | linear s | passage s | time ratio | peak RSS linear / passage |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {r['corpus']} ({r['task']}) | {r['n_train']:,} / {r['n_test']:,} | {r['metric']} "
            f"| {r['linear']:.4f} | {r['passage']:.4f} | {r['passage'] - r['linear']:+.4f} "
            f"| {r['linear_seconds']:.0f} | {r['passage_seconds']:.0f} "
            f"| {r['passage_seconds'] / r['linear_seconds']:.2f}x "
            f"| {r['linear_rss_mb']:,.0f} / {r['passage_rss_mb']:,.0f} MB |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
