"""Hostile model files: every size is checked before it is allocated, every refusal is a
ValueError that names the problem, and loading one costs little memory (issue 16, item 3)."""

import io
import json
import os
import struct
import subprocess
import sys
import zipfile
import zlib

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from passage.io import load, save
from passage.layers import Dense, Embedding, GatedRecurrent
from passage.models import RNN

GIB = 1 << 30
EMB = "weights/layers.0.weight.npy"


def small_model(size=8, n_features=20):
    m = RNN([Embedding(size, n_features), GatedRecurrent(4), Dense(1, "sigmoid")], "bce",
            verbose=0, seed=0)
    m.fitted_ = True
    return m


def members(path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {n: z.read(n) for n in z.namelist()}


def write_members(path, files: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)


def npy_bytes(arr, allow_pickle=False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=allow_pickle)
    return buf.getvalue()


def npy_header(shape, dtype="<f4") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buf.getvalue()  # magic, version and header: what np.save writes before the data


def raw_zip(path, entries: dict[str, list[tuple[bytes, int]]], declared: dict | None = None):
    """A zip whose members are pieces repeated ``count`` times, deflated once per piece with a
    full flush after it (so a repeated piece compresses to the same bytes): a gigabyte member
    costs a megabyte of compression, and the test stays small and fast. ``declared`` forges a
    member's uncompressed size in its headers (a lying zip)."""
    central, declared = [], declared or {}
    with open(path, "wb") as f:
        for name, pieces in entries.items():
            comp, crc, size, blocks = zlib.compressobj(6, zlib.DEFLATED, -15), 0, 0, []
            for piece, count in pieces:
                blocks.append((comp.compress(piece) + comp.flush(zlib.Z_FULL_FLUSH), count))
                for _ in range(count):
                    crc = zlib.crc32(piece, crc)
                size += len(piece) * count
            blocks.append((comp.flush(), 1))
            csize = sum(len(b) * n for b, n in blocks)
            size = declared.get(name, size)
            raw, offset = name.encode(), f.tell()
            f.write(struct.pack("<4s5H3I2H", b"PK\x03\x04", 20, 0, 8, 0, 0, crc, csize, size,
                                len(raw), 0) + raw)
            for block, count in blocks:
                for _ in range(count):
                    f.write(block)
            central.append(struct.pack("<4s6H3I5H2I", b"PK\x01\x02", 20, 20, 0, 8, 0, 0, crc,
                                       csize, size, len(raw), 0, 0, 0, 0, 0, offset) + raw)
        start = f.tell()
        f.write(b"".join(central))
        f.write(struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, len(central), len(central),
                            f.tell() - start, start, 0))


def with_config(files, change) -> dict[str, bytes]:
    meta = json.loads(files["passage.json"])
    change(meta)
    return {**files, "passage.json": json.dumps(meta).encode()}


def set_emb(n_features):
    def change(meta):
        meta["model"]["layers"][0]["config"]["n_features"] = n_features
    return change


def deep_extra(files, depth) -> dict[str, bytes]:
    """``extra`` nested ``depth`` lists deep (written as text: too deep to build in Python)."""
    text = with_config(files, lambda m: m.update(extra={"x": "DEEP"}))["passage.json"]
    return {**files, "passage.json": text.replace(b'"DEEP"', b"[" * depth + b"]" * depth)}


def pieces_of(files):
    return {n: [(d, 1)] for n, d in files.items()}


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    path = tmp_path_factory.mktemp("good") / "m.passage"
    save(small_model(), path)
    return path


def _nan_files(files, value):
    arr = np.load(io.BytesIO(files[EMB]))
    arr[3, 2] = value
    return {**files, EMB: npy_bytes(arr)}


def hostile_files(good, d) -> dict[str, tuple[str, str]]:
    """name -> (path, the message expected): the files of the issue, built small."""
    files, out = members(good), {}

    def put(name, message, data=None, raw=None, declared=None):
        path = str(d / f"{name}.passage")
        if raw is not None:
            raw_zip(path, raw, declared)
        else:
            write_members(path, data)
        out[name] = (path, message)

    put("giant_embedding", r"layers\[0\], Embedding\(size=8, n_features=60000000\), needs at "
        r"least 480,000,000 weights with the layers before it, but the file holds [\d,]+",
        with_config(files, set_emb(60_000_000)))
    spaces = (b" " * (1 << 20), 1024)  # 1 GiB of spaces after valid JSON
    put("json_bomb", r"member 'passage.json' expands",
        raw={**pieces_of(files), "passage.json": [(files["passage.json"], 1), spaces]})
    n = 48_000_000  # (48M, 8) float32 zeros: 1.5 GB deflated to about 1.5 MB
    big = with_config(files, set_emb(n))
    put("npy_bomb", rf"'{EMB}' expands [\d,]+ times",
        raw={**pieces_of({k: v for k, v in big.items() if k != EMB}),
             EMB: [(npy_header((n, 8)), 1), (bytes(1 << 20), n * 32 >> 20)]})
    put("lying_header", "not a readable Passage model file|ends after|more data",
        raw={**pieces_of(files), EMB: [(files[EMB], 1), (bytes(1 << 20), 1024)]},
        declared={EMB: len(files[EMB])})
    put("npy_shape_lies", r"declares a \(60000000, 8\) float32 array",
        {**files, EMB: npy_header((60_000_000, 8)) + bytes(640)})
    put("npy_object", r"holds object data; only plain numbers",
        {**files, EMB: npy_bytes(np.array([{"a": 1}], dtype=object), allow_pickle=True)})
    put("deep_json", "nests deeper than Python can parse", deep_extra(files, 100_000))
    put("nan_weights", r"weight layers\.0\.weight holds 1 NaN or infinite values",
        _nan_files(files, np.nan))
    put("inf_weights", r"weight layers\.0\.weight holds 1 NaN or infinite values",
        _nan_files(files, np.inf))
    return out


@pytest.fixture(scope="module")
def hostile(good, tmp_path_factory):
    return hostile_files(good, tmp_path_factory.mktemp("hostile"))


CASES = ["giant_embedding", "json_bomb", "npy_bomb", "lying_header", "npy_shape_lies",
         "npy_object", "deep_json", "nan_weights", "inf_weights"]


@pytest.mark.parametrize("case", CASES)
def test_hostile_file_is_a_clear_value_error(hostile, case):
    path, message = hostile[case]
    assert os.path.getsize(path) < 3 << 20  # small files, all of them
    with pytest.raises(ValueError, match=message):
        load(path)


MEASURE = """
import json, resource, sys
from passage.io import load
load(sys.argv[1])  # warm: every code path of a good load has run once
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out = {}
for path in sys.argv[2:]:
    try:
        load(path)
        out[path] = "loaded"
    except ValueError as e:
        out[path] = "ValueError"
    except BaseException as e:
        out[path] = type(e).__name__
    out[path] += " %d" % ((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) // 1024)
print(json.dumps(out))
"""


def test_hostile_files_load_in_bounded_memory(hostile, good):
    """In a fresh process, refusing all of them together raises the peak RSS by < 200 MB
    (before the checks: 2 GB for the giant Embedding, 2.3 GB for the JSON bomb)."""
    paths = [hostile[c][0] for c in CASES]
    done = subprocess.run([sys.executable, "-c", MEASURE, str(good), *paths], check=True,
                          capture_output=True, text=True, timeout=300)
    result = json.loads(done.stdout)
    for path in paths:
        kind, growth_mb = result[path].split()
        assert kind == "ValueError", (path, result[path])
        assert int(growth_mb) < 200, (path, result[path])


def test_good_file_loads_the_same_model(good):
    m = load(good)
    x = [[3, 4, 5], [6]]
    assert np.array_equal(m.predict(x), small_model().predict(x))


@pytest.mark.parametrize("change, message", [
    (lambda m: m["model"]["layers"][0]["config"].update(n_features=10 ** 30),
     r"declares n_features=10{30}, beyond any real model"),
    (lambda m: m["model"]["layers"][0]["config"].update(n_features="many"),
     r"layers\[0\] \(Embedding\) has an invalid config: .*positive int"),
    (lambda m: m["model"]["layers"][1]["config"].update(size=-3),
     r"layers\[1\] \(GatedRecurrent\) has an invalid config"),
    (lambda m: m["model"]["layers"][1]["config"].update(bogus=1),
     r"layers\[1\] \(GatedRecurrent\) has an invalid config: .*bogus"),
    (lambda m: m["model"].update(layers=[]), r"config is malformed \(model.layers"),
    (lambda m: m["model"].update(layers=m["model"]["layers"][:1] * 5000),
     r"config is malformed \(model.layers"),
    (lambda m: m["model"].update(layers={"a": 1}), r"config is malformed \(model.layers"),
    (lambda m: m.update(weights=["../../etc/passwd"]), r"config is malformed \(weights"),
    (lambda m: m.update(weights=m["weights"][:-1]), r"weights \['layers.2.w'\] do not match"),
    (lambda m: m.update(extra=[1, 2]), r"config is malformed \(extra"),
    (lambda m: m.update(extra={"a": json.loads("[" * 200 + "]" * 200)}),
     "nests more than the 64 levels allowed"),
    (lambda m: m["model"]["layers"][2].update(layer="os.system"),
     "layer 'os.system', which is not registered"),
    (lambda m: m["model"].update(cost="os.system"), "cannot build.*unknown cost 'os.system'"),
    (lambda m: m["model"]["updater"].update(name="os.system"), "cannot build.*os.system"),
    (lambda m: m["model"]["iterator"].update(name="os.system"), "cannot build.*os.system"),
    (lambda m: m["model"]["iterator"]["config"].update(size="x", oops=2), "cannot build"),
    (lambda m: m.update(tokenizer={"vocabulary": [1, 2], "wrong": True}), "cannot build"),
    (lambda m: m.update(target_scale=[[1, "a"], [2]]), "cannot build"),
])
def test_absurd_or_malformed_config_is_a_value_error(good, tmp_path, change, message):
    path = tmp_path / "m.passage"
    write_members(path, with_config(members(good), change))
    with pytest.raises(ValueError, match=message):
        load(path)


def test_pickles_and_torch_payloads_are_refused_without_running_code(good, tmp_path):
    files = members(good)
    marker = tmp_path / "ran"
    evil = np.array([Evil(str(marker))], dtype=object)
    write_members(tmp_path / "p.passage", {**files, EMB: npy_bytes(evil, allow_pickle=True)})
    with pytest.raises(ValueError, match="only plain numbers are read"):
        load(tmp_path / "p.passage")
    buf = io.BytesIO()
    torch.save({"w": torch.zeros(20, 8)}, buf)
    write_members(tmp_path / "t.passage", {**files, EMB: buf.getvalue()})
    with pytest.raises(ValueError, match="not a readable Passage model file"):
        load(tmp_path / "t.passage")
    write_members(tmp_path / "z.passage", {"passage.json": buf.getvalue()})
    with pytest.raises(ValueError, match="not a readable Passage model file"):
        load(tmp_path / "z.passage")
    assert not marker.exists()


class Evil:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_unsupported_compression_and_encryption_flags_are_refused(good, tmp_path):
    files = members(good)
    with zipfile.ZipFile(tmp_path / "b.passage", "w", zipfile.ZIP_BZIP2) as z:
        for name, data in files.items():
            z.writestr(name, data)
    with pytest.raises(ValueError, match="compression method 12"):
        load(tmp_path / "b.passage")


# -- fuzz: any damage to a valid file is a ValueError (or still a valid model) -------------------
@st.composite
def damage(draw, size: int, names: list[str]):
    kind = draw(st.sampled_from(["flip", "truncate", "replace"]))
    if kind == "flip":
        return kind, draw(st.lists(st.tuples(st.integers(0, size - 1), st.integers(1, 255)),
                                   min_size=1, max_size=6))
    if kind == "truncate":
        return kind, draw(st.integers(0, size - 1))
    body = draw(st.one_of(
        st.binary(max_size=200),
        st.sampled_from(names).map(lambda n: ("member", n)),
        st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                     lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(), c,
                                                                          max_size=4),
                     max_leaves=10).map(lambda v: json.dumps(v).encode())))
    return kind, (draw(st.sampled_from(names)), body)


def _damaged(data: bytes, files: dict[str, bytes], how) -> bytes:
    kind, arg = how
    if kind == "flip":
        out = bytearray(data)
        for pos, mask in arg:
            out[pos] ^= mask
        return bytes(out)
    if kind == "truncate":
        return data[:arg]
    name, body = arg
    body = files[body[1]] if isinstance(body, tuple) else body
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for n, d in files.items():
            z.writestr(n, body if n == name else d)
    return buf.getvalue()


def test_fuzzed_model_files_load_or_raise_value_error(good, tmp_path_factory):
    data, files = good.read_bytes(), members(good)
    path = tmp_path_factory.mktemp("fuzz") / "m.passage"
    seen = {"loaded": 0, "refused": 0}

    @settings(max_examples=150, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(damage(len(data), sorted(files)))
    def check(how):
        path.write_bytes(_damaged(data, files, how))
        try:
            model = load(path)
        except ValueError:
            seen["refused"] += 1
            return
        seen["loaded"] += 1
        assert np.isfinite(model.predict([[3, 4]])).all()

    check()
    assert seen["refused"] > 50  # the damage was real, and it was refused as a ValueError
