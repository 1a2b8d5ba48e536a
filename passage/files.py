"""Files, safely: atomic writes that never leave a half-written file, and bounded zip reading.

``open_text`` opens a text file as UTF-8, through gzip when its name ends in ``.gz``.
``atomic_write`` writes through a temporary in the target's folder and renames it over the
target. ``Archive`` reads the zips of JSON and ``.npy`` members that model files and
checkpoints are, with every size checked before anything is allocated: a member may expand
to at most ``MAX_RATIO`` times its compressed size (beyond ``FREE_BYTES``), to at most
``MAX_MEMBER_BYTES`` (``MAX_JSON_BYTES`` for JSON), and what is read from the whole archive
to at most ``MAX_RATIO`` times the archive's size on disk; the data is read with a bounded
reader, never trusting the zip header's size alone. JSON may nest ``MAX_DEPTH`` levels.

>>> import os, tempfile, zipfile
>>> path = os.path.join(tempfile.mkdtemp(), "a.zip")
>>> def write(tmp):
...     with zipfile.ZipFile(tmp, "w") as z:
...         z.writestr("a.json", '{"x": [1]}')
>>> atomic_write(path, write)
>>> Archive(path, "test file").read_json("a.json")
{'x': [1]}
"""

from __future__ import annotations

import gzip
import io
import json
import math
import os
import re
import stat
import struct
import tempfile
import time
import zipfile
import zlib
from collections.abc import Callable
from typing import IO, Any, cast

import numpy as np

MAX_RATIO = 100  # zip-bomb defence: expansion allowed beyond FREE_BYTES
FREE_BYTES = 1 << 20  # members (and archives) this small may expand any amount
MAX_MEMBER_BYTES = 4 << 30  # one array
MAX_TOTAL_BYTES = 16 << 30  # everything read from one archive
MAX_JSON_BYTES = 256 << 20  # a config (a vocabulary of millions of words fits)
MAX_DEPTH = 64  # JSON nesting
_DATE = (1980, 1, 1, 0, 0, 0)  # members carry no time: the same model gives the same bytes
STALE_SECONDS = 600  # a dead writer's temporary this old is removed by the next write
_CHUNK = 1 << 20
_PROBE = 1 << 16  # write_member deflates this much at a time while it decides


class RefusedFile(ValueError):
    """A file that is readable but refused: too large, inconsistent or holding bad values."""


def open_text(path: str | os.PathLike, mode: str = "rt", *, encoding: str = "utf-8",
              errors: str | None = None, newline: str | None = None,
              what: str = "file") -> IO[str]:
    """``path`` opened as text (``mode`` 'rt', 'wt', 'at' or 'xt'; 'r', 'w'... mean the same),
    through gzip when its name ends in ``.gz`` (any case).

    encoding, errors, newline: as for ``open``. A file to read that does not exist is a
    ``FileNotFoundError`` saying "no {what} at {path!r}".

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "notes.txt.gz")
    >>> with open_text(path, "wt") as f:
    ...     _ = f.write("héllo\\n")
    >>> with open_text(path) as f:
    ...     f.read()
    'héllo\\n'
    """
    if "b" in mode:
        raise ValueError(f"open_text opens text, not bytes: mode {mode!r}")
    mode = mode if "t" in mode else mode + "t"
    name = os.fspath(path)
    opener = gzip.open if name.lower().endswith(".gz") else open
    try:
        return cast(IO[str], opener(name, mode, encoding=encoding, errors=errors,
                                    newline=newline))
    except FileNotFoundError:
        if "r" not in mode:
            raise  # writing: the folder is missing, and the default message says so
        raise FileNotFoundError(f"no {what} at {name!r}") from None


def write_member(z: zipfile.ZipFile, name: str, data: bytes) -> None:
    """Add ``data`` to an open zip as ``name``, deflated, or stored as is when deflating would
    shrink it past what ``Archive`` accepts (a large run of zeros, e.g. weights no example
    reached), so that every file Passage writes, it reads back."""
    method = zipfile.ZIP_STORED if _deflates_too_far(data) else zipfile.ZIP_DEFLATED
    z.writestr(zipfile.ZipInfo(name, date_time=_DATE), data, method)


def _deflates_too_far(data: bytes) -> bool:
    """Whether deflating ``data`` (more than ``FREE_BYTES``) shrinks it more than
    ``MAX_RATIO // 2`` times, half the expansion ``Archive`` accepts.

    ``data`` is deflated ``_PROBE`` bytes at a time and the output only counted, never kept.
    The output so far is never more than the whole output, so the answer is no as soon as it
    reaches a ``MAX_RATIO // 2``-th of ``data``: for weights, within the first few percent of
    the bytes, and zipfile then deflates the member once. Only data that does shrink that far
    is deflated to the end, and it is then stored, not deflated again.
    """
    n, ratio = len(data), MAX_RATIO // 2
    if n <= FREE_BYTES:
        return False
    packer, view, size = zlib.compressobj(6, zlib.DEFLATED, -15), memoryview(data), 0
    for start in range(0, n, _PROBE):
        size += len(packer.compress(view[start:start + _PROBE]))
        if n <= ratio * size:
            return False
    size += len(packer.flush())
    return n > ratio * max(1, size)


# -- writing -----------------------------------------------------------------------------------
def write_archive(path: str | os.PathLike, doc_name: str, doc_text: str,
                  arrays: dict[str, np.ndarray], compress: bool = True) -> None:
    """Write the zip that model files and checkpoints are, atomically: one JSON document
    ``doc_name`` (its text) and each array as the ``.npy`` member named by its key (never
    pickled); deflated (unless ``write_member`` stores a member as is) or, with
    ``compress=False``, stored (checkpoints, written every epoch). ``Archive`` reads it."""
    def add(z: zipfile.ZipFile, name: str, data: bytes) -> None:
        if compress:
            write_member(z, name, data)
        else:
            z.writestr(zipfile.ZipInfo(name, date_time=_DATE), data, zipfile.ZIP_STORED)

    def write(tmp):
        with zipfile.ZipFile(tmp, "w") as z:
            add(z, doc_name, doc_text.encode("utf-8"))
            for name, arr in arrays.items():
                buf = io.BytesIO()
                np.save(buf, np.asarray(arr), allow_pickle=False)
                add(z, name, buf.getvalue())

    atomic_write(path, write)


def atomic_write(path: str | os.PathLike, write: Callable[[str], object]) -> None:
    """Call ``write(tmp_path)``, fsync, rename over ``path``, fsync the folder.

    The temporary is made by ``tempfile.mkstemp`` (``O_CREAT | O_EXCL | O_NOFOLLOW``, a random
    name) in the target's folder, named ``.NAME.<random>.<pid>.tmp`` so it is recognisable: a
    symlink planted at a predictable name cannot redirect the write. It gets the permission
    bits of the file it replaces, or for a new file the usual ``0o666 & ~umask`` (not
    mkstemp's 0600). A crash or exception removes it; only a killed process leaves it behind,
    and such leftovers do not pile up: every write first removes the temporaries of the same
    target whose writer process no longer runs on this machine and that are untouched for
    ``STALE_SECONDS`` (the age spares writers on other machines sharing the folder). The
    ``.NAME.tmp-PID`` temporaries of earlier versions are cleaned the same way.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    name = os.path.basename(path)
    remove_stale_temporaries(directory, name)
    mode = _mode_for(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=f".{os.getpid()}.tmp", dir=directory)
    try:
        if hasattr(os, "fchmod"):  # by descriptor: never through a swapped-in symlink
            os.fchmod(fd, mode)
        else:
            os.chmod(tmp, mode)
        os.close(fd)
        fd = -1
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_directory(directory)
    finally:
        if fd >= 0:
            os.close(fd)
        if os.path.lexists(tmp):
            os.remove(tmp)


def _mode_for(path: str) -> int:
    """The permission bits the written file gets: those of the file it replaces, if any."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return 0o666 & ~_umask()


def _umask() -> int:
    try:  # Linux: read it without changing it (os.umask would race with other threads)
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_directory(directory: str) -> None:
    """Make the rename itself durable (a no-op where folders cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _temp_pattern(name: str) -> re.Pattern:
    """Temporaries of ``name``: ``.NAME.<random>.<pid>.tmp`` and the older ``.NAME.tmp-<pid>``."""
    n = re.escape(name)
    return re.compile(rf"\.{n}\.(?:[A-Za-z0-9_]+\.(?P<pid>\d+)\.tmp|tmp-(?P<old>\d+))")


def remove_stale_temporaries(directory: str, name: str) -> list[str]:
    """Remove the leftover temporaries of ``name`` in ``directory`` (see ``atomic_write``);
    returns the paths removed."""
    pattern, removed = _temp_pattern(name), cast(list[str], [])
    try:
        entries = os.listdir(directory)
    except OSError:
        return removed
    for entry in entries:
        m = pattern.fullmatch(entry)
        if m is None:
            continue
        pid, full = int(m.group("pid") or m.group("old")), os.path.join(directory, entry)
        try:
            st = os.lstat(full)
            if _alive(pid) or time.time() - st.st_mtime < STALE_SECONDS or \
                    not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
                continue
            os.remove(full)  # a symlink is removed itself, never its target
            removed.append(full)
        except OSError:
            continue
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # someone else's process (or a pid we cannot ask about): leave it
    return True


# -- reading -----------------------------------------------------------------------------------
class Archive:
    """A zip opened for bounded reading; ``what`` names the file in errors.

    Errors about sizes, nesting and values are ``RefusedFile`` (a ValueError); a damaged zip
    raises what ``zipfile`` / ``zlib`` raise, for the caller to word (see ``CORRUPT``).
    """

    def __init__(self, path: str | os.PathLike, what: str):
        self.path, self.what = os.fspath(path), what
        self.disk_bytes = os.path.getsize(self.path)
        self.expanded = 0
        self.zip = zipfile.ZipFile(self.path)

    def close(self) -> None:
        self.zip.close()

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def refuse(self, problem: str) -> RefusedFile:
        return RefusedFile(f"{self.path!r} is refused as a {self.what}: {problem}")

    def names(self) -> list[str]:
        return self.zip.namelist()

    def info(self, name: str, limit: int = MAX_MEMBER_BYTES) -> zipfile.ZipInfo:
        """The member's entry, after checking what it declares against the limits."""
        info = self.zip.getinfo(name)
        if info.flag_bits & 0x1:
            raise self.refuse(f"member {name!r} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise self.refuse(f"member {name!r} uses compression method {info.compress_type}; "
                              "Passage writes only stored or deflated members")
        size = info.file_size
        if size > limit:
            raise self.refuse(f"member {name!r} expands to {size:,} bytes, more than the "
                              f"limit of {limit:,}")
        if size > FREE_BYTES and size > MAX_RATIO * max(1, info.compress_size):
            raise self.refuse(f"member {name!r} expands {size / max(1, info.compress_size):,.0f}"
                              f" times ({info.compress_size:,} to {size:,} bytes), more than "
                              f"the {MAX_RATIO}x allowed (passage.files.MAX_RATIO): a zip bomb "
                              "or a damaged file")
        return info

    def _account(self, n: int) -> None:
        self.expanded += n
        if self.expanded > MAX_TOTAL_BYTES or (
                self.expanded > FREE_BYTES and self.expanded > MAX_RATIO * self.disk_bytes):
            raise self.refuse(f"its members expand to more than {self.expanded:,} bytes from "
                              f"{self.disk_bytes:,} on disk (limits: {MAX_RATIO}x, "
                              f"{MAX_TOTAL_BYTES:,} bytes)")

    def read_bytes_of(self, name: str, limit: int = MAX_MEMBER_BYTES) -> bytes:
        """The member's bytes, read in chunks and never past what its entry declares."""
        info = self.info(name, limit)
        self._account(info.file_size)
        with self.zip.open(info) as f:
            return _read_exact(f, info.file_size, name, self)

    def read_json(self, name: str) -> Any:
        """A JSON member, size-bounded and at most ``MAX_DEPTH`` levels deep."""
        text = self.read_bytes_of(name, MAX_JSON_BYTES).decode("utf-8")
        try:
            doc = json.loads(text)
        except RecursionError:
            raise self.refuse(f"{name!r} nests deeper than Python can parse; Passage files "
                              f"nest at most {MAX_DEPTH} levels") from None
        depth = json_depth(doc)
        if depth > MAX_DEPTH:
            raise self.refuse(f"{name!r} nests more than the {MAX_DEPTH} levels allowed")
        return doc

    def npy_header(self, name: str) -> tuple[tuple[int, ...], np.dtype, bool, int]:
        """(shape, dtype, fortran_order, data offset) of an ``.npy`` member, from its header
        alone, checked against the member's declared size; plain numbers only."""
        info = self.info(name)
        with self.zip.open(info) as f:
            version = np.lib.format.read_magic(f)
            if version not in ((1, 0), (2, 0)):
                raise self.refuse(f"{name!r} is .npy format {version}, not 1.0 or 2.0")
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0) else
                           np.lib.format.read_array_header_2_0)
            try:
                shape, fortran, dtype = read_header(f)
            except (SyntaxError, RecursionError, MemoryError, TypeError) as e:
                raise ValueError(f"bad .npy header: {e}") from None
            offset = f.tell()
        if dtype.hasobject or dtype.kind not in "fiub" or dtype.fields is not None:
            raise self.refuse(f"{name!r} holds {dtype} data; only plain numbers are read "
                              "(never pickled objects)")
        if any(not isinstance(d, int) or d < 0 for d in shape):
            raise self.refuse(f"{name!r} declares an invalid shape {shape}")
        nbytes = math.prod(shape) * dtype.itemsize
        if offset + nbytes != info.file_size:
            raise self.refuse(f"{name!r} declares a {shape} {dtype} array ({nbytes:,} bytes) "
                              f"but holds {info.file_size - offset:,} bytes of data")
        return shape, dtype, bool(fortran), offset

    def read_npy(self, name: str,
                 header: tuple[tuple[int, ...], np.dtype, bool, int] | None = None) -> np.ndarray:
        """An ``.npy`` member's array (``header`` from ``npy_header``, read again if None)."""
        shape, dtype, fortran, offset = header or self.npy_header(name)
        info = self.info(name)
        self._account(info.file_size)
        out = np.empty(math.prod(shape), dtype=dtype)
        with cast(zipfile.ZipExtFile, self.zip.open(info)) as f:
            _read_exact(f, offset, name, self, whole=False)
            view, pos = out.data.cast("B"), 0
            while pos < len(view):
                got = f.readinto(view[pos:pos + _CHUNK])
                if not got:
                    raise self.refuse(f"{name!r} ends after {pos:,} of {len(view):,} bytes")
                pos += got
            if f.read(1):
                raise self.refuse(f"{name!r} holds more data than its header declares")
        if fortran:
            return np.ascontiguousarray(out.reshape(shape[::-1]).T)
        return out.reshape(shape)


def _read_exact(f, n: int, name: str, archive: Archive, whole: bool = True) -> bytes:
    """Exactly ``n`` bytes from ``f`` in chunks; refuses a member that is shorter or (when it
    is read ``whole``) longer."""
    parts, left = [], n
    while left > 0:
        chunk = f.read(min(left, _CHUNK))
        if not chunk:
            raise archive.refuse(f"{name!r} ends after {n - left:,} of {n:,} bytes")
        parts.append(chunk)
        left -= len(chunk)
    if whole and f.read(1):
        raise archive.refuse(f"{name!r} holds more data than its entry declares")
    return b"".join(parts)


def json_depth(doc: object) -> int:
    """How deeply lists and dicts nest in ``doc`` (0 for a plain value), without recursion."""
    depth, level = 0, [(doc, 1)]
    while level:
        obj, d = level.pop()
        if isinstance(obj, dict | list):
            depth = max(depth, d)
            if d > MAX_DEPTH:
                return d
            level.extend((v, d + 1) for v in (obj.values() if isinstance(obj, dict) else obj))
    return depth


def finite_or_refuse(archive: Archive, name: str, arr: np.ndarray) -> None:
    """Refuse a float array holding NaN or infinity (e.g. weights saved after divergence)."""
    if arr.dtype.kind == "f":
        bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
        if bad:
            raise archive.refuse(f"{name} holds {bad:,} NaN or infinite values (the weights "
                                 "diverged before they were saved); use an earlier file or "
                                 "retrain with a lower learning rate")


CORRUPT = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, struct.error, KeyError,
           ValueError, EOFError, OSError, NotImplementedError, RuntimeError, UnicodeDecodeError,
           OverflowError)
"""What reading a damaged zip can raise (``RefusedFile``, a ValueError, among them)."""
