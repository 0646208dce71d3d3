"""Chamfer distance (as in the paper: 2,048 points per frame, averaged over frames) and IoU.

Chamfer here is the symmetric squared-distance form, ``mean_a min_b |a-b|^2 + mean_b min_a
|a-b|^2``, in the normalised canonical units (frame 0's largest side = 1.8). Volumetric IoU
compares inside tests at the same points: predicted ``SDF < 0`` versus the ground truth's
generalised winding number.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from .sdf import points_from_bary, sample_surface


def chamfer(a: np.ndarray, b: np.ndarray) -> float:
    """Symmetric squared Chamfer distance of point sets ``a`` ``[P, 3]`` and ``b`` ``[Q, 3]``."""
    if len(a) == 0 or len(b) == 0:
        return float("nan")
    da, _ = cKDTree(b).query(a)
    db, _ = cKDTree(a).query(b)
    return float(np.mean(da ** 2) + np.mean(db ** 2))


def sequence_chamfer(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean over frames of :func:`chamfer` (``pred`` ``[T, P, 3]``, ``gt`` ``[T, Q, 3]``)."""
    if pred.shape[0] != gt.shape[0]:
        raise ValueError(f"frame counts differ: {pred.shape[0]} vs {gt.shape[0]}")
    return float(np.mean([chamfer(p, g) for p, g in zip(pred, gt, strict=True)]))


def surface_points(verts: np.ndarray, faces: np.ndarray, n: int = 2048,
                   seed: int = 0) -> np.ndarray:
    """``n`` area-weighted samples of frame 0 followed through ``verts`` ``[T, V, 3]``
    -> ``[T, n, 3]`` (a single frame ``[V, 3]`` gives ``[n, 3]``)."""
    v = np.asarray(verts)
    v0 = v if v.ndim == 2 else v[0]
    fi, bary = sample_surface(v0, faces, n, np.random.default_rng(seed))
    return points_from_bary(v, faces, fi, bary)


def iou(pred_inside: np.ndarray, gt_inside: np.ndarray) -> float:
    """Intersection over union of two boolean occupancy arrays of the same points."""
    p, g = np.asarray(pred_inside, bool), np.asarray(gt_inside, bool)
    union = np.sum(p | g)
    return float(np.sum(p & g) / union) if union else 1.0


def mesh_pieces(faces: np.ndarray) -> int:
    """Connected components of a triangle mesh (faces sharing a vertex connect); 0 if empty."""
    faces = np.asarray(faces)
    if faces.size == 0:
        return 0
    from .sdf import face_components

    return int(len(np.unique(face_components(faces))))
