"""Signed distances, winding numbers, surface sampling and the mesh checks."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import trimesh

from backend.methods.dnf.sdf import (
    OpenMeshWarning,
    check_mesh,
    distance_and_winding,
    points_from_bary,
    sample_surface,
    signed_distance,
)
from shared.errors import FormatError


def test_box_distance_exact_and_sign_from_winding():
    box = trimesh.creation.box((1.0, 1.0, 1.0))
    p = np.random.default_rng(0).uniform(-1, 1, (3000, 3))
    q = np.abs(p) - 0.5
    exact = np.linalg.norm(np.maximum(q, 0), axis=1) + np.minimum(q.max(1), 0)
    sdf = signed_distance(p, box.vertices, box.faces)
    assert np.abs(sdf - exact).max() < 1e-5


def test_sphere_winding_numbers_inside_outside():
    s = trimesh.creation.icosphere(subdivisions=3, radius=0.5)
    p = np.random.default_rng(1).uniform(-1, 1, (3000, 3))
    r = np.linalg.norm(p, axis=1)
    far = np.abs(r - 0.5) > 0.02
    d, w = distance_and_winding(p, s.vertices, s.faces)
    assert np.all((np.abs(w[far]) > 0.5) == (r[far] < 0.5))
    assert np.abs(w[far] - (r[far] < 0.5)).max() < 0.05
    assert np.abs(d[far] - np.abs(r[far] - 0.5)).max() < 0.01


def test_open_mesh_warns_and_keeps_a_sensible_inside():
    box = trimesh.creation.box((1.0, 1.0, 1.0))
    faces = box.faces[2:]  # drop one side (two triangles): an open box
    with pytest.warns(OpenMeshWarning, match="open-box.obj.*boundary edges"):
        stats = check_mesh(box.vertices, faces, "open-box.obj")
    assert stats["boundary_edges"] == 4
    _, w = distance_and_winding(np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 2.0]]), box.vertices, faces)
    assert abs(w[0]) > 0.5 and abs(w[1]) < 0.5


def test_mesh_without_faces_is_an_error_naming_it():
    with pytest.raises(FormatError, match=r"cloud\.ply: mesh has no faces"):
        check_mesh(np.zeros((5, 3)), np.zeros((0, 3), dtype=np.int32), "cloud.ply")


def test_closed_mesh_gives_no_warning():
    s = trimesh.creation.icosphere(subdivisions=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_mesh(s.vertices, s.faces, "sphere")


def test_barycentric_samples_follow_every_frame():
    s = trimesh.creation.icosphere(subdivisions=1)
    v = np.stack([s.vertices, s.vertices + [1.0, 2.0, 3.0]])
    fi, bary = sample_surface(s.vertices, s.faces, 100, np.random.default_rng(0))
    pts = points_from_bary(v, s.faces, fi, bary)
    assert pts.shape == (2, 100, 3)
    assert np.allclose(pts[1] - pts[0], [1.0, 2.0, 3.0], atol=1e-5)


def test_prepare_caches_by_content_hash(micro_trained, micro_cache):
    from dataclasses import replace

    from backend.methods.dnf.data import list_sources, source_hash
    from backend.methods.dnf.pipeline import run_prepare

    from .conftest import micro_preset

    _, first = micro_trained
    preset = micro_preset()
    files = sorted(p.name for p in micro_cache.glob("*.npz"))
    seen = []
    again = run_prepare(preset, micro_cache, lambda s, f, m: seen.append(m))
    assert sorted(p.name for p in micro_cache.glob("*.npz")) == files
    assert any("cached" in m for m in seen)
    assert np.array_equal(again[0]["sdf"], first[0]["sdf"])
    spec = list_sources(preset.data)[0]
    other = replace(preset.data, sdf_near=preset.data.sdf_near + 1)
    assert source_hash(spec, preset.data) != source_hash(spec, other)
