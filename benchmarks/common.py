"""What the benchmarks share: where the data sets are, peak memory, JSON results.

The data sets live in one folder (``--data-root``, else ``$PASSAGE_DATA``, else
``../shared/data``), one sub-folder per set, as docs/index.md ("Getting the full data sets")
lays out.
"""

from __future__ import annotations

import datetime
import json
import os
import resource
import subprocess
import sys

DATA_ROOT = os.environ.get("PASSAGE_DATA", os.path.join("..", "shared", "data"))
HERE = os.path.dirname(os.path.abspath(__file__))


def data_dir(name: str, root: str | None = None) -> str:
    """The folder of data set ``name`` ('imdb', 'trec6', ...), or exit with how to get it."""
    path = os.path.join(root or DATA_ROOT, name)
    if not os.path.isdir(path):
        sys.exit(f"error: {path} not found: pass --data-root (or set PASSAGE_DATA) to the "
                 f"folder that holds {name}/ (docs/index.md, 'Getting the full data sets')")
    return path


def peak_rss_mb() -> float:
    """This process's peak resident set size in MB (ru_maxrss is in KB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def commit() -> str:
    """The checkout's commit (with '+' when it has changes), or 'unknown'."""
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE,
                             capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=HERE, capture_output=True, text=True).stdout.strip()
        return rev + ("+" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def write_results(path: str, benchmark: str, rows: list[dict], **info) -> None:
    """Write a benchmark's rows with its command, commit and date as JSON (``results/``)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    doc = {"benchmark": benchmark, "command": " ".join(["python", *sys.argv]),
           "commit": commit(), "date": datetime.date.today().isoformat(), **info,
           "rows": rows}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
