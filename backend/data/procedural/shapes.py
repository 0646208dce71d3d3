"""Closed parametric part meshes: lofted tubes with elliptic sections and rounded caps.

Every part is a closed, consistently wound (outward normals) triangle mesh: ``rings`` elliptic
cross-sections along a polyline, closed by one pole vertex at each end. An ellipsoid is a loft
whose radii follow a half-circle profile. The ring ellipse's first axis follows ``side`` (made
perpendicular to the tube), its second axis is ``tangent x side``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class PartMesh:
    """``verts`` ``[V, 3]``, ``faces`` ``[F, 3]`` and ``s`` ``[V]``: each vertex's arclength
    along the part's centreline (poles get the ends, extended by their cap length)."""

    verts: np.ndarray
    faces: np.ndarray
    s: np.ndarray


def _resample(points: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``count`` points evenly spaced along a polyline: (points ``[N, 3]``, arclength ``[N]``,
    unit tangents ``[N, 3]``)."""
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    acc = np.concatenate([[0.0], np.cumsum(seg)])
    s = np.linspace(0.0, acc[-1], count)
    out = np.stack([np.interp(s, acc, points[:, k]) for k in range(3)], axis=1)
    tan = np.gradient(out, axis=0)
    tan /= np.maximum(np.linalg.norm(tan, axis=1, keepdims=True), 1e-12)
    return out, s, tan


def loft(
    path: np.ndarray, radius_a: np.ndarray | float, radius_b: np.ndarray | float,
    rings: int = 12, segments: int = 12, side: np.ndarray | None = None,
    cap: float = 0.6,
) -> PartMesh:
    """Closed tube along ``path`` ``[P, 3]`` (P >= 2).

    Args:
        radius_a, radius_b: half-axes of the section, scalars or ``[rings]`` arrays (along
            ``side`` and along ``tangent x side``).
        rings: number of cross-sections (>= 2); segments: vertices per section (>= 3).
        side: ``[3]`` reference direction for the first half-axis (default +X).
        cap: each pole sits ``cap * mean end radius`` beyond the end (0 = flat cap).
    """
    path = np.asarray(path, dtype=np.float64)
    centers, s, tan = _resample(path, rings)
    ra = np.broadcast_to(np.asarray(radius_a, dtype=np.float64), (rings,))
    rb = np.broadcast_to(np.asarray(radius_b, dtype=np.float64), (rings,))
    ref = np.array([1.0, 0.0, 0.0]) if side is None else np.asarray(side, dtype=np.float64)
    u = ref[None] - np.sum(ref[None] * tan, axis=1, keepdims=True) * tan
    bad = np.linalg.norm(u, axis=1) < 1e-6
    if np.any(bad):  # tangent parallel to side: fall back to another axis
        alt = np.where(abs(tan[bad, 1:2]) < 0.9, [[0.0, 1.0, 0.0]], [[0.0, 0.0, 1.0]])
        u[bad] = alt - np.sum(alt * tan[bad], axis=1, keepdims=True) * tan[bad]
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    v = np.cross(tan, u)
    ang = np.linspace(0.0, 2 * np.pi, segments, endpoint=False)
    ring_pts = (
        centers[:, None]
        + (ra[:, None, None] * np.cos(ang)[None, :, None]) * u[:, None]
        + (rb[:, None, None] * np.sin(ang)[None, :, None]) * v[:, None]
    )
    cap0 = cap * 0.5 * (ra[0] + rb[0])
    cap1 = cap * 0.5 * (ra[-1] + rb[-1])
    start = centers[0] - tan[0] * cap0
    end = centers[-1] + tan[-1] * cap1
    verts = np.concatenate([ring_pts.reshape(-1, 3), start[None], end[None]])
    i = np.arange(rings - 1)[:, None]
    j = np.arange(segments)[None, :]
    a = i * segments + j
    b = i * segments + (j + 1) % segments
    c = a + segments
    d = b + segments
    # (u, v, tangent) is right-handed, so (a, b, d) and (a, d, c) face outward.
    side_faces = np.concatenate([np.stack([a, b, d], -1), np.stack([a, d, c], -1)], 0)
    side_faces = side_faces.reshape(-1, 3)
    ps, pe = rings * segments, rings * segments + 1
    jj = np.arange(segments)
    last = (rings - 1) * segments
    cap_start = np.stack([np.full(segments, ps), (jj + 1) % segments, jj], -1)
    cap_end = np.stack([np.full(segments, pe), last + jj, last + (jj + 1) % segments], -1)
    faces = np.concatenate([side_faces, cap_start, cap_end]).astype(np.int64)
    svals = np.concatenate([np.repeat(s, segments), [-cap0, s[-1] + cap1]])
    return PartMesh(verts, faces, svals)


def ellipsoid(
    center: np.ndarray, axis: np.ndarray, half_length: float, radius_a: float, radius_b: float,
    rings: int = 10, segments: int = 12, side: np.ndarray | None = None,
) -> PartMesh:
    """Closed ellipsoid centred at ``center`` with its long axis along ``axis`` (poles at
    ``center +- half_length * axis``)."""
    center = np.asarray(center, dtype=np.float64)
    axis = np.asarray(axis, dtype=np.float64)
    axis = axis / np.linalg.norm(axis)
    # Ring i sits at angle theta_i in (0, pi); poles at theta = 0, pi (the loft's caps).
    theta = np.linspace(0.0, np.pi, rings + 2)[1:-1]
    x = -np.cos(theta) * half_length
    prof = np.sin(theta)
    path = center[None] + x[:, None] * axis[None]
    mesh = loft(path, radius_a * prof, radius_b * prof, rings, segments, side, cap=0.0)
    # Move the poles to the exact tips (loft puts them on the end rings' centres).
    n = rings * segments
    mesh.verts[n] = center - axis * half_length
    mesh.verts[n + 1] = center + axis * half_length
    mesh.s = np.concatenate([mesh.s[:n] + x[0] + half_length, [0.0, 2 * half_length]])
    return mesh

