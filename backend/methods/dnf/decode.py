"""Coefficients -> mesh sequence: SDF grid, marching cubes once, motion field at any time.

The canonical mesh comes from one marching-cubes pass (PyMCubes) over the SDF on a
``resolution^3`` grid spanning ``[-bound, bound]^3``; every requested time displaces those same
vertices, so all frames share one topology. Between training frames the per-frame motion
vectors (pose code and coefficients) are interpolated linearly, so time is continuous; times
outside the instance's frame range are clamped to it.
"""

from __future__ import annotations

import numpy as np
import torch

from shared.errors import FormatError
from shared.meshseq import MeshSequence

from .shared_points import eval_shared_points
from .train import FieldRep


def sdf_grid(rep: FieldRep, shape_vec: torch.Tensor, resolution: int,
             bound: float = 1.0) -> np.ndarray:
    """SDF ``[R, R, R]`` (index ``[i, j, k]`` = point ``(x_i, y_j, z_k)``) of one instance."""
    axis = torch.linspace(-bound, bound, resolution)
    grid = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1).reshape(-1, 3)
    return query_sdf(rep, shape_vec, grid).reshape(resolution, resolution, resolution)


def query_sdf(rep: FieldRep, shape_vec: torch.Tensor,
              points: torch.Tensor | np.ndarray) -> np.ndarray:
    """SDF ``[P]`` at ``points`` ``[P, 3]`` for one shape vector ``[D]`` (in chunks,
    :func:`.shared_points.eval_shared_points`)."""
    pts = torch.as_tensor(points, dtype=torch.float32)
    return eval_shared_points(rep, pts, shape_vec.reshape(1, -1).float())[0, :, 0].numpy()


def marching_cubes(grid: np.ndarray, bound: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Zero level set of ``grid`` -> (vertices ``[V, 3]`` float32 in ``[-bound, bound]^3``, or up
    to one grid step beyond where the shape reaches the border and is closed there;
    outward-oriented faces ``[F, 3]`` int32). Empty arrays when the SDF does not cross 0."""
    try:
        import mcubes
    except ImportError as err:
        raise ImportError("DNF decoding needs PyMCubes: pip install PyMCubes") from err
    if not (grid.min() < 0 < grid.max()):
        return np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int32)
    # One voxel of "outside" around the grid: a shape that reaches the grid's border is closed
    # there (half a voxel beyond it) instead of left open; elsewhere nothing changes.
    padded = np.pad(np.asarray(grid, dtype=np.float64), 1, mode="constant",
                    constant_values=float(grid.max()))
    verts, faces = mcubes.marching_cubes(padded, 0.0)
    r = grid.shape[0]
    verts = (verts - 1.0) * (2 * bound / (r - 1)) - bound
    faces = faces.astype(np.int32)
    a, b, c = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    if np.einsum("ij,ij->i", a, np.cross(b, c)).sum() < 0:  # signed volume: make it outward
        faces = faces[:, [0, 2, 1]]
    return verts.astype(np.float32), faces


def interpolate_vectors(frame_times: np.ndarray, vecs: torch.Tensor,
                        times: np.ndarray) -> torch.Tensor:
    """Per-frame vectors ``[T, D]`` at ``frame_times`` ``[T]`` -> ``[Q, D]`` at ``times`` ``[Q]``
    (linear between neighbouring frames, clamped outside)."""
    ft = np.asarray(frame_times, dtype=np.float64)
    t = np.clip(np.asarray(times, dtype=np.float64), ft[0], ft[-1])
    hi = np.clip(np.searchsorted(ft, t, side="right"), 1, len(ft) - 1)
    lo = hi - 1
    span = np.maximum(ft[hi] - ft[lo], 1e-12)
    w = torch.as_tensor(np.clip((t - ft[lo]) / span, 0.0, 1.0), dtype=vecs.dtype)[:, None]
    if len(ft) == 1:
        return vecs[[0] * len(t)]
    return vecs[lo] * (1 - w) + vecs[hi] * w


def displace(motion_rep: FieldRep, verts: np.ndarray, shape_code: torch.Tensor,
             motion_vecs: torch.Tensor) -> np.ndarray:
    """Canonical ``verts`` ``[V, 3]`` moved by each of ``motion_vecs`` ``[Q, D]``
    -> ``[Q, V, 3]``."""
    v = torch.as_tensor(verts, dtype=torch.float32)
    q = motion_vecs.shape[0]
    cond = shape_code.reshape(1, -1).float().expand(q, -1)
    # the same points for every frame: dense per-frame weights (.shared_points)
    return (v[None] + eval_shared_points(motion_rep, v, motion_vecs, cond)).numpy()


def decode(
    model, stage: str, shape_vec: torch.Tensor, motion_vecs: torch.Tensor,
    frame_times: np.ndarray, times: np.ndarray | None = None, resolution: int = 64,
    name: str = "dnf",
) -> MeshSequence:
    """One instance's vectors (shape ``[D_s]``, motion ``[T, D_m]`` at ``frame_times``) ->
    normalised :class:`MeshSequence` at ``times`` (default: the frame times)."""
    frame_times = np.asarray(frame_times, dtype=np.float64)
    times = frame_times if times is None else np.asarray(times, dtype=np.float64)
    verts, faces = marching_cubes(sdf_grid(model.shape_rep(stage), shape_vec, resolution))
    if faces.shape[0] == 0:
        raise FormatError(f"{name}: the decoded SDF has no zero crossing (no surface) at "
                          f"stage {stage}")
    vecs = interpolate_vectors(frame_times, motion_vecs, times)
    moved = displace(model.motion_rep(stage), verts, model.shape_code(stage, shape_vec), vecs)
    return MeshSequence(moved, faces, times, name=name,
                        meta={"stage": stage, "resolution": resolution})


def decode_instance(model, index: int, stage: str = "d", times: np.ndarray | None = None,
                    resolution: int = 64, source_units: bool = False) -> MeshSequence:
    """Decode training instance ``index`` (see :func:`decode`); ``source_units`` undoes the
    normalisation with the instance's stored centre and scale."""
    inst = model.instances[index]
    seq = decode(model, stage, model.shape_vecs[stage][index], model.motion_vecs[stage][index],
                 np.asarray(inst["times"]), times, resolution, inst["name"])
    if source_units:
        v = seq.vertices / inst["scale"] + np.asarray(inst["center"])[None, None]
        seq = MeshSequence(v, seq.faces, seq.times, name=seq.name, meta=seq.meta)
    return seq
