"""Weld seam-split vertices: one vertex per surface point, for training and SDF sampling.

Exporters split vertices along UV and material seams, so a closed surface arrives as several
open pieces. :func:`weld` merges vertices that coincide at rest (``rest`` positions, frame 0 by
default) within a tolerance relative to the rest bounding-box diagonal and, by default, stay
together in every frame (so touching but separate parts, such as closed lips, are kept apart).
Faces are remapped and the ones that collapse are dropped; UVs cannot survive welding and are
removed; colours are averaged over each merged group.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from shared.meshseq import MeshSequence


@dataclass(frozen=True)
class WeldConfig:
    """``rel_tol``: merge distance as a fraction of the rest bbox diagonal; ``all_frames``:
    also require the vertices to stay within that distance in every frame."""

    rel_tol: float = 1e-5
    all_frames: bool = True


def weld_groups(
    seq: MeshSequence, config: WeldConfig = WeldConfig(), rest: np.ndarray | None = None
) -> np.ndarray:
    """Group label ``[V]`` (int64, 0..G-1 in order of first appearance) of every vertex."""
    p = seq.vertices[0] if rest is None else np.asarray(rest, dtype=np.float64)
    if p.shape != (seq.vertex_count, 3):
        raise ValueError(f"rest must be [V, 3] = [{seq.vertex_count}, 3], got {list(p.shape)}")
    diag = float(np.linalg.norm(p.max(axis=0) - p.min(axis=0))) if p.size else 0.0
    tol = config.rel_tol * (diag if diag > 0 else 1.0)
    pairs = cKDTree(p).query_pairs(tol, output_type="ndarray")
    if config.all_frames and pairs.size and seq.frame_count > 1:
        seq_tol = config.rel_tol * max(seq.bbox_diagonal(), diag, 1e-12)
        gap = np.zeros(pairs.shape[0])
        for t in range(seq.frame_count):
            v = seq.vertices[t]
            gap = np.maximum(gap, np.linalg.norm(v[pairs[:, 0]] - v[pairs[:, 1]], axis=1))
        pairs = pairs[gap <= seq_tol]
    n = seq.vertex_count
    graph = coo_matrix((np.ones(pairs.shape[0]), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    # Renumber groups in order of their first vertex so the output order follows the input.
    first = np.full(labels.max() + 1, n, dtype=np.int64)
    np.minimum.at(first, labels, np.arange(n))
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.shape[0])
    return rank[labels]


def weld(
    seq: MeshSequence, config: WeldConfig = WeldConfig(), rest: np.ndarray | None = None
) -> MeshSequence:
    """Return ``seq`` with coincident vertices merged (see module docstring)."""
    labels = weld_groups(seq, config, rest)
    g = int(labels.max()) + 1 if labels.size else 0
    counts = np.bincount(labels, minlength=g).astype(np.float64)
    verts = np.zeros((seq.frame_count, g, 3), dtype=np.float64)
    for t in range(seq.frame_count):
        np.add.at(verts[t], labels, seq.vertices[t])
    verts /= counts[None, :, None]
    faces = labels[seq.faces]
    a, b, c = faces[:, 0], faces[:, 1], faces[:, 2]
    keep = (a != b) & (b != c) & (a != c)
    colors = None
    if seq.colors is not None:
        colors = np.zeros((g, 4), dtype=np.float64)
        np.add.at(colors, labels, seq.colors)
        colors /= counts[:, None]
    meta = dict(seq.meta)
    meta.update(welded=True, weld_rel_tol=config.rel_tol, source_vertices=seq.vertex_count)
    return MeshSequence(
        vertices=verts, faces=faces[keep], times=seq.times, uvs=None, colors=colors,
        name=seq.name, meta=meta,
    )
