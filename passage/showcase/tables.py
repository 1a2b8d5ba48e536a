"""Read texts (and labels) from a data file: CSV, TSV or JSON lines, gzip-compressed or not.

The format comes from the file name: ``.csv``, ``.tsv``/``.tab``, ``.jsonl``/``.ndjson``, each
optionally followed by ``.gz``. Every problem (missing file or column, a row with the wrong
number of fields, bad JSON, an empty label) is a ``ValueError``/``FileNotFoundError`` that names
the file and line, so the command line can print it as one line.

>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "reviews.csv")
>>> _ = open(path, "w").write('text,label\\n"great, really",pos\\nawful,neg\\n')
>>> read_table(path, "text", "label")
(['great, really', 'awful'], ['pos', 'neg'])
"""

from __future__ import annotations

import csv
import gzip
import json
import math
import os
import zlib
from collections.abc import Iterator

FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def file_format(path: str | os.PathLike) -> str:
    """'csv', 'tsv' or 'jsonl' from the file name (a trailing .gz is allowed)."""
    name = os.fspath(path).lower()
    if name.endswith(".gz"):
        name = name[:-3]
    ext = os.path.splitext(name)[1]
    if ext not in FORMATS:
        raise ValueError(f"cannot tell the format of {os.fspath(path)!r} from its name: use "
                         "a .csv, .tsv or .jsonl file (optionally gzipped, e.g. data.csv.gz)")
    return FORMATS[ext]


def read_table(path: str | os.PathLike, text_column: str = "text",
               label_column: str | None = None) -> tuple[list[str], list | None]:
    """(texts, labels) from ``path``; labels is None when ``label_column`` is None.

    CSV/TSV labels are the strings in the file; JSON-lines labels keep their JSON type.
    """
    path = os.fspath(path)
    fmt = file_format(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no data file at {path!r}")
    if os.path.isdir(path):
        raise ValueError(f"{path!r} is a directory, not a data file")
    wanted = [text_column] + ([label_column] if label_column is not None else [])
    texts: list[str] = []
    labels: list | None = [] if label_column is not None else None
    rows = _json_rows(path, wanted) if fmt == "jsonl" else _delimited_rows(path, fmt, wanted)
    try:
        for where, row in rows:
            text = row.get(text_column)
            if text is None:
                raise ValueError(f"{path}: {where}: no value in column {text_column!r}")
            if not isinstance(text, str):
                raise ValueError(f"{path}: {where}: {text_column!r} is {text!r} "
                                 f"({type(text).__name__}), not a string")
            texts.append(text)
            if labels is not None:
                label = row.get(label_column)
                if _missing(label):
                    raise ValueError(f"{path}: {where}: empty label in column {label_column!r}; "
                                     "fill in or drop the rows without a label")
                labels.append(label)
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not UTF-8 text ({e.reason}); "
                         "convert it to UTF-8 first") from None
    except (gzip.BadGzipFile, zlib.error, EOFError) as e:
        raise ValueError(f"{path} is not a readable gzip file ({e}); "
                         "drop the .gz from its name if it is not compressed") from None
    if not texts:
        raise ValueError(f"{path} has no data rows")
    return texts, labels


def _open(path: str):
    opener = gzip.open if path.lower().endswith(".gz") else open
    return opener(path, "rt", encoding="utf-8-sig", newline="")


def _missing(value) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    return isinstance(value, float) and not math.isfinite(value)


def _json_rows(path: str, wanted: list[str]) -> Iterator[tuple[str, dict]]:
    with _open(path) as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}: line {n} is not valid JSON ({e.msg} at column "
                                 f"{e.colno}); each line must be one JSON object") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}: line {n} is a JSON {type(row).__name__}, not an "
                                 "object like {\"text\": ..., \"label\": ...}")
            for key in wanted:
                if key not in row:
                    raise ValueError(f"{path}: line {n} has no key {key!r}; its keys are "
                                     f"{', '.join(repr(k) for k in row) or 'none'}")
            yield f"line {n}", row


def _delimited_rows(path: str, fmt: str, wanted: list[str]) -> Iterator[tuple[str, dict]]:
    delimiter = "\t" if fmt == "tsv" else ","
    with _open(path) as f:
        reader = csv.reader(f, delimiter=delimiter, strict=True)
        try:
            header = next(reader, None)
            if header is None:
                raise ValueError(f"{path} is empty: expected a header line naming the columns")
            header = [h.strip() for h in header]
            dupes = sorted({h for h in header if header.count(h) > 1})
            if dupes:
                raise ValueError(f"{path}: column {dupes[0]!r} appears more than once in the "
                                 "header")
            _check_columns(path, header, wanted, fmt)
            for row in reader:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue  # blank line
                if len(row) != len(header):
                    raise ValueError(
                        f"{path}: line {reader.line_num} has {len(row)} fields but the header "
                        f"has {len(header)}; quote fields that contain "
                        f"{'tabs' if fmt == 'tsv' else 'commas'} or line breaks")
                yield f"line {reader.line_num}", dict(zip(header, row, strict=True))
        except csv.Error as e:
            raise ValueError(f"{path}: line {reader.line_num} is malformed {fmt.upper()} ({e})"
                             ) from None


def _check_columns(path: str, header: list[str], wanted: list[str], fmt: str) -> None:
    for column in wanted:
        if column not in header:
            hint = ""
            if len(header) == 1 and ("\t" in header[0] or "," in header[0]):
                hint = " (is the file really " + fmt.upper() + "? check its extension)"
            raise ValueError(f"{path} has no column {column!r}; its columns are "
                             f"{', '.join(repr(h) for h in header)}{hint}")
