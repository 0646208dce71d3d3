"""Small batched 3D transform helpers: quaternions, TRS matrices, rotations.

Conventions: quaternions are glTF-ordered ``(x, y, z, w)``; matrices are ``[..., 4, 4]`` acting on
column vectors (``p' = M @ p``); all functions broadcast over leading axes.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

QuatInterp = Literal["nlerp", "slerp"]


def quat_normalize(q: np.ndarray) -> np.ndarray:
    """Unit quaternions ``[..., 4]``; a zero quaternion becomes the identity."""
    q = np.asarray(q, dtype=np.float64)
    n = np.linalg.norm(q, axis=-1, keepdims=True)
    ident = np.zeros_like(q)
    ident[..., 3] = 1.0
    return np.where(n > 1e-12, q / np.maximum(n, 1e-12), ident)


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """Rotation matrices ``[..., 3, 3]`` of quaternions ``[..., 4]`` (normalised first)."""
    x, y, z, w = np.moveaxis(quat_normalize(q), -1, 0)
    m = np.empty(x.shape + (3, 3), dtype=np.float64)
    m[..., 0, 0] = 1 - 2 * (y * y + z * z)
    m[..., 0, 1] = 2 * (x * y - z * w)
    m[..., 0, 2] = 2 * (x * z + y * w)
    m[..., 1, 0] = 2 * (x * y + z * w)
    m[..., 1, 1] = 1 - 2 * (x * x + z * z)
    m[..., 1, 2] = 2 * (y * z - x * w)
    m[..., 2, 0] = 2 * (x * z - y * w)
    m[..., 2, 1] = 2 * (y * z + x * w)
    m[..., 2, 2] = 1 - 2 * (x * x + y * y)
    return m


def quat_interpolate(
    q0: np.ndarray, q1: np.ndarray, s: np.ndarray, mode: QuatInterp = "nlerp"
) -> np.ndarray:
    """Interpolate ``[..., 4]`` quaternions by ``s`` ``[...]`` along the shortest arc.

    ``nlerp`` (component-wise linear, then normalised) is what Blender evaluates for imported
    glTF rotation keys; ``slerp`` is the glTF specification's constant-speed interpolation.
    """
    q0 = quat_normalize(q0)
    q1 = quat_normalize(q1)
    s = np.asarray(s, dtype=np.float64)[..., None]
    d = np.sum(q0 * q1, axis=-1, keepdims=True)
    q1 = np.where(d < 0, -q1, q1)
    d = np.abs(d)
    if mode == "nlerp":
        return quat_normalize((1 - s) * q0 + s * q1)
    if mode != "slerp":
        raise ValueError(f"quaternion interpolation {mode!r}: expected 'nlerp' or 'slerp'")
    theta = np.arccos(np.clip(d, -1.0, 1.0))
    sin_t = np.sin(theta)
    small = sin_t < 1e-8
    safe = np.where(small, 1.0, sin_t)
    a = np.where(small, 1 - s, np.sin((1 - s) * theta) / safe)
    b = np.where(small, s, np.sin(s * theta) / safe)
    return quat_normalize(a * q0 + b * q1)


def trs_matrix(t: np.ndarray, r: np.ndarray, s: np.ndarray) -> np.ndarray:
    """``T @ R @ S`` as ``[..., 4, 4]`` from translation ``[..., 3]``, quaternion ``[..., 4]``,
    scale ``[..., 3]``."""
    t, r, s = (np.asarray(a, dtype=np.float64) for a in (t, r, s))
    shape = np.broadcast_shapes(t.shape[:-1], r.shape[:-1], s.shape[:-1])
    m = np.zeros(shape + (4, 4), dtype=np.float64)
    m[..., :3, :3] = quat_to_matrix(r) * s[..., None, :]
    m[..., :3, 3] = t
    m[..., 3, 3] = 1.0
    return m


def axis_angle_matrix(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rotation ``[..., 3, 3]`` by ``angle`` ``[...]`` radians about unit-ish ``axis`` ``[3]``."""
    axis = np.asarray(axis, dtype=np.float64)
    axis = axis / np.linalg.norm(axis)
    half = 0.5 * np.asarray(angle, dtype=np.float64)
    q = np.concatenate([np.sin(half)[..., None] * axis, np.cos(half)[..., None]], axis=-1)
    return quat_to_matrix(q)


def affine(rot: np.ndarray, trans: np.ndarray) -> np.ndarray:
    """``[..., 4, 4]`` from rotation/linear part ``[..., 3, 3]`` and translation ``[..., 3]``."""
    rot = np.asarray(rot, dtype=np.float64)
    trans = np.asarray(trans, dtype=np.float64)
    shape = np.broadcast_shapes(rot.shape[:-2], trans.shape[:-1])
    m = np.zeros(shape + (4, 4), dtype=np.float64)
    m[..., :3, :3] = rot
    m[..., :3, 3] = trans
    m[..., 3, 3] = 1.0
    return m


def transform_points(m: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Apply ``[..., 4, 4]`` matrices to points ``[..., N, 3]`` -> ``[..., N, 3]``."""
    m = np.asarray(m, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    return np.einsum("...ij,...nj->...ni", m[..., :3, :3], p) + m[..., None, :3, 3]
