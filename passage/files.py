"""Writing files safely: a crash mid-write never leaves a half-written file."""

from __future__ import annotations

import os


def atomic_write(path: str | os.PathLike, write) -> None:
    """Call ``write(tmp_path)``, fsync, then rename over ``path``: never a half-written file."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.tmp-{os.getpid()}")
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
