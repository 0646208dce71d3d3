"""Generation metrics (MMD, COV, 1-NNA, copy check, sequence Chamfer) on answers known by hand."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from backend.methods.dnf.gen_metrics import (
    copy_check,
    distances,
    motion_amount,
    pairwise_chamfer,
    sequence_points,
    set_metrics,
)

BACKENDS = ("kdtree", "torch")


def _points(xs: list[float]) -> np.ndarray:
    """One single-point cloud per x, one frame: ``[N, 1, 1, 3]``."""
    return np.array([[[[x, 0.0, 0.0]]] for x in xs], dtype=np.float32)


def _metrics(samples: np.ndarray, refs: np.ndarray, backend: str = "kdtree"):
    return set_metrics(pairwise_chamfer(samples, backend=backend),
                       pairwise_chamfer(refs, backend=backend),
                       pairwise_chamfer(samples, refs, backend=backend))


@pytest.mark.parametrize("backend", BACKENDS)
def test_chamfer_hand_computed_two_frames(backend):
    # frame 0: a = {0, e_x}, b = {0}: a->b mean(0, 1) = 0.5, b->a 0 -> 0.5
    # frame 1: a = {0, 0}, b = {2 e_z, 2 e_z}: 4 + 4 = 8; sequence mean (0.5 + 8) / 2 = 4.25
    a = np.array([[[[0, 0, 0], [1, 0, 0]], [[0, 0, 0], [0, 0, 0]]]], np.float32)
    b = np.array([[[[0, 0, 0], [0, 0, 0]], [[0, 0, 2], [0, 0, 2]]]], np.float32)
    assert pairwise_chamfer(a, b, backend=backend)[0, 0] == pytest.approx(4.25, abs=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_chamfer_symmetric_and_zero_on_identical(backend):
    rng = np.random.default_rng(0)
    a = rng.uniform(-0.9, 0.9, (3, 2, 50, 3)).astype(np.float32)
    b = rng.uniform(-0.9, 0.9, (4, 2, 70, 3)).astype(np.float32)
    ab, ba = pairwise_chamfer(a, b, backend=backend), pairwise_chamfer(b, a, backend=backend)
    np.testing.assert_allclose(ab, ba.T, rtol=1e-6)
    assert (ab > 1e-3).all()
    np.testing.assert_array_equal(pairwise_chamfer(a, a.copy(), backend=backend).diagonal(), 0)
    self_d = pairwise_chamfer(a, backend=backend)
    np.testing.assert_array_equal(self_d, self_d.T)
    np.testing.assert_array_equal(self_d.diagonal(), 0)


def test_torch_and_kdtree_agree_and_chunks_do_not_matter():
    rng = np.random.default_rng(1)
    a = rng.uniform(-0.9, 0.9, (3, 3, 40, 3)).astype(np.float32)
    b = rng.uniform(-0.9, 0.9, (2, 3, 30, 3)).astype(np.float32)
    ref = pairwise_chamfer(a, b, backend="kdtree")
    np.testing.assert_allclose(pairwise_chamfer(a, b, backend="torch"), ref, rtol=1e-5)
    # one (pair, frame) per batch: 18 batches
    np.testing.assert_allclose(pairwise_chamfer(a, b, backend="torch", max_floats=1), ref,
                               rtol=1e-5)


def test_frame_counts_must_match():
    with pytest.raises(ValueError, match="frame counts differ"):
        pairwise_chamfer(np.zeros((1, 2, 5, 3)), np.zeros((1, 3, 5, 3)))


def test_identical_sets():
    rng = np.random.default_rng(2)
    x = rng.uniform(-0.9, 0.9, (5, 2, 64, 3)).astype(np.float32)
    m = _metrics(x, x.copy())
    assert m.mmd == 0.0
    assert m.cov == 1.0
    # every element's nearest neighbour is its exact copy in the other set: 0 %, not 50 %
    # (50 % is what independent draws of one distribution approach)
    assert m.nna == 0.0


@pytest.mark.parametrize("backend", BACKENDS)
def test_three_vs_three_by_hand(backend):
    # samples at x = 0, 1, 10, references at 0.4, 19.5, 21; distance = 2 dx^2
    m = _metrics(_points([0, 1, 10]), _points([0.4, 19.5, 21]), backend)
    # MMD: nearest sample of 0.4 is 0 (0.32), of 19.5 and 21 is 10 (180.5, 242)
    assert m.mmd == pytest.approx((0.32 + 180.5 + 242) / 3, rel=1e-5)
    # COV: 0 -> 0.4, 1 -> 0.4, 10 -> 19.5 (9.5 < 9.6): two references of three
    assert m.cov == pytest.approx(2 / 3)
    # 1-NNA: 0 -> 0.4 wrong, 1 -> 0.4 wrong, 10 -> 1 right (9 < 9.5), 0.4 -> 0 wrong,
    # 19.5 <-> 21 right: 3 of 6
    assert m.nna == pytest.approx(0.5)


def test_all_samples_near_one_reference():
    # samples at 0, 1, 2 all have 0.9 as nearest reference (COV 1/3), while the references'
    # own nearest samples are 1, 2, 2 (two different ones: a COV taken the other way is 2/3)
    m = _metrics(_points([0, 1, 2]), _points([0.9, 50, 60]))
    assert m.cov == pytest.approx(1 / 3)
    assert m.mmd == pytest.approx(2 * (0.1 ** 2 + 48 ** 2 + 58 ** 2) / 3, rel=1e-5)
    # 0 -> 0.9 wrong, 1 -> 0.9 wrong, 2 -> 1 right, 0.9 -> 1 wrong, 50 <-> 60 right
    assert m.nna == pytest.approx(0.5)


def test_disjoint_far_apart_sets():
    m = _metrics(_points([0, 1, 2]), _points([100, 101, 102]))
    assert m.nna == 1.0
    assert m.cov == pytest.approx(1 / 3)  # every sample's nearest reference is 100
    assert m.mmd == pytest.approx(2 * (98 ** 2 + 99 ** 2 + 100 ** 2) / 3, rel=1e-6)


def test_sample_without_surface_covers_nothing_and_is_told_apart():
    d_sr = np.array([[5.0, 1.0], [np.inf, np.inf]])
    d_ss = np.array([[0.0, np.inf], [np.inf, 0.0]])
    d_rr = np.array([[0.0, 3.0], [3.0, 0.0]])
    m = set_metrics(d_ss, d_rr, d_sr)
    assert m.cov == 0.5 and m.mmd == 3.0  # sample 1 covers nothing (not reference 0)
    # sample 0 -> ref 1 wrong, sample 1 (no surface) right, ref 0 -> ref 1 right,
    # ref 1 -> sample 0 wrong
    assert m.nna == 0.5
    # a reference at infinite distance from all (no tie-break may call it a sample)
    d_sr = np.array([[1.0, np.inf], [2.0, np.inf]])
    d_ss = np.array([[0.0, 4.0], [4.0, 0.0]])
    d_rr = np.array([[0.0, np.inf], [np.inf, 0.0]])
    # s0 -> r0 wrong, s1 -> r0 wrong, r0 -> s0 wrong, r1 told apart: right
    assert set_metrics(d_ss, d_rr, d_sr).nna == 0.25


def test_copy_check_by_hand():
    pos_train = np.array([0.0, 1.0, 3.0])
    d_tt = np.abs(pos_train[:, None] - pos_train[None])
    pos_s = np.array([0.1, 5.0])
    c = copy_check(np.abs(pos_s[:, None] - pos_train[None]), d_tt)
    np.testing.assert_allclose(c.train_nn, [1, 1, 2])
    np.testing.assert_allclose(c.nearest, [0.1, 2.0])
    np.testing.assert_array_equal(c.nearest_index, [0, 2])
    np.testing.assert_allclose(c.ratio, [0.1, 2.0])
    np.testing.assert_allclose(c.percentile, [0.0, 200 / 3])


def _box_sequence() -> tuple[np.ndarray, np.ndarray]:
    box = trimesh.creation.box(extents=(4.0, 2.0, 1.0))
    v0 = np.asarray(box.vertices) + [10.0, -3.0, 2.0]
    frames = np.stack([v0, v0 + [1.0, 0, 0], v0 * [1.0, 1.5, 1.0]])
    return frames, np.asarray(box.faces)


def test_sampler_deterministic_and_normalised():
    verts, faces = _box_sequence()
    p = sequence_points(verts, faces, 2048, seed=3)
    assert p.shape == (3, 2048, 3) and p.dtype == np.float32
    np.testing.assert_array_equal(p, sequence_points(verts, faces, 2048, seed=3))
    assert not np.array_equal(p, sequence_points(verts, faces, 2048, seed=4))
    # frame 0: centred, largest side (x, 4 units) scaled to 1.8, so y spans 0.9 and z 0.45
    np.testing.assert_allclose(p[0].min(0), [-0.9, -0.45, -0.225], atol=1e-6)
    np.testing.assert_allclose(p[0].max(0), [0.9, 0.45, 0.225], atol=1e-6)
    # later frames keep frame 0's transform: a shift of 1 unit is 0.45 normalised
    np.testing.assert_allclose(p[1] - p[0], np.broadcast_to([0.45, 0, 0], p[0].shape),
                               atol=1e-5)


def test_distances_with_a_sample_without_surface():
    rng = np.random.default_rng(5)
    a = [rng.uniform(-0.9, 0.9, (2, 16, 3)).astype(np.float32) for _ in range(2)]
    b = [rng.uniform(-0.9, 0.9, (2, 16, 3)).astype(np.float32) for _ in range(3)]
    d_ab = distances([a[0], None, a[1]], b, "kdtree")
    assert np.isinf(d_ab[1]).all()
    np.testing.assert_allclose(d_ab[[0, 2]], pairwise_chamfer(np.stack(a), np.stack(b)))
    d_aa = distances([a[0], None, a[1]], None, "kdtree")
    np.testing.assert_array_equal(d_aa.diagonal(), 0)
    assert np.isinf(d_aa[1, [0, 2]]).all() and np.isinf(d_aa[[0, 2], 1]).all()
    assert d_aa[0, 2] == d_aa[2, 0] == pairwise_chamfer(np.stack(a))[0, 1]


def test_motion_amount_by_hand():
    p0 = np.zeros((2, 3))
    # frame 1: both points moved by 1 (x); frame 2: one by 3 (z), one still -> (1+1+3+0)/4
    pts = np.stack([p0, p0 + [1, 0, 0], np.array([[0, 0, 3.0], [0, 0, 0]])])
    assert motion_amount(pts) == pytest.approx(1.25)
    assert motion_amount(pts[:1]) == 0.0
