"""The command line's data files: texts (and labels) from CSV, TSV or JSON lines, gzipped or not.

The format comes from the file name: ``.csv``, ``.tsv``/``.tab``, ``.jsonl``/``.ndjson``, each
optionally followed by ``.gz``. Every problem (missing file or column, a row with the wrong
number of fields, bad JSON, a missing label) is a ``ValueError``/``FileNotFoundError`` that names
the file and line, so the command line can print it as one line.

A label cell that is empty or says ``NA``, ``NaN``, ``N/A``, ``NULL`` or ``None`` (any case,
spaces around ignored; JSON ``null`` and NaN too) is missing: it never becomes a class. Rows
without a label are refused, naming their lines, unless ``drop_missing=True`` skips them
(``Table.dropped`` lists their line numbers). Fields may be of any length: the CSV reader's field
size limit (131,072 characters by default) is lifted while a file is read.

>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "reviews.csv")
>>> _ = open(path, "w").write('text,label\\n"great, really",pos\\nawful,neg\\n')
>>> read_table(path, "text", "label")
(['great, really', 'awful'], ['pos', 'neg'])
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import json
import math
import os
import zlib
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO

from passage.files import open_text

FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
MISSING = frozenset({"", "na", "nan", "n/a", "null", "none"})  # label cells that mean "no label"
ALL = "all"  # keep=ALL: every column but the text
FIELD_LIMIT = 2**31 - 1  # the largest limit a C long holds everywhere: no field is too long
SHOWN_LINES = 5  # line numbers named in an error about many rows


@dataclass
class Table:
    """What ``read_data`` read: texts, labels (or None), the kept columns, the dropped rows."""

    texts: list[str]
    labels: list | None = None
    columns: dict[str, list] = field(default_factory=dict)  # name -> one value per text
    dropped: list[int] = field(default_factory=list)  # lines skipped for a missing label


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
               label_column: str | None = None, *,
               drop_missing: bool = False) -> tuple[list[str], list | None]:
    """(texts, labels) from ``path``; labels is None when ``label_column`` is None.

    CSV/TSV labels are the strings in the file; JSON-lines labels keep their JSON type.
    drop_missing: skip the rows without a label instead of refusing the file.
    """
    table = read_data(path, text_column, label_column, drop_missing=drop_missing)
    return table.texts, table.labels


def read_data(path: str | os.PathLike, text_column: str = "text",
              label_column: str | None = None, *, keep: Sequence[str] | str = (),
              drop_missing: bool = False) -> Table:
    """The texts, labels and other columns of ``path``.

    keep: names of other columns to return in ``Table.columns`` (each must exist), or ``ALL``
    for every column but the text (JSON lines: every key seen, None where a line lacks it).
    drop_missing: skip rows whose label is missing (their lines are in ``Table.dropped``);
    otherwise such rows are refused with their line numbers.
    """
    path = os.fspath(path)
    fmt = file_format(path)
    if os.path.isdir(path):
        raise ValueError(f"{path!r} is a directory, not a data file")
    keep_all = isinstance(keep, str) and keep == ALL
    named = [] if keep_all else [keep] if isinstance(keep, str) else list(keep)
    wanted = list(dict.fromkeys([text_column] + ([label_column] if label_column is not None
                                                 else []) + named))
    table = Table([], [] if label_column is not None else None,
                  {name: [] for name in named if name != text_column})
    missing: list[tuple[int, object]] = []
    rows = _json_rows(path, wanted) if fmt == "jsonl" else _delimited_rows(path, fmt, wanted)
    try:
        with contextlib.closing(rows):
            for n, row in rows:
                text = _text(path, n, row, text_column)
                if label_column is not None:
                    label = row.get(label_column)
                    if _missing(label):
                        missing.append((n, label))
                        continue
                    assert table.labels is not None  # a list when there is a label column
                    table.labels.append(label)
                table.texts.append(text)
                _keep(table, row, text_column, keep_all)
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not UTF-8 text ({e.reason}); "
                         "convert it to UTF-8 first") from None
    except (gzip.BadGzipFile, zlib.error, EOFError) as e:
        raise ValueError(f"{path} is not a readable gzip file ({e}); "
                         "drop the .gz from its name if it is not compressed") from None
    if missing and not drop_missing:
        assert label_column is not None  # rows miss a label only when there is a label column
        raise ValueError(_missing_message(path, label_column, missing))
    table.dropped = [n for n, _ in missing]
    if not table.texts:
        raise ValueError(f"{path} has no data rows" if not missing else
                         f"{path}: none of its {len(missing):,} rows has a label in column "
                         f"{label_column!r}")
    return table


def _text(path: str, n: int, row: dict, text_column: str) -> str:
    text = row.get(text_column)
    if text is None:
        raise ValueError(f"{path}: line {n}: no value in column {text_column!r}")
    if not isinstance(text, str):
        raise ValueError(f"{path}: line {n}: {text_column!r} is {text!r} "
                         f"({type(text).__name__}), not a string")
    return text


def _keep(table: Table, row: dict, text_column: str, keep_all: bool) -> None:
    """Append the row's kept values (keep_all: a column first seen now gets None before)."""
    if keep_all:
        for name in row:
            if name != text_column and name not in table.columns:
                table.columns[name] = [None] * (len(table.texts) - 1)
    for name, values in table.columns.items():
        values.append(row.get(name))


def _missing_message(path: str, label_column: str, missing: list[tuple[int, object]]) -> str:
    (first, value), rest = missing[0], missing[1:]
    what = "empty label" if value is None or (isinstance(value, str) and not value.strip()) \
        else f"missing label {value!r}"
    more = ""
    if rest:
        lines = ", ".join(str(n) for n, _ in rest[:SHOWN_LINES])
        etc = ", ..." if len(rest) > SHOWN_LINES else ""
        more = f" (and {len(rest):,} more without a label: line(s) {lines}{etc})"
    return (f"{path}: line {first}: {what} in column {label_column!r}{more}; fill in the labels, "
            "or skip those rows (--drop-missing, drop_missing=True)")


def _open(path: str) -> IO[str]:
    """The data file as text: UTF-8 (a byte-order mark dropped), line ends left to csv."""
    return open_text(path, encoding="utf-8-sig", newline="", what="data file")


def _missing(value) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return value.strip().lower() in MISSING
    return isinstance(value, float) and not math.isfinite(value)


def _json_rows(path: str, wanted: list[str]) -> Generator[tuple[int, dict], None, None]:
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
            yield n, row


def _delimited_rows(path: str, fmt: str,
                    wanted: list[str]) -> Generator[tuple[int, dict], None, None]:
    """(line, row) of a CSV/TSV file. The csv module's field size limit is a process-wide
    setting: it is raised while this file is read and put back when the reading ends."""
    delimiter = "\t" if fmt == "tsv" else ","
    limit = csv.field_size_limit(FIELD_LIMIT)
    try:
        yield from _parse_delimited(path, fmt, delimiter, wanted)
    finally:
        csv.field_size_limit(limit)


def _parse_delimited(path: str, fmt: str, delimiter: str,
                     wanted: list[str]) -> Iterator[tuple[int, dict]]:
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
                yield reader.line_num, dict(zip(header, row, strict=True))
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
