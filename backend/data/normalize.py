"""Normalise a sequence into a canonical box, DNF style, and map results back.

The first frame's axis-aligned bounding box sets the transform: its centre goes to the origin and
its largest side becomes ``extent`` (DNF uses 1.8, so frame 0 fits in ``[-0.9, 0.9]^3``). Later
frames use the same transform, so motion is preserved (they may leave the box).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shared.meshseq import MeshSequence

DNF_EXTENT = 1.8


@dataclass(frozen=True)
class NormTransform:
    """``apply(p) = (p - center) * scale``; ``invert`` undoes it. ``center`` is ``[3]``."""

    center: np.ndarray
    scale: float

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Points ``[..., 3]`` -> normalised ``[..., 3]`` (float64)."""
        return (np.asarray(points, dtype=np.float64) - self.center) * self.scale

    def invert(self, points: np.ndarray) -> np.ndarray:
        """Normalised points ``[..., 3]`` -> source coordinates ``[..., 3]`` (float64)."""
        return np.asarray(points, dtype=np.float64) / self.scale + self.center

    def apply_seq(self, seq: MeshSequence) -> MeshSequence:
        return _with_vertices(seq, self.apply(seq.vertices))

    def invert_seq(self, seq: MeshSequence) -> MeshSequence:
        return _with_vertices(seq, self.invert(seq.vertices))

    def to_json(self) -> dict:
        return {"center": [float(x) for x in self.center], "scale": float(self.scale)}

    @classmethod
    def from_json(cls, d: dict) -> NormTransform:
        return cls(np.asarray(d["center"], dtype=np.float64), float(d["scale"]))


def _with_vertices(seq: MeshSequence, verts: np.ndarray) -> MeshSequence:
    return MeshSequence(verts, seq.faces, seq.times, seq.uvs, seq.colors, seq.name,
                        dict(seq.meta))


def fit_transform(first_frame: np.ndarray, extent: float = DNF_EXTENT) -> NormTransform:
    """Transform putting ``first_frame`` ``[V, 3]``'s bbox centre at 0, largest side = extent."""
    if not extent > 0:
        raise ValueError(f"extent must be positive, got {extent}")
    p = np.asarray(first_frame, dtype=np.float64)
    lo, hi = p.min(axis=0), p.max(axis=0)
    side = float((hi - lo).max())
    scale = extent / side if side > 0 else 1.0
    return NormTransform(center=(lo + hi) / 2, scale=scale)


def normalize(seq: MeshSequence, extent: float = DNF_EXTENT) -> tuple[MeshSequence, NormTransform]:
    """Return (normalised sequence, transform); ``transform.invert_seq`` restores the source."""
    tf = fit_transform(seq.vertices[0], extent)
    return tf.apply_seq(seq), tf
