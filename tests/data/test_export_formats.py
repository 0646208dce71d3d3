"""export_sequence: every format writes what reads back (ours, and independent readers)."""

from __future__ import annotations

import numpy as np
import pytest

from backend.data.anime import read_anime
from backend.data.export import EXPORT_FORMATS, export_sequence
from backend.data.frames_io import linear_to_srgb, read_frames, read_obj, srgb_to_linear
from shared.meshseq import load_npz
from shared.pc2 import read_pc2

from .builders import box_sequence


def test_npz_round_trip(tmp_path):
    seq = box_sequence()
    (path,) = export_sequence(seq, "npz", tmp_path / "s.npz")
    back = load_npz(path)
    for name in ("vertices", "faces", "times", "uvs", "colors"):
        np.testing.assert_array_equal(getattr(back, name), getattr(seq, name))
    assert back.name == "box"


def test_anime_round_trip(tmp_path):
    seq = box_sequence(fps=10)
    (path,) = export_sequence(seq, "anime", tmp_path / "s.anime")
    back = read_anime(path, fps=10)
    np.testing.assert_allclose(back.vertices, seq.vertices, atol=1e-6)
    np.testing.assert_array_equal(back.faces, seq.faces)


def test_pc2_frames_and_timing(tmp_path):
    seq = box_sequence(frames=5, fps=10)
    (path,) = export_sequence(seq, "pc2", tmp_path / "s.pc2")
    frames, start, rate = read_pc2(path)
    np.testing.assert_array_equal(frames, seq.vertices)
    assert (start, rate) == (0.0, 1.0)
    # For a 30 fps scene: 3 scene frames per sample.
    (path,) = export_sequence(seq, "pc2", tmp_path / "s30.pc2", scene_fps=30)
    _, start, rate = read_pc2(path)
    assert start == 0.0 and rate == pytest.approx(3.0)


def test_obj_round_trip_with_uvs(tmp_path):
    seq = box_sequence(frames=3)
    files = export_sequence(seq, "obj", tmp_path / "objs")
    assert [f.name for f in files] == ["frame_0000.obj", "frame_0001.obj", "frame_0002.obj"]
    text = files[0].read_text()
    assert "vt " in text and "f 1/1 " in text
    back = read_frames(tmp_path / "objs", fps=10)
    np.testing.assert_allclose(back.vertices, seq.vertices, atol=1e-6)
    np.testing.assert_array_equal(back.faces, seq.faces)
    np.testing.assert_allclose(back.uvs, seq.uvs, atol=1e-6)


def test_obj_without_uvs_and_trimesh_agrees(tmp_path):
    import trimesh

    seq = box_sequence(frames=2, uvs=False)
    files = export_sequence(seq, "obj", tmp_path / "objs")
    assert "vt " not in files[1].read_text()
    v, f, uv = read_obj(files[1])
    assert uv is None
    mesh = trimesh.load(files[1], process=False)
    np.testing.assert_allclose(mesh.vertices, seq.vertices[1], atol=1e-6)
    np.testing.assert_array_equal(mesh.faces, seq.faces)


def test_ply_round_trip_with_colours(tmp_path):
    seq = box_sequence(frames=3)
    files = export_sequence(seq, "ply", tmp_path / "plys")
    assert files[0].read_bytes().startswith(b"ply\nformat binary_little_endian 1.0\n")
    back = read_frames(tmp_path / "plys", fps=10)
    np.testing.assert_allclose(back.vertices, seq.vertices, atol=1e-6)
    np.testing.assert_array_equal(back.faces, seq.faces)
    np.testing.assert_allclose(back.uvs, seq.uvs, atol=1e-6)
    # 8-bit sRGB storage: within one sRGB step of the linear input.
    np.testing.assert_allclose(linear_to_srgb(back.colors[:, :3]),
                               linear_to_srgb(seq.colors[:, :3]), atol=0.5 / 255 + 1e-6)
    np.testing.assert_allclose(back.colors[:, 3], 1.0)


def test_ply_read_by_plyfile(tmp_path):
    plyfile = pytest.importorskip("plyfile")
    seq = box_sequence(frames=1)
    (path,) = export_sequence(seq, "ply", tmp_path / "plys")
    ply = plyfile.PlyData.read(str(path))
    vert = ply["vertex"]
    np.testing.assert_allclose(np.stack([vert["x"], vert["y"], vert["z"]], 1), seq.vertices[0])
    faces = np.stack(ply["face"]["vertex_indices"])
    np.testing.assert_array_equal(faces, seq.faces)
    red = np.asarray(vert["red"]) / 255.0
    np.testing.assert_allclose(srgb_to_linear(red), seq.colors[:, 0], atol=0.01)


def test_unknown_format(tmp_path):
    with pytest.raises(ValueError, match="obj, ply, pc2, anime, npz"):
        export_sequence(box_sequence(), "fbx", tmp_path / "x")
    assert EXPORT_FORMATS == ("obj", "ply", "pc2", "anime", "npz")
