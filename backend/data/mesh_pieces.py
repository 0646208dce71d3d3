"""Connected pieces of a triangle mesh: label them, drop the small ones (islands of a
marching-cubes surface). Shapes: ``verts`` ``[V, 3]``, ``faces`` ``[F, 3]``."""

from __future__ import annotations

import numpy as np


def face_components(faces: np.ndarray, vertex_count: int | None = None) -> np.ndarray:
    """Connected-component label ``[F]`` of every face (faces sharing a vertex connect)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    faces = np.asarray(faces, dtype=np.int64)
    n = int(vertex_count if vertex_count is not None else faces.max() + 1)
    e = faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)
    graph = coo_matrix((np.ones(e.shape[0]), (e[:, 0], e[:, 1])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return labels[faces[:, 0]]


def drop_small_pieces(verts: np.ndarray, faces: np.ndarray, min_share: float
                      ) -> tuple[np.ndarray, np.ndarray, int]:
    """Drop the connected pieces of a mesh (``verts`` ``[V, 3]``, ``faces`` ``[F, 3]``) whose
    surface area is under ``min_share`` of the whole (the largest piece always stays); unused
    vertices go, the rest keep their order. Returns (verts, faces, pieces dropped).

    Marching cubes of a sampled SDF leaves small islands (a hoof, a tail tip) where the field
    dips below zero apart from the body; animated, they float. Every frame is the canonical mesh
    moved, so dropping them once keeps one topology (the same for DS4D's extracted mesh)."""
    if min_share <= 0 or len(faces) == 0:
        return verts, faces, 0
    labels = face_components(faces)
    a, b, c = (verts[faces[:, k]].astype(np.float64) for k in range(3))
    area = 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)
    per_piece = np.bincount(labels, weights=area)
    keep_piece = per_piece >= min_share * per_piece.sum()
    keep_piece[np.argmax(per_piece)] = True
    dropped = int(len(per_piece) - keep_piece.sum())
    if not dropped:
        return verts, faces, 0
    kept = faces[keep_piece[labels]]
    used = np.unique(kept)
    remap = np.full(len(verts), -1, np.int64)
    remap[used] = np.arange(len(used))
    return verts[used], remap[kept].astype(faces.dtype), dropped
