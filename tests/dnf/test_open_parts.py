"""Open and multi-part meshes become volume; motion samples off the surface; public-code sizes."""

from __future__ import annotations

import numpy as np
import trimesh

from backend.methods.dnf.config import DataConfig, get_preset
from backend.methods.dnf.data import _correspondences
from backend.methods.dnf.dictionary import keep_counts
from backend.methods.dnf.fields import FieldMLP
from backend.methods.dnf.sdf import open_faces, signed_distance, solid_pieces, solid_sdf

SHELL = 0.02


def _body_with_fin():
    """A closed box body and a single-plane square fin (two triangles) sticking out of it."""
    box = trimesh.creation.box((1.0, 0.4, 0.4))
    fin_v = np.array([[0.0, 0.1, 0.0], [0.4, 0.1, 0.0], [0.4, 0.7, 0.0], [0.0, 0.7, 0.0]])
    verts = np.concatenate([box.vertices, fin_v])
    n = len(box.vertices)
    faces = np.concatenate([box.faces, np.array([[n, n + 1, n + 2], [n, n + 2, n + 3]])])
    return verts, faces, len(box.faces)


def test_a_single_plane_fin_becomes_a_thin_slab():
    verts, faces, n_box = _body_with_fin()
    assert open_faces(faces).tolist() == [False] * n_box + [True, True]
    on_fin = np.array([[0.2, 0.5, 0.0], [0.2, 0.5, 0.015], [0.2, 0.5, -0.015]])
    off_fin = np.array([[0.2, 0.5, 0.03], [0.2, 0.8, 0.0]])
    # the winding number alone sees the plane as outside on both sides: the fin vanishes
    assert np.all(signed_distance(on_fin, verts, faces) >= 0)
    assert np.all(solid_sdf(on_fin, verts, faces, SHELL) < 0)
    assert np.all(solid_sdf(off_fin, verts, faces, SHELL) > 0)
    assert abs(solid_sdf(on_fin[:1], verts, faces, SHELL)[0] + SHELL) < 1e-5


def test_a_closed_mesh_keeps_its_exact_sdf():
    box = trimesh.creation.box((1.0, 1.0, 1.0))
    p = np.random.default_rng(0).uniform(-1, 1, (2000, 3))
    want = signed_distance(p, box.vertices, box.faces)
    assert np.array_equal(solid_sdf(p, box.vertices, box.faces, SHELL), want)
    assert np.array_equal(open_faces(box.faces), np.zeros(len(box.faces), bool))


def test_body_inside_stays_inside_next_to_the_fin():
    verts, faces, _ = _body_with_fin()
    p = np.array([[0.1, 0.0, 0.05], [0.3, 0.15, 0.05]])  # in the box; near the fin root
    assert np.all(solid_sdf(p, verts, faces, SHELL) < 0)


def test_touching_parts_are_one_piece_apart_parts_are_two():
    a = trimesh.creation.box((1.0, 1.0, 1.0))
    touching = trimesh.creation.icosphere(radius=0.2).apply_translation([0.6, 0, 0])
    apart = trimesh.creation.icosphere(radius=0.2).apply_translation([1.5, 0, 0])
    for other, want in ((touching, 1), (apart, 2)):
        m = trimesh.util.concatenate([a, other])
        assert solid_pieces(m.vertices, m.faces, touch=0.03) == want
    eye = trimesh.creation.icosphere(radius=0.1)  # entirely inside the box
    m = trimesh.util.concatenate([a, eye])
    assert solid_pieces(m.vertices, m.faces, touch=0.03) == 1


def test_motion_samples_off_the_surface_follow_the_normal():
    s = trimesh.creation.icosphere(subdivisions=3, radius=0.5)
    verts = np.stack([s.vertices, s.vertices * 1.5 + [0.1, 0, 0]])  # frame 1: scaled, moved
    cfg = DataConfig(corr_points=1000, corr_offset_fraction=0.3, corr_offset_sigma=0.04)
    corr = _correspondences(verts, s.faces, cfg, np.random.default_rng(0))
    r0 = np.linalg.norm(corr[0], axis=1)
    r1 = np.linalg.norm(corr[1] - [0.1, 0, 0], axis=1)
    on, off = slice(0, 700), slice(700, 1000)
    assert np.abs(r0[on] - 0.5).max() < 0.01  # polyhedron vs sphere: within 0.01
    assert np.abs(r0[off] - 0.5).max() <= 0.02 + 0.01
    assert np.abs(r0[off] - 0.5).max() > 0.015  # really offset
    # the same offset along each frame's own normal (not scaled with the shape)
    assert np.abs((r1[off] - 0.75) - (r0[off] - 0.5)).max() < 0.01


def test_top_k_absolute_and_paper_sizes_of_the_public_code():
    mlp = FieldMLP(100, 64, 3, (), 1)
    assert keep_counts(mlp, 0.5, topk=48) == [48, 48, 48, 1]
    assert keep_counts(mlp, 0.5) == [32, 32, 32, 1]
    p = get_preset("paper")
    assert (p.shape.code_dim, p.motion.pose_dim) == (384, 384)
    assert (p.dictionary.shape_topk, p.dictionary.motion_topk) == (384, 768)
    assert (p.dictionary.shape_residual, p.dictionary.motion_residual) == (256, 512)
    assert p.shape.clamp == 0.1 and p.data.corr_offset_fraction > 0
