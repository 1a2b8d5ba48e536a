"""The inference scan per row and step: passage/_scan.c (each build this CPU runs) beside the
loop of PyTorch ops (``skip_padding.scan_steps``), in the same run, on one core.

One GRU direction (size 128 by default, a 20,000-entry projection table as after an Embedding),
every row ``--steps`` long, batches of 1, 4, 32 and 128 rows: the best of 3 runs each.

    python benchmarks/scan.py [--size 128] [--steps 300] [--json results/scan.json]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import write_results  # noqa: E402

from passage import skip_padding


def best_of(fn, runs: int = 3) -> float:
    fn()
    best = float("inf")
    for _ in range(runs):
        began = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - began)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--vocabulary", type=int, default=20000)
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    size, steps = args.size, args.steps
    table = torch.randn(args.vocabulary, 3 * size, generator=g)
    w_hh = torch.randn(3 * size, size, generator=g) / size ** 0.5
    b_hh = torch.randn(3 * size, generator=g) * 0.1
    builds = skip_padding.compiled_variants()
    if not builds:
        sys.exit("passage._scan is not built (pip install with a C compiler builds it)")
    rows = []
    print(f"GRU {size}, {steps} steps, one core; microseconds per row and step")
    print(f"{'rows':>5} {'pytorch ops':>12} " + " ".join(f"{b:>8}" for b in builds)
          + "   ops / best build")
    for batch in (1, 4, 32, 128):
        ids = torch.randint(0, args.vocabulary, (batch, steps), generator=g)
        lengths = np.full(batch, steps)
        h0 = torch.zeros(batch, size)
        per = 1e6 / (batch * steps)
        row = {"rows": batch, "pytorch_ops_us": best_of(
            lambda ids=ids, lengths=lengths, h0=h0: skip_padding.scan_steps(
                "gru", lambda t, a: table.index_select(0, ids[a:, t]), lengths, steps, (h0,),
                w_hh, b_hh, pool="max")) * per}
        for build in builds:
            row[f"{build}_us"] = best_of(
                lambda build=build, ids=ids, lengths=lengths, h0=h0: skip_padding.scan(
                    "gru", table, ids, lengths, (h0,), w_hh, b_hh, pool="max",
                    variant=build)) * per
        rows.append(row)
        print(f"{batch:>5} {row['pytorch_ops_us']:>12.2f} "
              + " ".join(f"{row[f'{b}_us']:>8.2f}" for b in builds)
              + f"   {row['pytorch_ops_us'] / row[f'{builds[0]}_us']:.1f}x")
    if args.json:
        write_results(args.json, "scan", rows, size=size, steps=steps, builds=list(builds))


if __name__ == "__main__":
    main()
