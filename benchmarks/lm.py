"""Language-model benchmarks: Penn Treebank (word perplexity) and tiny-shakespeare (nats/char).

    python benchmarks/lm.py ptb --data ../shared/data/ptb
    python benchmarks/lm.py shakespeare --data ../shared/data/tinyshakespeare

PTB: the standard Mikolov split, 10k words, <eos> at each line end, words split on spaces (the
text is already tokenized); test perplexity read with one row, state carried throughout
(Zaremba et al. 2014: small 114.5, medium 82.7). Shakespeare: first 90% of the characters to
train, last 10% to validate (as char-rnn); validation loss in nats per character, and a sample.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from passage.files import open_text
from passage.layers import Dense, Embedding, GatedRecurrent, LstmRecurrent
from passage.lm import LanguageModel
from passage.preprocessing import Tokenizer
from passage.updates import SGD, Adam

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import data_dir  # noqa: E402


def ptb(directory: str):
    def read(name):
        with open_text(os.path.join(directory, name)) as f:
            return [w for line in f for w in line.split() + ["<eos>"]]

    train, valid, test = (read(n) for n in ("ptb.train.txt.gz", "ptb.valid.txt", "ptb.test.txt"))
    words = sorted(set(train))
    index = {w: i + 3 for i, w in enumerate(words)}  # ids 0-2 stay PAD/END/UNK, unused here
    ids = [np.array([index[w] for w in split], dtype=np.int64) for split in (train, valid, test)]
    return (*ids, len(words) + 3, {i: w for w, i in index.items()})


def shakespeare(directory: str):
    with open_text(os.path.join(directory, "input.txt.gz")) as f:
        text = f.read()
    cut = int(len(text) * 0.9)
    tok = Tokenizer(min_df=1, max_features=1000, lowercase=False, character=True)
    tok.fit([text[:cut]])
    train, valid = (np.asarray(tok.transform([t])[0], dtype=np.int64)
                    for t in (text[:cut], text[cut:]))
    return train, valid, tok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("task", choices=["ptb", "shakespeare"])
    ap.add_argument("--data", default=None,
                    help="the data set's folder (default: under $PASSAGE_DATA or ../shared/data)")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--depth", type=int, default=2)
    ap.add_argument("--layer", choices=["lstm", "gru"], default="lstm")
    ap.add_argument("--embedding-size", type=int, default=None, help="default: --size")
    ap.add_argument("--seq-len", type=int, default=None, help="ptb 35, shakespeare 100")
    ap.add_argument("--batch-size", type=int, default=None, help="ptb 32, shakespeare 64")
    ap.add_argument("--updater", choices=["adam", "sgd"], default="adam")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--clipnorm", type=float, default=1.0, help="gradient-norm clip (0: off)")
    ap.add_argument("--init", default="orthogonal", help="recurrent weight init")
    ap.add_argument("--lr-decay", type=float, default=0.5)
    ap.add_argument("--decay-after", type=int, default=None,
                    help="decay the lr after every epoch past this one (default: on plateau)")
    ap.add_argument("--p-drop", type=float, default=0.3)
    ap.add_argument("--tie", action="store_true", help="tie input and output embeddings")
    ap.add_argument("--gate", default="sigmoid", help="gate activation (LMs learn faster with "
                    "plain sigmoid gates here than with the classifier default, steeper)")
    ap.add_argument("--embedding-std", type=float, default=1.0,
                    help="embedding init N(0, std) (0: Passage's uniform +-0.05)")
    ap.add_argument("--dense-init", default="normal")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    is_ptb = args.task == "ptb"
    data = args.data or data_dir("ptb" if is_ptb else "tinyshakespeare")
    seq_len = args.seq_len or (35 if is_ptb else 100)
    batch = args.batch_size or (32 if is_ptb else 64)
    if is_ptb:
        train, valid, test, n_features, words = ptb(data)
        tok = None
    else:
        train, valid, tok = shakespeare(data)
        n_features = tok.n_features
    print(f"{args.task}: {len(train):,} train / {len(valid):,} validation tokens, "
          f"vocabulary {n_features:,}")
    emb = args.embedding_size or args.size
    rec = LstmRecurrent if args.layer == "lstm" else GatedRecurrent
    # Measured on 150k PTB tokens (one pass): N(0, 1) embeddings, sigmoid gates and a normal
    # output init reach perplexity 382 where the classifier defaults reach 589-650.
    init = (np.random.default_rng(args.seed).normal(0, args.embedding_std, (n_features, emb))
            if args.embedding_std > 0 and not args.tie else None)
    layers = [Embedding(emb, n_features, weights=init)]
    layers += [rec(args.size, p_drop=args.p_drop, gate_activation=args.gate, init=args.init)
               for _ in range(args.depth)]
    layers.append(Dense(n_features, "softmax", init=args.dense_init, p_drop=args.p_drop))
    updater = (Adam if args.updater == "adam" else SGD)(lr=args.lr, clipnorm=args.clipnorm)
    lm = LanguageModel(layers, updater=updater, verbose=1, seed=args.seed,
                       seq_len=seq_len, tie_weights=args.tie, tokenizer=tok)
    t = time.time()
    lm.fit(train, n_epochs=args.epochs, batch_size=batch, validation_data=valid,
           patience=2, lr_decay=args.lr_decay, decay_after=args.decay_after)
    secs = time.time() - t
    print(f"trained {len(lm.history_)} epochs in {secs / 60:.1f} min, kept epoch "
          f"{lm.best_epoch_}")
    if is_ptb:
        v, s = lm.evaluate(valid, batch_size=1), lm.evaluate(test, batch_size=1)
        print(f"PTB validation perplexity {v['perplexity']:.1f}, "
              f"test perplexity {s['perplexity']:.1f}")
        sample = lm.generate([], n=40, temperature=0.8, seed=0)
        print("sample:", " ".join(words.get(i, "?") for i in sample))
    else:
        v = lm.evaluate(valid, batch_size=1)
        print(f"tiny-shakespeare validation {v['cost']:.3f} nats/char "
              f"({v['bits']:.3f} bits/char)")
        print("sample (prompt 'ROMEO:', temperature 0.8, seed 0):")
        print("ROMEO:" + lm.generate("ROMEO:", n=400, temperature=0.8, seed=0))


if __name__ == "__main__":
    main()
