"""Linear blend skinning against a hand-made two-bone example."""

from __future__ import annotations

import numpy as np
import pytest

from backend.data.skinning import lbs
from backend.data.transforms import axis_angle_matrix, quat_interpolate, trs_matrix


def two_bone_mats(angle: float) -> np.ndarray:
    """Bone 0 fixed; bone 1 rotated by ``angle`` about Z around its head (1, 0, 0)."""
    m1 = np.eye(4)
    m1[:3, :3] = axis_angle_matrix(np.array([0, 0, 1.0]), angle)
    m1[:3, 3] = np.array([1.0, 0, 0]) - m1[:3, :3] @ [1.0, 0, 0]
    return np.stack([np.eye(4), m1])[None]


def test_two_bone_by_hand():
    rest = np.array([[0.5, 0, 0], [1.5, 0, 0], [2.0, 0, 0], [1.5, 0.0, 0]])
    joints = np.array([[0, 1], [0, 1], [1, 0], [1, 1]])
    weights = np.array([[1.0, 0.0], [0.5, 0.5], [1.0, 0.0], [0.3, 0.3]])
    out = lbs(rest, joints, weights, two_bone_mats(np.pi / 2))[0]
    np.testing.assert_allclose(out[0], [0.5, 0, 0], atol=1e-12)  # bone 0 only
    # Half/half: average of (1.5, 0) and (1, 0.5) -> (1.25, 0.25)
    np.testing.assert_allclose(out[1], [1.25, 0.25, 0], atol=1e-12)
    np.testing.assert_allclose(out[2], [1.0, 1.0, 0], atol=1e-12)  # bone 1 only
    # Weights are normalised (0.3 + 0.3 on the same bone -> 1.0 on bone 1).
    np.testing.assert_allclose(out[3], [1.0, 0.5, 0], atol=1e-12)


def test_frames_chunks_and_per_frame_rest():
    rest = np.random.default_rng(0).normal(size=(50, 3))
    joints = np.tile([0, 1], (50, 1))
    w = np.random.default_rng(1).uniform(size=(50, 2))
    angles = np.linspace(0, np.pi, 7)
    mats = np.concatenate([two_bone_mats(a) for a in angles])
    full = lbs(rest, joints, w, mats)
    chunked = lbs(rest, joints, w, mats, chunk=60)  # one frame at a time
    np.testing.assert_allclose(full, chunked, atol=1e-12)
    per_frame = lbs(np.broadcast_to(rest, (7, 50, 3)), joints, w, mats)
    np.testing.assert_allclose(full, per_frame, atol=1e-12)


def test_zero_weights_and_bad_indices():
    rest = np.array([[1.0, 2.0, 3.0]])
    out = lbs(rest, np.array([[1]]), np.array([[0.0]]), two_bone_mats(1.0))
    np.testing.assert_allclose(out[0, 0], rest[0])
    fb = np.eye(4)[None].copy()
    fb[0, :3, 3] = [1, 1, 1]
    out = lbs(rest, np.array([[1]]), np.array([[0.0]]), two_bone_mats(1.0), fallback=fb)
    np.testing.assert_allclose(out[0, 0], rest[0] + 1)
    with pytest.raises(ValueError, match="joint indices"):
        lbs(rest, np.array([[2]]), np.array([[1.0]]), two_bone_mats(1.0))


def test_trs_and_quaternion_helpers():
    q = np.array([0, np.sin(np.pi / 4), 0, np.cos(np.pi / 4)])  # 90 degrees about Y
    m = trs_matrix([1, 2, 3], q, [2, 2, 2])
    np.testing.assert_allclose(m @ [1, 0, 0, 1], [1, 2, 1, 1], atol=1e-12)
    ident = np.array([0, 0, 0, 1.0])
    half = quat_interpolate(ident, -q, np.array(0.5), "slerp")  # antipodal input: short arc
    np.testing.assert_allclose(np.abs(half), [0, np.sin(np.pi / 8), 0, np.cos(np.pi / 8)],
                               atol=1e-12)
