"""PC2 point caches (shared/pc2.py): round trip, streaming, header validation."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from shared.errors import FormatError
from shared.pc2 import HEADER, PC2Writer, read_pc2, read_pc2_header, write_pc2


def frames(t: int = 4, v: int = 7) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(t, v, 3)).astype(np.float32)


def test_round_trip_and_header(tmp_path):
    f = frames()
    path = write_pc2(tmp_path / "a.pc2", f, start_frame=3.0, sample_rate=0.5)
    raw = path.read_bytes()
    assert raw[:12] == b"POINTCACHE2\0" and len(raw) == 32 + f.nbytes
    assert struct.unpack("<iiffi", raw[12:32]) == (1, 7, 3.0, 0.5, 4)
    back, start, rate = read_pc2(path)
    np.testing.assert_array_equal(back, f)
    assert (start, rate) == (3.0, 0.5) and back.dtype == np.float32


def test_streaming_writer_matches_bulk(tmp_path):
    f = frames(6)
    with PC2Writer(tmp_path / "s.pc2", 7, start_frame=1.0) as w:
        w.append(f[0])
        assert read_pc2_header(tmp_path / "s.pc2") == (7, 1.0, 1.0, 1)  # readable mid-stream
        w.append(f[1:4])
        w.append(f[4:])
        with pytest.raises(ValueError):
            w.append(np.zeros((5, 3)))
    back, start, rate = read_pc2(tmp_path / "s.pc2")
    np.testing.assert_array_equal(back, f)
    assert (start, rate) == (1.0, 1.0)


def test_empty_cache(tmp_path):
    back, _, _ = read_pc2(write_pc2(tmp_path / "e.pc2", np.zeros((0, 5, 3), np.float32)))
    assert back.shape == (0, 5, 3)


@pytest.mark.parametrize("mutate, problem", [
    (lambda b: b"POINTCACHE3\0" + b[12:], "not a PC2"),
    (lambda b: b[:12] + struct.pack("<i", 2) + b[16:], "version 2"),
    (lambda b: b[:-4], "truncated PC2 file"),
    (lambda b: b + b"\0\0\0\0", "trailing data"),
    (lambda b: b[:20], "truncated PC2 header"),
    (lambda b: b[:16] + struct.pack("<i", -3) + b[20:], "bad PC2 header"),
])
def test_bad_files(tmp_path, mutate, problem):
    path = write_pc2(tmp_path / "a.pc2", frames())
    path.write_bytes(mutate(path.read_bytes()))
    with pytest.raises(FormatError) as err:
        read_pc2(path)
    assert str(path) in str(err.value) and problem in str(err.value)


def test_truncation_message_has_byte_counts(tmp_path):
    path = write_pc2(tmp_path / "a.pc2", frames(2, 3))
    path.write_bytes(path.read_bytes()[:-12])
    with pytest.raises(FormatError) as err:
        read_pc2(path)
    expected = HEADER.size + 2 * 3 * 12
    assert f"needs {expected} bytes, found {expected - 12}" in str(err.value)


def test_shared_pc2_is_numpy_and_stdlib_only():
    import ast
    import pathlib

    import shared.pc2

    tree = ast.parse(pathlib.Path(shared.pc2.__file__).read_text())
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            roots.add(node.module.split(".")[0])
    assert roots <= {"__future__", "os", "struct", "pathlib", "types", "numpy"}
