"""onnxruntime + tokenizers vs Passage's own predict, reviews per second on the IMDB test set.

Trains the 2015 example model (Embedding 128 -> GatedRecurrent 128 -> Dense 1 sigmoid) briefly
on part of IMDB train (speed does not depend on the weights), exports it with
``passage.export`` and, in the same run, times on the test reviews:

- text -> outputs: ``Tokenizer.transform`` + ``model.predict``, against tokenizers'
  ``encode_batch`` + an onnxruntime session;
- ids -> outputs: ``model.predict`` on token ids against the session alone (batches of
  ``--batch-size`` sorted by length for both, as ``predict`` batches).

Also checks that both give the same outputs (largest difference) and the same ids.

    flock /tmp/passage-cpu.lock python benchmarks/export.py [--data ../shared/data/imdb]
        [--train 2000] [--limit 25000] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np
import onnxruntime as ort
import torch
from tokenizers import Tokenizer as HFTokenizer

from passage import metrics
from passage.datasets import load_imdb
from passage.export import export_model
from passage.layers import Dense, Embedding, GatedRecurrent
from passage.models import RNN
from passage.preprocessing import Tokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import data_dir  # noqa: E402


def ort_predict(session, ids: list, batch_size: int) -> np.ndarray:
    """Outputs of the session for lists of ids, in batches sorted by length."""
    order = np.argsort([len(x) for x in ids], kind="stable")
    out = np.zeros((len(ids), 1), np.float32)
    for start in range(0, len(ids), batch_size):
        idx = order[start:start + batch_size]
        lengths = np.array([len(ids[i]) for i in idx], np.int64)
        batch = np.zeros((len(idx), int(lengths.max(initial=0))), np.int64)
        for row, i in enumerate(idx):
            batch[row, :lengths[row]] = ids[i]
        out[idx] = session.run(["outputs"], {"ids": batch, "lengths": lengths})[0]
    return out


def hf_ids(hf, texts: list[str]) -> list[list[int]]:
    hf.no_padding()
    return [e.ids for e in hf.encode_batch(texts)]


def timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None,
                    help="the data set's folder (default: under $PASSAGE_DATA or ../shared/data)")
    ap.add_argument("--train", type=int, default=2000, help="training reviews (1 epoch)")
    ap.add_argument("--limit", type=int, default=25000, help="test reviews timed")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    args.data = args.data or data_dir("imdb")

    trX, trY = load_imdb(args.data, "train")
    teX, teY = load_imdb(args.data, "test")
    rng = np.random.default_rng(0)
    pick = rng.permutation(len(trX))[:args.train]
    trX, trY = [trX[i] for i in pick], np.asarray(trY)[pick]
    keep = rng.permutation(len(teX))[:args.limit]  # the file is sorted by label
    teX, teY = [teX[i] for i in keep], np.asarray(teY)[keep]
    tok = Tokenizer(min_df=2).fit(trX)
    model = RNN([Embedding(128, tok.n_features), GatedRecurrent(128), Dense(1, "sigmoid")],
                cost="bce", verbose=0, seed=0, tokenizer=tok)
    model.fit(tok.transform(trX), trY, n_epochs=1)
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path, tok_path = export_model(model, os.path.join(tmp, "imdb.onnx"))
        session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
        hf = HFTokenizer.from_file(tok_path)

    threads = torch.get_num_threads()
    ours_ids, t_tok = timed(tok.transform, teX)
    ours, t_pred = timed(model.predict, ours_ids, args.batch_size)
    theirs_ids, t_hf = timed(hf_ids, hf, teX)
    theirs, t_ort = timed(ort_predict, session, theirs_ids, args.batch_size)
    n, tokens = len(teX), sum(map(len, ours_ids))
    rows = {
        "passage": {"tokenize_s": t_tok, "model_s": t_pred},
        "onnxruntime": {"tokenize_s": t_hf, "model_s": t_ort},
    }
    for r in rows.values():
        r["text_to_outputs_reviews_per_s"] = n / (r["tokenize_s"] + r["model_s"])
        r["ids_to_outputs_reviews_per_s"] = n / r["model_s"]
        r["tokenize_reviews_per_s"] = n / r["tokenize_s"]
    result = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "reviews": n,
              "tokens": tokens, "torch_threads": threads,
              "ort_threads": session.get_session_options().intra_op_num_threads,
              "same_ids": ours_ids == theirs_ids,
              "max_abs_output_difference": float(np.abs(ours - theirs).max()),
              "test_accuracy": metrics.accuracy(teY, ours[:, 0]), **rows}
    print(f"{n:,} IMDB test reviews, {tokens:,} tokens; torch threads {threads}; "
          f"same ids: {result['same_ids']}; largest output difference "
          f"{result['max_abs_output_difference']:.2e}; accuracy {result['test_accuracy']:.4f}")
    print(f"{'':<12} {'tokenize/s':>12} {'ids->out/s':>12} {'text->out/s':>12}")
    for name, r in rows.items():
        print(f"{name:<12} {r['tokenize_reviews_per_s']:>12,.0f} "
              f"{r['ids_to_outputs_reviews_per_s']:>12,.0f} "
              f"{r['text_to_outputs_reviews_per_s']:>12,.0f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
