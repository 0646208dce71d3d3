"""Welding seam-split vertices and DNF-style normalisation."""

from __future__ import annotations

import numpy as np
import trimesh

from backend.data.normalize import NormTransform, normalize
from backend.data.weld import WeldConfig, weld
from shared.meshseq import MeshSequence

from .builders import BOX, BOX_FACES, box_sequence


def split_box_sequence() -> MeshSequence:
    """The box with every face owning its own three vertices (36 vertices, like a flat-shaded
    export), colours differing per face."""
    base = box_sequence(frames=4)
    corner = BOX_FACES.reshape(-1)
    verts = base.vertices[:, corner]
    faces = np.arange(36).reshape(12, 3)
    colors = np.repeat(np.linspace(0.1, 0.9, 12), 3)[:, None] * np.ones((1, 4))
    uvs = np.zeros((36, 2))
    return MeshSequence(verts, faces, base.times, uvs, colors)


def test_weld_merges_split_vertices_and_keeps_shape():
    seq = split_box_sequence()
    welded = weld(seq)
    assert welded.vertex_count == 8 < seq.vertex_count
    assert welded.faces.shape == (12, 3) and welded.uvs is None
    assert welded.meta["source_vertices"] == 36
    for t in range(seq.frame_count):
        a = trimesh.Trimesh(seq.vertices[t], seq.faces, process=False)
        b = trimesh.Trimesh(welded.vertices[t], welded.faces, process=False)
        assert b.is_watertight and not a.is_watertight
        np.testing.assert_allclose(b.area, a.area, rtol=1e-6)
        np.testing.assert_allclose(np.sort(b.triangles.reshape(-1, 3), axis=0),
                                   np.sort(a.triangles.reshape(-1, 3), axis=0), atol=1e-6)
    # Colours averaged over the merged group: corner 0 belongs to 6 faces' copies.
    first = seq.faces.reshape(-1)[np.where(BOX_FACES.reshape(-1) == 0)[0]]
    np.testing.assert_allclose(welded.colors[0], seq.colors[first].mean(axis=0), atol=1e-6)


def test_weld_keeps_vertices_that_separate_later():
    seq = split_box_sequence()
    verts = seq.vertices.copy()
    verts[2:, 0] += 0.25  # one copy of corner 0 leaves the others in later frames
    moved = MeshSequence(verts, seq.faces, seq.times)
    assert weld(moved).vertex_count == 9
    assert weld(moved, WeldConfig(all_frames=False)).vertex_count == 8


def test_weld_tolerance_is_relative():
    seq = split_box_sequence()
    big = MeshSequence(seq.vertices * 1000, seq.faces, seq.times)
    noisy = big.vertices + np.random.default_rng(1).normal(scale=1e-4, size=big.vertices.shape)
    assert weld(MeshSequence(noisy, big.faces, big.times)).vertex_count == 8


def test_normalize_and_invert():
    seq = box_sequence(frames=5)
    norm, tf = normalize(seq)
    lo, hi = norm.vertices[0].min(0), norm.vertices[0].max(0)
    np.testing.assert_allclose((lo + hi) / 2, 0.0, atol=1e-6)
    assert np.isclose((hi - lo).max(), 1.8, atol=1e-6)
    np.testing.assert_allclose(tf.invert_seq(norm).vertices, seq.vertices, atol=1e-6)
    p = np.random.default_rng(0).normal(size=(10, 3))
    np.testing.assert_allclose(tf.invert(tf.apply(p)), p, atol=1e-12)
    assert NormTransform.from_json(tf.to_json()).scale == tf.scale
    # Later frames share the transform: the motion (x translation) is scaled, not undone.
    shift = norm.vertices[4].mean(0) - norm.vertices[0].mean(0)
    assert np.isclose(shift[0], (seq.times[4]) * tf.scale, atol=1e-5)


def test_normalize_extent_parameter():
    seq = MeshSequence(BOX[None] * [4, 2, 1] + [10, 0, 0], BOX_FACES, [0.0])
    norm, tf = normalize(seq, extent=1.0)
    np.testing.assert_allclose(norm.vertices[0].max(0), [0.5, 0.25, 0.125], atol=1e-6)
    np.testing.assert_allclose(tf.center, [10, 0, 0], atol=1e-6)
