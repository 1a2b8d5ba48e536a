"""Rebuild passage/data/imdb_sample.jsonl.gz from ../shared/data/imdb (aclImdb v1.0).

Draws a balanced random sample (seed 0): 5,000 reviews of the official train split and 1,000 of
the official test split. Run from the project root: python scripts/make_sample.py
"""

import gzip
import json
import random

SRC = "../shared/data/imdb/{}.jsonl.gz"
OUT = "passage/data/imdb_sample.jsonl.gz"


def sample(split, n, rng):
    rows = [json.loads(line) for line in gzip.open(SRC.format(split), "rt", encoding="utf-8")]
    picked = []
    for label in (0, 1):
        picked += rng.sample([r for r in rows if r["label"] == label], n // 2)
    rng.shuffle(picked)
    return [{"split": split, **r} for r in picked]


rng = random.Random(0)
rows = sample("train", 5000, rng) + sample("test", 1000, rng)
with gzip.GzipFile(OUT, "wb", mtime=0) as f:
    f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8"))
print(f"wrote {len(rows)} reviews to {OUT}")
