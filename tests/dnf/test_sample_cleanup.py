"""What makes a sampled creature usable: marching cubes closes a shape at the grid's border,
floating islands are dropped once (one topology), an idle motion draw is redrawn."""

from __future__ import annotations

import numpy as np
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
