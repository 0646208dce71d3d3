"""shared.results: opening result folders of either representation, and scanning for them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from shared.errors import FormatError
from shared.gaussians import GaussianSequence, write_gaussian_result
from shared.manifest import Manifest, write_manifest
from shared.meshseq import MeshSequence, save_npz
from shared.results import list_results, open_result


def mesh_result(folder: Path, frames: int = 3) -> MeshSequence:
    """A tiny deforming tetrahedron saved as a mesh_sequence result."""
    folder.mkdir(parents=True)
    base = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], np.float32)
    verts = np.stack([base * (1 + 0.1 * t) for t in range(frames)])
    faces = np.array([[0, 1, 2], [0, 1, 3], [0, 2, 3], [1, 2, 3]], np.int32)
    seq = MeshSequence(verts, faces, np.arange(frames) / 10.0, name="tet")
    save_npz(seq, folder / "sequence.npz")
    write_manifest(folder, Manifest(
        kind="dnf", representation="mesh_sequence", frame_times=seq.times.tolist(), fps=10.0,
        files={"sequence": "sequence.npz", "pc2": None},
        counts={"frames": frames, "vertices": 4, "faces": 4},
    ))
    return seq


def gaussian_result(folder: Path, make_frame) -> GaussianSequence:
    seq = GaussianSequence([make_frame(20, 0, seed=1), make_frame(25, 0, seed=2)], [0.0, 0.04])
    write_gaussian_result(folder, seq, kind="ds4d", job_id="g1")
    return seq


def test_open_mesh_result(tmp_path: Path) -> None:
    seq = mesh_result(tmp_path / "m")
    res = open_result(tmp_path / "m")
    assert res.representation == "mesh_sequence" and res.frame_count == 3
    assert res._mesh is None  # lazy
    mesh = res.mesh
    assert res.load() is mesh
    assert np.array_equal(mesh.vertices, seq.vertices) and np.array_equal(mesh.faces, seq.faces)
    assert res.file("sequence") == tmp_path / "m" / "sequence.npz"
    with pytest.raises(FormatError, match="not 'gaussian_sequence'"):
        _ = res.gaussians


def test_open_gaussian_result(tmp_path: Path, make_frame) -> None:
    seq = gaussian_result(tmp_path / "g", make_frame)
    res = open_result(tmp_path / "g")
    assert res.representation == "gaussian_sequence" and res.name == "g1"
    assert res.gaussian_frame(1).count == 25
    assert res._gaussians is None
    assert res.load().gaussian_counts == [20, 25]
    assert np.array_equal(res.gaussians.frames[0].means, seq.frames[0].means)
    with pytest.raises(FormatError, match="not 'mesh_sequence'"):
        _ = res.mesh


def test_broken_folders(tmp_path: Path, make_frame) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(FormatError, match="not a result folder"):
        open_result(tmp_path / "empty")

    mesh_result(tmp_path / "m")
    (tmp_path / "m" / "sequence.npz").unlink()
    with pytest.raises(FormatError) as info:
        open_result(tmp_path / "m")
    assert "'sequence.npz'" in str(info.value) and str(tmp_path / "m") in str(info.value)

    gaussian_result(tmp_path / "g", make_frame)
    (tmp_path / "g" / "frame_0001.ply").unlink()
    with pytest.raises(FormatError, match="'frame_0001.ply'.*missing"):
        open_result(tmp_path / "g")

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "manifest.json").write_text("{not json")
    with pytest.raises(FormatError, match="cannot read as JSON"):
        open_result(bad)


def test_paths_must_stay_inside_the_folder(tmp_path: Path) -> None:
    mesh_result(tmp_path / "m")
    path = tmp_path / "m" / "manifest.json"
    for evil in ("../outside.npz", "/etc/passwd", ["x"]):
        data = json.loads(path.read_text())
        data["files"]["sequence"] = evil
        path.write_text(json.dumps(data))
        with pytest.raises(FormatError, match="files.sequence"):
            open_result(tmp_path / "m")


def test_mesh_frame_count_must_match_manifest(tmp_path: Path) -> None:
    mesh_result(tmp_path / "m", frames=3)
    path = tmp_path / "m" / "manifest.json"
    data = json.loads(path.read_text())
    data["frame_times"] = [0.0, 0.1]
    path.write_text(json.dumps(data))
    with pytest.raises(FormatError, match="holds 3 frames"):
        _ = open_result(tmp_path / "m").mesh


def test_list_results(tmp_path: Path, make_frame) -> None:
    mesh_result(tmp_path / "a_mesh")
    gaussian_result(tmp_path / "b_splats", make_frame)
    (tmp_path / "c_running").mkdir()  # no manifest yet: not a result, not broken
    (tmp_path / "c_running" / "frame_0000.ply").write_bytes(b"")
    (tmp_path / "d_badjson").mkdir()
    (tmp_path / "d_badjson" / "manifest.json").write_text("[")
    mesh_result(tmp_path / "e_missing")
    (tmp_path / "e_missing" / "sequence.npz").unlink()
    (tmp_path / "notes.txt").write_text("not a folder")

    scan = list_results(tmp_path)
    assert [r.folder.name for r in scan.results] == ["a_mesh", "b_splats"]
    assert [r.representation for r in scan.results] == ["mesh_sequence", "gaussian_sequence"]
    assert [p.name for p, _ in scan.broken] == ["d_badjson", "e_missing"]
    assert "JSON" in scan.broken[0][1] and "sequence.npz" in scan.broken[1][1]
    with pytest.raises(FormatError, match="not a folder"):
        list_results(tmp_path / "notes.txt")
