"""atomic_write: unpredictable O_EXCL temporaries, permission bits kept, the folder fsync'd,
leftovers of killed writers cleaned (issue 16); open_text: plain or gzip UTF-8 text;
write_member: deflated once, stored when it would shrink too far."""

import gzip
import os
import re
import stat
import subprocess
import sys
import time
import zipfile
import zlib

import numpy as np
import pytest

from passage import files
from passage.files import atomic_write, open_text, remove_stale_temporaries


def text_writer(text, seen=None):
    def write(tmp):
        if seen is not None:
            seen.append(os.path.basename(tmp))
        with open(tmp, "w") as f:
            f.write(text)
    return write


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_symlink_at_the_old_predictable_name_does_not_redirect_the_write(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    os.symlink(victim, tmp_path / f".m.passage.tmp-{os.getpid()}")
    seen = []
    atomic_write(tmp_path / "m.passage", text_writer("model", seen))
    atomic_write(tmp_path / "m.passage", text_writer("model 2", seen))
    assert victim.read_text() == "precious"
    assert (tmp_path / "m.passage").read_text() == "model 2"
    pattern = re.compile(rf"\.m\.passage\.[A-Za-z0-9_]+\.{os.getpid()}\.tmp")
    assert all(pattern.fullmatch(name) for name in seen) and seen[0] != seen[1]
    assert sorted(os.listdir(tmp_path)) == [f".m.passage.tmp-{os.getpid()}", "m.passage",
                                            "victim.txt"]  # a live writer's name: left alone


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o755])
def test_replacing_a_file_keeps_its_permission_bits(tmp_path, mode):
    path = tmp_path / "out.csv"
    path.write_text("old")
    os.chmod(path, mode)
    atomic_write(path, text_writer("new"))
    assert path.read_text() == "new"
    assert stat.S_IMODE(os.stat(path).st_mode) == mode


def test_a_new_file_gets_the_umask_mode_not_0600(tmp_path):
    old = os.umask(0o027)
    try:
        atomic_write(tmp_path / "new.txt", text_writer("x"))
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "new.txt").st_mode) == 0o640


def test_the_folder_is_fsynced_after_the_rename(tmp_path, monkeypatch):
    events, real_fsync, real_replace = [], os.fsync, os.replace

    def fsync(fd):
        events.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    def replace(a, b):
        events.append("rename")
        real_replace(a, b)

    monkeypatch.setattr(files.os, "fsync", fsync)
    monkeypatch.setattr(files.os, "replace", replace)
    atomic_write(tmp_path / "a.txt", text_writer("x"))
    assert events == ["file", "rename", "dir"]


def test_a_failed_write_leaves_no_temporary_and_the_old_file(tmp_path):
    path = tmp_path / "m.passage"
    path.write_text("old")

    def boom(tmp):
        open(tmp, "w").write("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, boom)
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["m.passage"]


def test_stale_temporaries_of_killed_writers_are_removed(tmp_path):
    dead, old = dead_pid(), time.time() - 2 * files.STALE_SECONDS
    names = {
        f".m.passage.k3j_x9.{dead}.tmp": (old, False),  # dead writer, old: removed
        f".m.passage.tmp-{dead}": (old, False),  # the earlier versions' name: removed
        f".m.passage.a8Fq2z.{dead}.tmp": (time.time(), True),  # too recent: kept
        f".m.passage.zz9.{os.getppid()}.tmp": (old, True),  # its writer still runs: kept
        f".other.passage.k3j_x9.{dead}.tmp": (old, True),  # another target's: kept
        "notes.txt": (old, True),
    }
    for name, (mtime, _) in names.items():
        (tmp_path / name).write_bytes(b"x" * 1000)
        os.utime(tmp_path / name, (mtime, mtime))
    atomic_write(tmp_path / "m.passage", text_writer("model"))
    kept = set(os.listdir(tmp_path))
    assert kept == {n for n, (_, keep) in names.items() if keep} | {"m.passage"}
    assert remove_stale_temporaries(str(tmp_path), "m.passage") == []


# -- open_text -----------------------------------------------------------------------------
def test_open_text_reads_plain_utf8(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_bytes("café\nnaïve\n".encode())
    with open_text(path) as f:
        assert f.read() == "café\nnaïve\n"


@pytest.mark.parametrize("name", ["notes.txt.gz", "NOTES.TXT.GZ"])
def test_open_text_reads_and_writes_gzip(tmp_path, name):
    path = tmp_path / name
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("café\n")
    with open_text(str(path)) as f:
        assert f.read() == "café\n"
    with open_text(path, "w") as f:  # 'w' is text too
        f.write("über\n")
    assert gzip.decompress(path.read_bytes()).decode() == "über\n"


def test_open_text_passes_encoding_errors_and_newline(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes(b"\xef\xbb\xbfa,b\r\n\xff\r\n")
    with open_text(path, encoding="utf-8-sig", errors="replace", newline="") as f:
        assert f.read() == "a,b\r\n\ufffd\r\n"


def test_open_text_names_a_missing_file(tmp_path):
    missing = tmp_path / "nope.jsonl.gz"
    with pytest.raises(FileNotFoundError, match=r"^no data file at '.*nope\.jsonl\.gz'$"):
        open_text(missing, what="data file")
    with pytest.raises(FileNotFoundError, match="no file at"):
        open_text(tmp_path / "nope.txt")
    with pytest.raises(FileNotFoundError):  # writing into a missing folder: the usual error
        open_text(tmp_path / "no" / "such.txt", "wt")
    with pytest.raises(ValueError, match="text, not bytes"):
        open_text(tmp_path / "x.txt", "rb")


# -- write_member ------------------------------------------------------------------------------
def sparse(n, every, seed=0):
    """n bytes, zero but for a random one every ``every``: deflates about every / 2.5 times."""
    a = np.zeros(n, np.uint8)
    a[::every] = np.random.default_rng(seed).integers(1, 256, len(a[::every]))
    return a.tobytes()


def noise(n, seed=0):
    return np.random.default_rng(seed).bytes(n)


MEMBERS = {  # name -> data, around the storing threshold (deflated 50 times smaller)
    "small_zeros": bytes(files.FREE_BYTES), "noise": noise(4 << 20), "zeros": bytes(4 << 20),
    "noise_then_zeros": noise(1 << 16) + bytes(8 << 20),
    "zeros_then_noise": bytes(7 << 20) + noise(1 << 20),  # known to deflate at the end only
    "zeros_then_less_noise": bytes(8 << 20) + noise(1 << 16),
    **{f"sparse_{k}": sparse(4 << 20, k) for k in (20, 125, 200, 1000)}}


def stored_by_the_old_rule(data):
    """What write_member decided when it deflated the whole member to decide."""
    if len(data) <= files.FREE_BYTES:
        return False
    packer = zlib.compressobj(6, zlib.DEFLATED, -15)
    size = len(packer.compress(data)) + len(packer.flush())
    return len(data) > files.MAX_RATIO // 2 * max(1, size)


@pytest.mark.parametrize("name", sorted(MEMBERS))
def test_write_member_stores_what_deflating_the_whole_member_would_shrink_too_far(tmp_path,
                                                                                    name):
    data = MEMBERS[name]
    path = tmp_path / "a.zip"
    with zipfile.ZipFile(path, "w") as z:
        files.write_member(z, "m.npy", data)
    with files.Archive(path, "test file") as archive:
        info = archive.info("m.npy")
        assert archive.read_bytes_of("m.npy") == data
    stored = stored_by_the_old_rule(data)
    assert info.compress_type == (zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED)
    assert stored == (name in ("zeros", "noise_then_zeros", "zeros_then_less_noise",
                               "sparse_200", "sparse_1000"))


@pytest.mark.parametrize("name, most", [("noise", 1.05), ("zeros", 1.0), ("sparse_20", 1.5)])
def test_write_member_deflates_a_member_about_once(monkeypatch, tmp_path, name, most):
    """The bytes given to zlib (write_member's decision and zipfile's deflating together):
    once for weights-like noise and once for zeros (then stored), not twice as before."""
    fed, compressobj = [], zlib.compressobj

    class Counting:
        def __init__(self, *args):
            self.packer = compressobj(*args)

        def compress(self, data):
            fed.append(len(data))
            return self.packer.compress(data)

        def flush(self, *args):
            return self.packer.flush(*args)

    monkeypatch.setattr(zlib, "compressobj", Counting)  # zipfile's compressor too
    data = MEMBERS[name]
    with zipfile.ZipFile(tmp_path / "a.zip", "w") as z:
        files.write_member(z, "m.npy", data)
    assert len(data) <= sum(fed) <= most * len(data)
