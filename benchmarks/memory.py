"""Peak memory and speed on a corpus with a long tail of very long documents.

The corpus is made from IMDB reviews: ``--n-docs`` reviews as they are (median about 230
tokens) plus ``--n-long`` documents of ``--long-min`` to ``--long-max`` tokens, each the
concatenation of random reviews (labelled as its first review). One epoch of the default model
(Embedding 128 -> GatedRecurrent 128 -> Dense 1 sigmoid, bce, Adam, the default iterator and
its ``max_tokens`` budget) is trained on it, and on the same corpus with the long documents cut
to ``--cut`` tokens; each run in a process of its own, so each peak RSS (``ru_maxrss``) is its
own. Then one document of ``--predict-tokens`` tokens is predicted (streamed in chunks).
Prints a Markdown table: peak RSS, tokens/s, documents trained in chunks.

    python benchmarks/memory.py [--data ../shared/data/imdb] [--n-docs 10000] [--n-long 60]
        [--long-min 20000] [--long-max 50000] [--cut 512] [--predict-tokens 2000000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import data_dir  # noqa: E402


def peak_rss_mb() -> float:
    """This process's peak resident set size in MB (ru_maxrss is in KB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_corpus(data: str, n_docs: int, n_long: int, long_min: int, long_max: int,
                seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(values, offsets, labels, n_features) of the corpus, as token ids."""
    from passage.datasets import load_imdb
    from passage.preprocessing import Tokenizer

    path = os.path.join(data, "train.jsonl.gz")
    if not os.path.exists(path):
        sys.exit(f"error: {path} not found: pass --data, the folder holding IMDB's "
                 "train.jsonl.gz (e.g. ../shared/data/imdb)")
    texts, labels = load_imdb(data, "train")
    tok = Tokenizer()
    ids = tok.fit_transform(texts, as_array=True)
    rng = np.random.default_rng(seed)
    pick = rng.permutation(len(ids))
    docs = [ids[int(i)] for i in pick[:n_docs]]
    ys = [labels[int(i)] for i in pick[:n_docs]]
    for _ in range(n_long):
        want = int(rng.integers(long_min, long_max + 1))
        first = int(rng.integers(len(ids)))
        parts, n = [ids[first]], len(ids[first])
        while n < want:
            j = int(rng.integers(len(ids)))
            parts.append(ids[j])
            n += len(ids[j])
        docs.append(np.concatenate(parts)[:want])
        ys.append(labels[first])
    lengths = np.array([len(d) for d in docs], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    return (np.concatenate(docs).astype(np.int32), offsets, np.array(ys, dtype=np.int64),
            tok.n_features)


def train_variant(corpus: str, cut: int, size: int, seed: int, max_tokens: int | None) -> dict:
    """One epoch on the corpus (long documents cut to ``cut`` tokens if > 0), in this process."""
    from passage.iterators import SortedPadded
    from passage.layers import Dense, Embedding, GatedRecurrent
    from passage.models import RNN
    from passage.sequences import TokenArray

    z = np.load(corpus)
    X = TokenArray(z["values"], z["offsets"])
    if cut:
        X = TokenArray.from_sequences([x[:cut] for x in X])
    kw = {} if max_tokens == 0 else {"iterator": SortedPadded(max_tokens=max_tokens)}
    model = RNN([Embedding(size, int(z["n_features"])), GatedRecurrent(size),
                 Dense(1, activation="sigmoid")], cost="bce", verbose=0, seed=seed, **kw)
    model.fit(X, z["labels"], n_epochs=1)
    ep = model.last_epoch_
    return {"docs": len(X), "tokens": int(ep["tokens"]), "longest": int(X.lengths().max()),
            "seconds": ep["seconds"], "tokens_per_s": ep["tokens"] / ep["seconds"],
            "chunked_docs": ep["chunked_docs"], "max_tokens": model.iterator.max_tokens,
            "peak_rss_mb": peak_rss_mb()}


def predict_variant(n_tokens: int, size: int, seed: int) -> dict:
    """Predict one document of ``n_tokens`` random ids with an (untrained) default model."""
    from passage.layers import Dense, Embedding, GatedRecurrent
    from passage.models import RNN

    model = RNN([Embedding(size, 10000), GatedRecurrent(size), Dense(1, activation="sigmoid")],
                cost="bce", verbose=0, seed=seed)
    model.fitted_ = True  # the weights do not matter for memory
    doc = np.random.default_rng(seed).integers(3, 10000, n_tokens).astype(np.int32)
    base = peak_rss_mb()
    t = time.perf_counter()
    p = model.predict([doc])
    seconds = time.perf_counter() - t
    return {"tokens": n_tokens, "seconds": seconds, "tokens_per_s": n_tokens / seconds,
            "prediction": float(p[0, 0]), "peak_rss_mb": peak_rss_mb(),
            "peak_before_predict_mb": base}


def run_child(args: list[str]) -> dict:
    """Run this script with ``args`` in a fresh process; its JSON result."""
    out = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True,
                         text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None,
                    help="the data set's folder (default: under $PASSAGE_DATA or ../shared/data)")
    ap.add_argument("--n-docs", type=int, default=10000)
    ap.add_argument("--n-long", type=int, default=60)
    ap.add_argument("--long-min", type=int, default=20000)
    ap.add_argument("--long-max", type=int, default=50000)
    ap.add_argument("--cut", type=int, default=512)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-tokens", type=int, default=0,
                    help="the iterator's budget (0: its default)")
    ap.add_argument("--predict-tokens", type=int, default=2_000_000,
                    help="length of the document predicted (0: skip)")
    ap.add_argument("--child", choices=("corpus", "train", "predict"), help=argparse.SUPPRESS)
    ap.add_argument("--corpus", help=argparse.SUPPRESS)
    ap.add_argument("--child-cut", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.data = args.data or data_dir("imdb")
    if args.child == "corpus":
        values, offsets, labels, n_features = make_corpus(
            args.data, args.n_docs, args.n_long, args.long_min, args.long_max, args.seed)
        np.savez(args.corpus, values=values, offsets=offsets, labels=labels,
                 n_features=n_features)
        print(json.dumps({"peak_rss_mb": peak_rss_mb()}))
        return
    if args.child == "train":
        print(json.dumps(train_variant(args.corpus, args.child_cut, args.size, args.seed,
                                       args.max_tokens)))
        return
    if args.child == "predict":
        print(json.dumps(predict_variant(args.predict_tokens, args.size, args.seed)))
        return

    # Every step in a child: ru_maxrss survives fork and exec, so the parent must stay small
    if not os.path.exists(os.path.join(args.data, "train.jsonl.gz")):
        sys.exit(f"error: {os.path.join(args.data, 'train.jsonl.gz')} not found: pass --data, "
                 "the folder holding IMDB's train.jsonl.gz (e.g. ../shared/data/imdb)")
    common = ["--size", str(args.size), "--seed", str(args.seed),
              "--max-tokens", str(args.max_tokens)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        corpus = os.path.join(tmp, "corpus.npz")
        run_child(["--child", "corpus", "--corpus", corpus, "--data", args.data, "--n-docs",
                   str(args.n_docs), "--n-long", str(args.n_long), "--long-min",
                   str(args.long_min), "--long-max", str(args.long_max), "--seed",
                   str(args.seed)])
        lengths = np.diff(np.load(corpus)["offsets"])
        print(f"corpus: {len(lengths)} documents, {int(lengths.sum()):,} tokens, median "
              f"{int(np.median(lengths))}, longest {int(lengths.max()):,}, "
              f"{int((lengths >= args.long_min).sum())} of {args.long_min:,}+ tokens, parent "
              f"peak RSS {peak_rss_mb():.0f} MB", flush=True)
        for name, cut in (("long tail", 0), (f"long documents cut to {args.cut}", args.cut)):
            r = run_child(["--child", "train", "--corpus", corpus, "--child-cut", str(cut),
                           *common])
            rows.append((f"train 1 epoch, {name}", r))
            print(f"{name}: {json.dumps(r)}", flush=True)
    if args.predict_tokens:
        r = run_child(["--child", "predict", "--predict-tokens", str(args.predict_tokens),
                       *common])
        rows.append((f"predict one {args.predict_tokens:,}-token document", r))
        print(f"predict: {json.dumps(r)}", flush=True)
    print("\n| run | documents | longest | peak RSS (MB) | tokens/s | chunked docs |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, r in rows:
        print(f"| {name} | {r.get('docs', 1):,} | {r.get('longest', r['tokens']):,} | "
              f"{r['peak_rss_mb']:,.0f} | {r['tokens_per_s']:,.0f} | "
              f"{r.get('chunked_docs', '-')} |")
    long_, cut_ = rows[0][1], rows[1][1]
    print(f"\ntokens/s long tail / cut: {long_['tokens_per_s'] / cut_['tokens_per_s']:.2f}; "
          f"peak RSS long tail {long_['peak_rss_mb'] / 1024:.2f} GB (target <= 2 GB)")


if __name__ == "__main__":
    main()
