"""Bad sources give clear errors naming the file and the problem (the data module's readers)."""

from __future__ import annotations

import base64
import json
import struct

import numpy as np
import pytest

from backend.methods.dnf.config import DataConfig
from backend.methods.dnf.data import SequenceLoader, SourceSpec, list_sources, prepare
from shared.errors import FormatError


def _write_anime(path, nf=3, nv=4, nt=2, cut=0, header=None):
    head = struct.pack("<3i", *(header or (nf, nv, nt)))
    body = np.zeros(nv * 3 + (nf - 1) * nv * 3, np.float32).tobytes()
    faces = np.array([[0, 1, 2], [0, 2, 3]][:nt], np.int32).tobytes()
    data = head + body[:nv * 12] + faces + body[nv * 12:]
    path.write_bytes(data[:len(data) - cut])
    return path


def test_anime_with_a_wrong_header(tmp_path):
    bad = _write_anime(tmp_path / "bear.anime", header=(-3, 4, 2))
    with pytest.raises(FormatError, match=r"bear\.anime: bad \.anime header"):
        SequenceLoader(DataConfig()).read(SourceSpec("dt4d|bear", "anime", "train", str(bad)))


def test_truncated_anime(tmp_path):
    bad = _write_anime(tmp_path / "fox.anime", cut=10)
    with pytest.raises(FormatError, match=r"fox\.anime: truncated \.anime file"):
        SequenceLoader(DataConfig()).read(SourceSpec("dt4d|fox", "anime", "train", str(bad)))


def test_anime_folder_without_files_is_an_error(tmp_path):
    cfg = DataConfig(animals_dir=str(tmp_path / "none"), creatures_dir="-",
                     anime_dirs=(str(tmp_path),), procedural=())
    with pytest.raises(FormatError, match="no .anime files"):
        list_sources(cfg)


def _static_gltf(path):
    """One triangle, no skin, no morph targets, no animation."""
    pos = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float32)
    idx = np.array([0, 1, 2], np.uint16)
    blob = pos.tobytes() + idx.tobytes() + b"\0\0"
    doc = {
        "asset": {"version": "2.0"}, "scene": 0, "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0}],
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0}, "indices": 1}]}],
        "buffers": [{"byteLength": len(blob), "uri": "data:application/octet-stream;base64,"
                     + base64.b64encode(blob).decode()}],
        "bufferViews": [{"buffer": 0, "byteOffset": 0, "byteLength": 36},
                        {"buffer": 0, "byteOffset": 36, "byteLength": 6}],
        "accessors": [
            {"bufferView": 0, "componentType": 5126, "count": 3, "type": "VEC3",
             "min": [0, 0, 0], "max": [1, 1, 0]},
            {"bufferView": 1, "componentType": 5123, "count": 3, "type": "SCALAR"}],
    }
    path.write_text(json.dumps(doc))
    return path


def test_gltf_without_any_animation(tmp_path):
    path = _static_gltf(tmp_path / "statue.gltf")
    spec = SourceSpec("statue", "animal", "train", str(path), "")
    with pytest.raises(FormatError, match=r"statue\.gltf.*no animation"):
        SequenceLoader(DataConfig()).read(spec)


def test_no_data_at_all_is_a_clear_error(tmp_path):
    cfg = DataConfig(animals_dir=str(tmp_path / "absent"), creatures_dir=str(tmp_path / "absent"),
                     procedural=(), fit_seeds=())
    with pytest.raises(FormatError, match="no DNF training data"):
        prepare(cfg, tmp_path / "cache")


def test_anime_folder_becomes_training_instances(tmp_path):
    from backend.data.anime import write_anime
    from backend.data.procedural import make_creature_sequence

    folder = tmp_path / "dt4d" / "bear3EP_Walk"
    folder.mkdir(parents=True)
    write_anime(make_creature_sequence(2, "walk", 6, 30.0), folder / "bear3EP_Walk.anime")
    cfg = DataConfig(animals_dir=str(tmp_path / "none"), creatures_dir="-",
                     anime_dirs=(str(tmp_path / "dt4d"),),
                     procedural=(), fit_seeds=(), frames=5, sdf_uniform=200, sdf_near=800,
                     corr_points=64, iou_points=200, eval_points=64)
    (inst,) = prepare(cfg, tmp_path / "cache")
    assert inst.name == "dt4d|bear3EP_Walk" and inst.spec.split == "train"
    assert inst["verts"].shape[0] == 5 and inst["corr"].shape == (5, 64, 3)
    v0 = inst["verts"][0]
    assert abs(float((v0.max(0) - v0.min(0)).max()) - 1.8) < 1e-4  # normalised by frame 0
