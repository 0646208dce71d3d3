"""The shared CC0 animals (skipped when ../shared/data is absent).

Every clip of Horse.glb bakes with constant topology; welding gives one closed surface. Baking
the first clip of all 14 animals runs only with ``ANIM4D_SLOW_TESTS=1``.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import trimesh
from scipy.spatial import cKDTree

from backend.data.gltf_reader import GltfAnimation, list_gltf_clips
from backend.data.readers import BakeConfig, read_sequence

HORSE_CLIPS = 13
HORSE_VERTICES = 4400


@pytest.fixture(scope="module")
def horse(horse_glb):
    return GltfAnimation(horse_glb)


def test_horse_clips_listed(horse_glb):
    clips = dict(list_gltf_clips(horse_glb))
    assert len(clips) == HORSE_CLIPS
    assert clips["AnimalArmature|Walk"] == pytest.approx(28 / 24, abs=1e-6)
    assert clips["AnimalArmature|Eating"] == pytest.approx(6.0, abs=1e-6)


def test_float32_last_key_lands_on_the_grid(horse):
    walk = horse.clip("AnimalArmature|Walk")  # 28/24 s as float32: 2e-6 frames short at 30 fps
    seq = horse.sequence(walk.name, fps=30)
    assert seq.frame_count == 36 and seq.times[-1] == pytest.approx(7 / 6)
    last = horse.sample(walk, np.array([walk.duration]))[0]
    np.testing.assert_allclose(seq.vertices[-1], last, atol=1e-6)


def test_every_horse_clip_bakes_with_constant_topology(horse):
    fps = 30.0
    for clip in horse.clips:
        seq = horse.sequence(clip.name, fps=fps)
        assert seq.frame_count == math.floor(clip.duration * fps + 1e-4) + 1, clip.name
        assert seq.vertices.shape == (seq.frame_count, HORSE_VERTICES, 3)
        np.testing.assert_array_equal(seq.faces, horse.faces)
        assert seq.times[0] == 0.0 and np.all(np.isfinite(seq.vertices))
        assert np.abs(seq.vertices - seq.vertices[:1]).max() > 1e-3 * seq.bbox_diagonal()
        assert seq.colors.shape == (HORSE_VERTICES, 4) and seq.uvs is None


def test_horse_colours_come_from_materials(horse):
    colours = np.unique(horse.colors, axis=0)
    materials = np.array([m.pbrMetallicRoughness.baseColorFactor
                          for m in horse.doc.gltf.materials], dtype=np.float32)
    assert colours.shape == (len(materials), 4)
    np.testing.assert_array_equal(np.unique(materials, axis=0), colours)


def test_horse_weld(horse_glb, horse):
    seq = read_sequence(horse_glb, BakeConfig(clip="AnimalArmature|Walk", fps=12, weld=True))
    raw = horse.sequence("AnimalArmature|Walk", fps=12)
    assert seq.vertex_count < raw.vertex_count / 2
    assert seq.uvs is None and seq.colors is not None
    for t in (0, seq.frame_count - 1):
        mesh = trimesh.Trimesh(seq.vertices[t], seq.faces, process=False)
        assert mesh.is_watertight
        # Same shape: every welded vertex sits on an original one and vice versa.
        d1 = cKDTree(raw.vertices[t]).query(seq.vertices[t])[0].max()
        d2 = cKDTree(seq.vertices[t]).query(raw.vertices[t])[0].max()
        assert max(d1, d2) < 1e-5 * raw.bbox_diagonal()


@pytest.mark.skipif(os.environ.get("ANIM4D_SLOW_TESTS") != "1",
                    reason="slow: set ANIM4D_SLOW_TESTS=1 to bake all 14 animals")
def test_all_animals_bake(animals_dir):
    files = sorted(animals_dir.glob("*.glb"))
    assert len(files) == 14
    for path in files:
        seq = read_sequence(path, BakeConfig(fps=24, weld=True))
        assert seq.frame_count > 1 and seq.faces.shape[0] > 0, path.name
