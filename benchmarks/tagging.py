"""UD English EWT part-of-speech tagging (UPOS): a BiLSTM tagger on word features.

    python benchmarks/tagging.py --data ../shared/data/ud-english-ewt

Trains on train, keeps the best epoch by dev accuracy, reports test UPOS accuracy (all tokens,
and tokens unseen in training). Published: UDPipe 2 + BERT 97.5; plain BiLSTM taggers ~94-95.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from passage.tagging import Tagger, read_conllu

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import data_dir  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=None,
                    help="the data set's folder (default: under $PASSAGE_DATA or ../shared/data)")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--embedding-size", type=int, default=64)
    ap.add_argument("--depth", type=int, default=1)
    ap.add_argument("--p-drop", type=float, default=0.3)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--patience", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    args.data = args.data or data_dir("ud-english-ewt")
    split = {s: read_conllu(os.path.join(args.data, f"en_ewt-ud-{s}.conllu.gz"))
             for s in ("train", "dev", "test")}
    for s, (x, _) in split.items():
        print(f"{s}: {len(x):,} sentences, {sum(map(len, x)):,} words")
    tagger = Tagger(size=args.size, embedding_size=args.embedding_size, depth=args.depth,
                    p_drop=args.p_drop, n_epochs=args.epochs, batch_size=args.batch_size,
                    lr=args.lr, seed=args.seed, verbose=1)
    t = time.time()
    tagger.fit(*split["train"], validation_data=split["dev"], patience=args.patience)
    secs = time.time() - t
    test_x, test_y = split["test"]
    pred = tagger.predict(test_x)
    seen = {w.lower() for s in split["train"][0] for w in s}
    hits = total = oov_hits = oov = 0
    for ws, ps, ts in zip(test_x, pred, test_y, strict=True):
        for w, p, t_ in zip(ws, ps, ts, strict=True):
            hits, total = hits + (p == t_), total + 1
            if w.lower() not in seen:
                oov_hits, oov = oov_hits + (p == t_), oov + 1
    print(f"kept epoch {tagger.model_.best_epoch_}; trained in {secs:.0f}s")
    print(f"test UPOS accuracy {hits / total:.2%} ({total:,} words); "
          f"unseen words {oov_hits / max(oov, 1):.2%} ({oov:,})")


if __name__ == "__main__":
    main()
