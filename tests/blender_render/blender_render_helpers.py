"""Helpers for the headless render tests: small result folders to render (a deforming mesh, the
add-on tests' wavy strip, and a blob of Gaussians that moves and turns, both written by
``shared``'s own writers), ``requires_bpy`` and :func:`render_processes`.

Renders need the ``bpy`` module; tests that run one skip cleanly without it (``requires_bpy``:
found with ``find_spec``, never imported here, so the test process stays free of Blender)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
from support import requires_bpy  # noqa: F401 - re-exported for the render tests

from shared.gaussians import GaussianSequence, write_gaussian_result
from shared.gsply import GaussianFrame

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "addon"))
from addon_helpers import write_mesh_result  # noqa: E402

__all__ = ["write_mesh_result", "write_blob_result", "blob_sequence", "requires_bpy",
           "render_processes"]



def blob_sequence(frames: int = 8, count: int = 400, fps: float = 8.0,
                  seed: int = 3) -> GaussianSequence:
    """``count`` opaque splats on an ellipsoid shell (Y-up) that slides along x and turns about
    y from frame to frame; splat ``k`` is the same Gaussian in every frame."""
    rng = np.random.default_rng(seed)
    d = rng.normal(size=(count, 3))
    shell = d / np.linalg.norm(d, axis=1, keepdims=True) * np.array([0.6, 0.4, 0.3])
    rgb = np.clip(0.5 + 0.4 * d / 3.0, 0.05, 0.95)
    quats = rng.normal(size=(count, 4))
    out = []
    for i in range(frames):
        a = 0.35 * i
        rot = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
        means = shell @ rot.T + np.array([0.08 * i, 0.5, 0.0])
        out.append(GaussianFrame.from_activated(means, quats, np.full((count, 3), 0.07),
                                                np.full(count, 0.95), rgb))
    return GaussianSequence(out, np.arange(frames) / fps)


def write_blob_result(folder: Path, frames: int = 8, count: int = 400, fps: float = 8.0
                      ) -> Path:
    write_gaussian_result(folder, blob_sequence(frames, count, fps), kind="video.to4d",
                          job_id="job-blob-0001", fps=fps,
                          extra={"gaussians_correspond": True})
    return folder


def render_processes(parent: int | None = None) -> list[int]:
    """Pids of render subprocesses still alive (of ``parent`` only, if given)."""
    out = []
    for entry in Path("/proc").iterdir():
        try:
            cmd = (entry / "cmdline").read_bytes().split(b"\0")
            state, ppid = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:2]
        except (OSError, IndexError, ValueError):
            continue
        if (b"backend.blender_render" in cmd and state != "Z" and int(entry.name) != os.getpid()
                and parent in (None, int(ppid))):
            out.append(int(entry.name))
    return out
