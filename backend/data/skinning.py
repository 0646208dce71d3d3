"""Linear blend skinning (LBS), shared by the glTF reader and the procedural creatures.

A vertex ``p`` with influences ``(j_k, w_k)`` moves to ``sum_k w_k M[j_k] p`` where ``M[j]`` is the
joint's skinning matrix (posed world matrix times inverse bind matrix). Weights are normalised per
vertex (as Blender's armature modifier does); vertices with no weight keep their rest position
(or, when ``fallback`` matrices are given, are moved by them).
"""

from __future__ import annotations

import numpy as np


def normalize_weights(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(weights ``[V, K]`` summing to 1 where possible, mask ``[V]`` of weighted vertices)."""
    w = np.clip(np.asarray(weights, dtype=np.float64), 0.0, None)
    total = w.sum(axis=1)
    has = total > 1e-8
    w[has] /= total[has, None]
    return w, has


def lbs(
    rest: np.ndarray,
    joints: np.ndarray,
    weights: np.ndarray,
    mats: np.ndarray,
    fallback: np.ndarray | None = None,
    chunk: int = 1 << 18,
) -> np.ndarray:
    """Skin ``rest`` by ``mats``.

    Args:
        rest: float ``[V, 3]`` (same for every frame) or ``[T, V, 3]`` (e.g. after morphing).
        joints: int ``[V, K]`` joint indices into ``mats``'s J axis.
        weights: float ``[V, K]``; normalised here.
        mats: float ``[T, J, 4, 4]`` skinning matrices.
        fallback: optional ``[T, 4, 4]`` applied to vertices whose weights are all zero.
        chunk: bound on ``frames * V`` processed at once (memory: about ``chunk * 200`` bytes).

    Returns:
        float64 ``[T, V, 3]`` skinned positions.
    """
    rest = np.asarray(rest, dtype=np.float64)
    joints = np.asarray(joints, dtype=np.int64)
    mats = np.asarray(mats, dtype=np.float64)
    w, has = normalize_weights(weights)
    t_count = mats.shape[0]
    v_count, k = joints.shape
    if joints.size and (joints.min() < 0 or joints.max() >= mats.shape[1]):
        raise ValueError(
            f"joint indices must lie in [0, {mats.shape[1] - 1}], "
            f"found [{int(joints.min())}, {int(joints.max())}]"
        )
    out = np.empty((t_count, v_count, 3), dtype=np.float64)
    step = max(1, chunk // max(1, v_count))
    affine = mats[:, :, :3, :]  # [T, J, 3, 4]
    for a in range(0, t_count, step):
        b = min(t_count, a + step)
        p = rest if rest.ndim == 2 else rest[a:b]
        # Blend the 3x4 matrices per vertex: [t, V, 3, 4].
        blended = np.zeros((b - a, v_count, 3, 4), dtype=np.float64)
        for slot in range(k):
            blended += w[None, :, slot, None, None] * affine[a:b, joints[:, slot]]
        eq = "tvij,vj->tvi" if p.ndim == 2 else "tvij,tvj->tvi"
        out[a:b] = np.einsum(eq, blended[..., :3], p) + blended[..., 3]
        if not np.all(has):
            loose = ~has
            src = p[loose] if p.ndim == 2 else p[:, loose]
            if fallback is None:
                out[a:b, loose] = src
            else:
                f = fallback[a:b]
                eq = "tij,vj->tvi" if src.ndim == 2 else "tij,tvj->tvi"
                out[a:b, loose] = np.einsum(eq, f[:, :3, :3], src) + f[:, None, :3, 3]
    return out
