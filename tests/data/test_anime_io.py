"""DeformingThings4D ``.anime``: round trip and errors that name the file and the byte counts."""

from __future__ import annotations

import numpy as np
import pytest

from backend.data.anime import anime_size, read_anime, write_anime
from shared.errors import FormatError

from .builders import box_sequence


def test_round_trip(tmp_path):
    seq = box_sequence(frames=6, fps=10)
    path = write_anime(seq, tmp_path / "box.anime")
    assert path.stat().st_size == anime_size(6, 8, 12)
    back = read_anime(path, fps=10)
    np.testing.assert_allclose(back.vertices, seq.vertices, atol=1e-6)
    np.testing.assert_array_equal(back.faces, seq.faces)
    np.testing.assert_allclose(back.times, seq.times)
    assert back.uvs is None and back.colors is None


def test_layout_is_frame0_faces_offsets(tmp_path):
    seq = box_sequence(frames=3)
    raw = np.frombuffer(write_anime(seq, tmp_path / "a.anime").read_bytes(), np.uint8)
    head = raw[:12].view("<i4")
    assert head.tolist() == [3, 8, 12]
    base = raw[12:12 + 96].view("<f4").reshape(8, 3)
    faces = raw[108:108 + 144].view("<i4").reshape(12, 3)
    offsets = raw[252:].view("<f4").reshape(2, 8, 3)
    np.testing.assert_allclose(base, seq.vertices[0])
    np.testing.assert_array_equal(faces, seq.faces)
    np.testing.assert_allclose(offsets, seq.vertices[1:] - seq.vertices[0], atol=1e-6)


def test_fps_parameter(tmp_path):
    path = write_anime(box_sequence(frames=4), tmp_path / "a.anime")
    assert read_anime(path).times.tolist() == [0, 1 / 30, 2 / 30, 3 / 30]
    assert read_anime(path, fps=2).times.tolist() == [0, 0.5, 1.0, 1.5]


def test_truncated_names_file_and_sizes(tmp_path):
    path = write_anime(box_sequence(frames=4), tmp_path / "a.anime")
    data = path.read_bytes()
    path.write_bytes(data[:-10])
    with pytest.raises(FormatError) as err:
        read_anime(path)
    msg = str(err.value)
    assert str(path) in msg and "truncated" in msg
    assert f"needs {len(data)} bytes" in msg and f"found {len(data) - 10}" in msg


@pytest.mark.parametrize("header, problem", [
    (b"\x01\x00", "truncated .anime header: expected 12 bytes, found 2"),
    (np.array([0, 8, 12], "<i4").tobytes(), "bad .anime header"),
    (np.array([2, -5, 1], "<i4").tobytes(), "bad .anime header"),
    (np.array([1000, 100000, 5], "<i4").tobytes(), "needs"),
])
def test_bad_header(tmp_path, header, problem):
    path = tmp_path / "bad.anime"
    path.write_bytes(header)
    with pytest.raises(FormatError) as err:
        read_anime(path)
    assert str(path) in str(err.value) and problem in str(err.value)


def test_face_index_out_of_range(tmp_path):
    seq = box_sequence(frames=2)
    path = write_anime(seq, tmp_path / "a.anime")
    raw = bytearray(path.read_bytes())
    raw[108:112] = np.array([99], "<i4").tobytes()
    path.write_bytes(bytes(raw))
    with pytest.raises(FormatError) as err:
        read_anime(path)
    assert str(path) in str(err.value) and "face indices" in str(err.value)
