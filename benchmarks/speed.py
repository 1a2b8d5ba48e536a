"""Speed on IMDB: Passage against its peers, measured in the same run, printed as ratios.

- training: Passage (bucketing + exact masking on the fused kernel) against a hand-written
  PyTorch loop (random minibatches padded to the longest, nn.GRU, final hidden state), in
  non-pad tokens/s, and the FLOP rate reached against this machine's matmul at the recurrent shape;
  also with ``precision='bf16'`` (mixed precision: fast where the CPU has AVX512-BF16 or AMX);
  both train the GRU with ``GRUScan`` (passage.recurrent; float32 only with its fused C steps),
  and are measured again on PyTorch's GRU kernel;
- inference: reviews/s on the test reviews, against the usual hand-written predict (batches in
  data order padded to the longest, ``nn.GRU``); Passage skips padding and runs one batch per core;
- tokenizer: fit + transform against the 2015 pure-Python algorithm (same ids required), best
  of ``--tok-repeat`` runs each, with the default list output and with ``as_array=True``; with the
  compiled engine (passage/_tokens.c) also the numpy engine used when it is not built.

    python benchmarks/speed.py [--data ../shared/data/imdb] [--n-train 5000] [--size 128]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter

import numpy as np
import torch
from torch import nn

from passage import recurrent
from passage._tokenizer import current_settings, engine_name, settings
from passage.datasets import load_imdb
from passage.layers import Dense, Embedding, GatedRecurrent
from passage.models import RNN
from passage.preprocessing import Tokenizer
from passage.preprocessing import tokenize_reference as tokenize_2015

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import data_dir  # noqa: E402


def tokenizer_2015(train, test, max_features=9997, min_df=10):
    """The 2015 algorithm (character loop, dict counts), ties broken by first occurrence."""
    docs = [tokenize_2015(t.lower()) for t in train]
    df, first = Counter(), {}
    for d in docs:
        for t in d:
            first.setdefault(t, len(first))
        df.update(set(d))
    kept = sorted((t for t in df if df[t] >= min_df), key=lambda t: (-df[t], first[t]))
    enc = {t: i + 3 for i, t in enumerate(kept[: max_features - 3])}
    return [[enc.get(t, 2) for t in d] for d in docs] + [
        [enc.get(t, 2) for t in tokenize_2015(x.lower())] for x in test]


def best_time(fn, repeat):
    """(best wall time over ``repeat`` calls, the last result)."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def tokenizer_rows(train, test, repeat):
    """Tokenizer fit + transform of train + test against the 2015 algorithm (same ids); returns
    the fitted tokenizer, the ids (lists) and the table rows."""
    tok = Tokenizer()

    def lists():
        return tok.fit_transform(train) + tok.transform(test)

    def arrays():
        fresh = Tokenizer()
        return fresh.fit_transform(train, as_array=True) + fresh.transform(test, as_array=True)

    t_ref, ref = best_time(lambda: tokenizer_2015(train, test), repeat)
    t_lists, ours = best_time(lists, repeat)
    assert ours == ref, "token ids differ from the 2015 algorithm"
    t_arrays, packed = best_time(arrays, repeat)
    assert packed.tolist() == ref, "token ids (as_array) differ from the 2015 algorithm"
    engine = engine_name(current_settings())
    name = f"tokenizer fit+transform, {(len(train) + len(test)) // 1000}k reviews (s)"
    rows = [(f"{name}, {engine} engine", t_lists, t_ref, t_ref / t_lists),
            ("tokenizer, as_array=True (TokenArray) (s)", t_arrays, t_ref, t_ref / t_arrays)]
    if engine == "compiled":  # what a user without a C compiler gets
        with settings(engine="numpy"):
            t_numpy, packed = best_time(arrays, repeat)
        assert packed.tolist() == ref, "token ids (numpy engine) differ from the 2015 algorithm"
        rows.append(("  as_array, numpy engine (built without C) (s)", t_numpy, t_ref,
                     t_ref / t_numpy))
    return tok, ours, rows


def matmul_gflops(b, h, g, seconds=1.0):
    a, w = torch.randn(b, h), torch.randn(h, g * h)
    n, t = 0, time.perf_counter()
    while time.perf_counter() - t < seconds:
        for _ in range(100):
            a @ w
        n += 100
    return 2 * b * h * g * h * n / (time.perf_counter() - t) / 1e9


def handwritten_loop(X, Y, n_features, size, batch=64, seed=0):
    """How most users write it: shuffled batches padded to the longest, nn.GRU, last state."""
    torch.manual_seed(seed)
    emb, gru, out = nn.Embedding(n_features, size), nn.GRU(size, size, batch_first=True), \
        nn.Linear(size, 1)
    params = [*emb.parameters(), *gru.parameters(), *out.parameters()]
    opt = torch.optim.Adam(params, lr=1e-3)
    order = np.random.default_rng(seed).permutation(len(X))
    tokens, t = 0, time.perf_counter()
    for s in range(0, len(order), batch):
        idx = order[s:s + batch]
        seqs = [X[i] for i in idx]
        T = max(len(x) for x in seqs)
        xb = torch.tensor([x + [0] * (T - len(x)) for x in seqs])
        yb = torch.tensor([[float(Y[i])] for i in idx])
        _, h = gru(emb(xb))
        loss = nn.functional.binary_cross_entropy_with_logits(out(h[0]), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        tokens += sum(len(x) for x in seqs)
    return tokens / (time.perf_counter() - t)


def handwritten_predict(X, n_features, emb_size, size, batch=256):
    """The usual hand-written predict: batches in data order padded to the longest, nn.GRU,
    the state after the last (padded) step; reviews/s."""
    emb, gru = nn.Embedding(n_features, emb_size), nn.GRU(emb_size, size, batch_first=True)
    out = nn.Linear(size, 1)
    t = time.perf_counter()
    with torch.inference_mode():
        for s in range(0, len(X), batch):
            seqs = X[s:s + batch]
            T = max(1, max(len(x) for x in seqs))
            xb = torch.tensor([x + [0] * (T - len(x)) for x in seqs])
            torch.sigmoid(out(gru(emb(xb))[1][0]))
    return len(X) / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None,
                    help="the data set's folder (default: under $PASSAGE_DATA or ../shared/data)")
    ap.add_argument("--n-train", type=int, default=5000)
    ap.add_argument("--size", type=int, default=128, help="GRU size (the talk's: 512)")
    ap.add_argument("--emb", type=int, default=128, help="embedding size (the talk's: 256)")
    ap.add_argument("--n-test", type=int, default=25000, help="test reviews to predict")
    ap.add_argument("--tok-repeat", type=int, default=3, help="tokenizer runs (best is kept)")
    args = ap.parse_args()
    args.data = args.data or data_dir("imdb")

    trX, trY = load_imdb(args.data, "train")
    teX, teY = load_imdb(args.data, "test")
    tok, ours, rows = tokenizer_rows(trX, teX, args.tok_repeat)

    sub = np.random.default_rng(0).permutation(len(trX))[: args.n_train]
    X, Y = [ours[i] for i in sub], [trY[i] for i in sub]
    def trained(precision):  # the model after one epoch, and its training tokens/s
        model = RNN([Embedding(args.emb, tok.n_features), GatedRecurrent(args.size),
                     Dense(1, "sigmoid")], "bce", verbose=0, seed=0, precision=precision)
        model.fit(X, Y)
        return model, model.last_epoch_["tokens"] / model.last_epoch_["seconds"]

    model, ours_rate = trained("fp32")
    hand_rate = handwritten_loop(X, Y, tok.n_features, args.size)
    rows.append(("training, non-pad tokens/s", ours_rate, hand_rate, ours_rate / hand_rate))
    _, bf16_rate = trained("bf16")
    rows.append(("training, precision='bf16', tokens/s", bf16_rate, hand_rate,
                 bf16_rate / hand_rate))
    rows.append(("  bf16 against fp32 passage, tokens/s", bf16_rate, ours_rate,
                 bf16_rate / ours_rate))
    kept, recurrent.HAND_WRITTEN_GRU_DTYPES = recurrent.HAND_WRITTEN_GRU_DTYPES, set()
    try:  # the same trainings on PyTorch's own GRU kernel and backward
        _, aten_fp32 = trained("fp32")
        _, aten_bf16 = trained("bf16")
    finally:
        recurrent.HAND_WRITTEN_GRU_DTYPES = kept
    for name, rate, aten in (("fp32", ours_rate, aten_fp32), ("bf16", bf16_rate, aten_bf16)):
        rows.append((f"  {name} against PyTorch's GRU kernel, tokens/s", rate, aten, rate / aten))

    # FLOPs per token, fwd + bwd ~ 3x fwd: input projection and recurrent matmul of 3 gates
    flop_per_token = 3 * 2 * 3 * args.size * (args.emb + args.size)
    peak = matmul_gflops(64, args.size, 3)
    reached = ours_rate * flop_per_token / 1e9
    rows.append(("GFLOP/s reached vs matmul at (64 x H) @ (H x 3H)", reached, peak,
                 reached / peak))

    test = ours[len(trX):][:args.n_test]
    t = time.perf_counter()
    model.predict(test)
    pred_rate = len(test) / (time.perf_counter() - t)
    hand_pred = handwritten_predict(test, tok.n_features, args.emb, args.size)
    rows.append((f"inference, test reviews/s ({len(test):,})", pred_rate, hand_pred,
                 pred_rate / hand_pred))

    print(f"threads {torch.get_num_threads()}, GRU {args.size}, embedding {args.emb}, "
          f"{args.n_train} training reviews")
    print(f"{'measure':<60} {'passage':>12} {'peer':>12} {'ratio':>7}")
    for name, a, b, r in rows:
        print(f"{name:<60} {a:>12,.1f} {b:>12,.1f} {r:>7.2f}")
    print("peers: 2015 tokenizer algorithm; hand-written PyTorch loop; torch matmul; "
          "hand-written predict")


if __name__ == "__main__":
    main()
