"""What makes a sampled creature usable: marching cubes closes a shape at the grid's border,
floating islands are dropped once (one topology), an idle motion draw is redrawn."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from backend.data.mesh_pieces import drop_small_pieces
from backend.methods.dnf.checkpoint import load_checkpoint
from backend.methods.dnf.decode import marching_cubes
from backend.methods.dnf.gen.creature import MOTION_REDRAWS, motion_share, sample_creatures
from backend.methods.dnf.gen.mc import dense_grid
from backend.methods.dnf.gen.store import load_model_generator
from backend.methods.dnf.metrics import mesh_pieces


def edge_uses(faces: np.ndarray) -> np.ndarray:
    e = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    return np.unique(e, axis=0, return_counts=True)[1]


def test_a_shape_that_reaches_the_grid_border_is_closed_there():
    def ball(p: torch.Tensor) -> np.ndarray:  # radius 1.15: cut by the [-1, 1]^3 grid
        return (np.linalg.norm(p.double().numpy(), axis=1) - 1.15).astype(np.float32)

    res = 24
    verts, faces = marching_cubes(dense_grid(ball, res))
    assert len(faces) > 500
    assert np.all(edge_uses(faces) == 2), "open at the border"  # a closed 2-manifold
    step = 2.0 / (res - 1)
    assert np.abs(verts).max() <= 1.0 + step + 1e-6  # closed within one grid step outside


def two_balls(p: torch.Tensor) -> np.ndarray:
    x = p.double().numpy()
    big = np.linalg.norm(x - [-0.35, 0.0, 0.0], axis=1) - 0.5
    small = np.linalg.norm(x - [0.6, 0.0, 0.0], axis=1) - 0.12
    return np.minimum(big, small).astype(np.float32)


def test_small_pieces_are_dropped_and_the_rest_keeps_its_order():
    verts, faces = marching_cubes(dense_grid(two_balls, 40))
    assert mesh_pieces(faces) == 2
    # the small ball is (0.12 / 0.5)^2 = 5.8 % of the area
    for share, pieces, dropped in [(0.0, 2, 0), (0.03, 2, 0), (0.08, 1, 1)]:
        v, f, n = drop_small_pieces(verts, faces, share)
        assert (mesh_pieces(f), n) == (pieces, dropped)
    v, f, _ = drop_small_pieces(verts, faces, 0.08)
    big = verts[:, 0] < 0.3
    assert np.array_equal(v, verts[big])  # the big ball's vertices, in their order
    assert np.array_equal(v[f], verts[faces[big[faces[:, 0]]]])  # and its faces, unchanged
    assert np.all(edge_uses(f) == 2)
    v, f, n = drop_small_pieces(verts, faces, 0.99)  # the largest piece always stays
    assert n == 1 and len(f) > 0


class _IdleFirst:
    """The real motion generator, except that its first draw repeats frame 0 (an idle)."""

    def __init__(self, gen):
        self.gen, self.info, self.calls = gen, gen.info, 0

    def sample(self, shapes, frames, seed=0, steps=50, **kw):
        out = self.gen.sample(shapes, frames, seed=seed, steps=steps, **kw)
        self.calls += 1
        return out[:, :1].expand_as(out).clone() if self.calls == 1 else out


def test_an_idle_motion_draw_is_redrawn_and_the_creature_moves(creature_models):
    folder = creature_models / "dnf" / "micro"
    model = load_checkpoint(folder)
    sgen, mgen, _ = load_model_generator(folder, model.sha256)
    times = np.arange(6) / 10.0
    still, sv = sample_creatures(model, sgen, _IdleFirst(mgen), 1, times, seed=2, steps=4,
                                 resolution=24, min_motion=0.0)
    assert motion_share(still.canonical[0], sv[0]) == 0.0  # the idle stands without min_motion
    assert still.meta["motion_redraws"] == [0]
    moved, mv = sample_creatures(model, sgen, _IdleFirst(mgen), 1, times, seed=2, steps=4,
                                 resolution=24, min_motion=1e-3)
    k = moved.meta["motion_redraws"][0]
    assert 1 <= k <= MOTION_REDRAWS
    assert motion_share(moved.canonical[0], mv[0]) >= 1e-3
    assert np.array_equal(moved.canonical[0], still.canonical[0])  # same creature, new motion


class _SeededShapes:
    """A shape generator whose draw depends only on the seed (a 4-vector per seed)."""

    def sample(self, n, seed=0, steps=0, **kw):
        g = torch.Generator().manual_seed(seed)
        return torch.randn(n, 4, generator=g)


def test_a_repeated_shape_in_a_batch_is_redrawn_and_others_are_kept():
    from backend.methods.dnf.gen.creature import distinct_shapes, shape_spacing

    shapes = torch.tensor([[0.0, 0, 0, 0], [3.0, 0, 0, 0], [0.01, 0, 0, 0], [0, 3.0, 0, 0]])
    kept = shapes.clone()
    redraws = distinct_shapes(_SeededShapes(), shapes, 0.5, seed=1, steps=1)
    assert redraws == [0, 0, 1, 0]  # only the near-copy of the first is redrawn
    assert torch.equal(shapes[[0, 1, 3]], kept[[0, 1, 3]])
    assert float(torch.cdist(shapes[2:3], shapes[[0, 1, 3]]).min()) >= 0.5
    same = kept.clone()
    assert distinct_shapes(_SeededShapes(), same, 0.0, seed=1, steps=1) == [0] * 4  # off

    class _Model:
        shape_vecs = {"d": torch.tensor([[0.0, 0], [1.0, 0], [3.0, 0], [3.0, 2.0]])}

    assert shape_spacing(_Model(), "d") == pytest.approx(1.5)  # median of 1, 1, 2, 2
