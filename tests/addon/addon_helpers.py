"""Test helpers: write small result folders with ``shared``'s own writers, read evaluated data."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from shared.gaussians import GaussianSequence, write_gaussian_result
from shared.gsply import GaussianFrame
from shared.manifest import Manifest, write_manifest
from shared.meshseq import MeshSequence, save_npz


def wavy_sequence(frames: int = 12, vertices: int = 40, fps: float = 12.0,
                  seed: int = 0) -> MeshSequence:
    """A deforming triangle strip whose every frame differs (Y-up, source units)."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(vertices, 3)).astype(np.float32)
    t = np.arange(frames) / fps
    wave = np.sin(2.0 * t[:, None, None] + base[None, :, :1] * 3.0)
    verts = base[None] + 0.3 * wave * np.array([0.2, 1.0, 0.5], np.float32)
    faces = np.array([[i, i + 1, i + 2] for i in range(vertices - 2)], np.int32)
    uvs = rng.random((vertices, 2)).astype(np.float32)
    colors = rng.random((vertices, 4)).astype(np.float32)
    return MeshSequence(verts, faces, t, uvs, colors, name="wavy")


def write_mesh_result(folder: Path, frames: int = 12, vertices: int = 40, fps: float = 12.0,
                      seq: MeshSequence | None = None, job_id: str = "job-mesh-0001",
                      kind: str = "creature.procedural") -> Path:
    """A mesh result folder (``sequence.npz`` + ``manifest.json``) written by ``shared``."""
    folder.mkdir(parents=True, exist_ok=True)
    seq = seq or wavy_sequence(frames, vertices, fps)
    save_npz(seq, folder / "sequence.npz")
    write_manifest(folder, Manifest(
        kind=kind, representation="mesh_sequence", frame_times=[float(x) for x in seq.times],
        fps=fps, files={"sequence": "sequence.npz"}, params={"legs": 4, "seed": 7},
        job_id=job_id, seed=7,
        counts={"frames": seq.frame_count, "vertices": seq.vertex_count,
                "faces": int(seq.faces.shape[0])},
    ))
    return folder


def gaussian_sequence(frames: int = 3, count: int = 150, seed: int = 0) -> GaussianSequence:
    """Splats that move, grow and become more opaque from frame to frame."""
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(count, 3)) * 0.35
    quats = rng.normal(size=(count, 4))
    rgb = rng.random((count, 3)) * 0.5 + 0.25
    out = []
    for i in range(frames):
        out.append(GaussianFrame.from_activated(
            means + np.array([0.15 * i, 0.0, 0.0]), quats, np.full((count, 3), 0.04 * (1 + i)),
            np.full(count, 0.25 + 0.3 * i), rgb))
    return GaussianSequence(out, np.arange(frames) / 8.0)


def write_gaussian_folder(folder: Path, frames: int = 3, count: int = 150,
                          correspond: bool = True) -> Path:
    """A Gaussian result folder written by ``shared.gaussians.write_gaussian_result``."""
    write_gaussian_result(folder, gaussian_sequence(frames, count), kind="video.ds4d",
                          job_id="job-gauss-0001", fps=8.0,
                          extra={"gaussians_correspond": correspond})
    return folder


def y_up_to_z_up(points: np.ndarray) -> np.ndarray:
    """The axis map written out independently of the add-on: (x, y, z) -> (x, -z, y)."""
    p = np.asarray(points, dtype=np.float64)
    return np.stack([p[..., 0], -p[..., 2], p[..., 1]], axis=-1)


def evaluated_vertices(bpy, obj) -> np.ndarray:
    """World-independent evaluated vertex positions ``[V, 3]`` of ``obj`` at the current frame."""
    dg = bpy.context.evaluated_depsgraph_get()
    ev = obj.evaluated_get(dg)
    mesh = ev.to_mesh()
    try:
        co = np.empty(len(mesh.vertices) * 3, np.float32)
        mesh.vertices.foreach_get("co", co)
    finally:
        ev.to_mesh_clear()
    return co.reshape(-1, 3).astype(np.float64)
