"""``video.mesh``: a finished ``video.to4d`` result as a mesh sequence (one topology).

The mesh is extracted once from the trained canonical Gaussians and moved with them
(:mod:`.mesh`) at the source's frame times, with the Gaussians' base colours as vertex colours.
It takes the source's trained state (``ds4d_state.pt``), so no training runs again.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from backend.jobs.api import JobContext, mesh_result
from shared.errors import ParamError
from shared.manifest import Manifest
from shared.meshseq import MeshSequence
from shared.params import KindSpec, ParamSpec

MESH = "video.mesh"

MESH_KIND = KindSpec(
    name=MESH, title="4D Gaussians to mesh",
    description="A finished video.to4d result as a mesh sequence: extracted once from the "
                "Gaussians' density, moved with them, coloured by them (no training)",
    representation="mesh_sequence",
    params=(
        ParamSpec("source", "job", "", help="The finished video.to4d job"),
        ParamSpec("resolution", "int", 96, help="Density grid cells along the longest side",
                  min=16, max=512),
        ParamSpec("level", "float", 0.5, help="Density of the surface (an opaque Gaussian's "
                  "centre is 1); lower: fuller", min=0.01, max=5.0),
        ParamSpec("min_piece", "float", 0.01, help="Drop pieces under this share of the area; "
                  "0 keeps all", min=0.0, max=0.5),
    ),
    section="DS4D",
)


def run_mesh(ctx: JobContext, params: dict, inputs: list[Path]) -> Manifest:
    from .jobs import open_trained
    from .mesh import MeshConfig, mesh_frames

    params = MESH_KIND.validate_params(params)
    if inputs:
        raise ParamError(f"{MESH}: takes no input files, got {len(inputs)}")
    model, meta, _ = open_trained(ctx, params["source"], MESH)
    seconds = np.asarray(meta["frame_seconds"], np.float64)
    ctx.progress("evaluate", 0.2, f"Moving the Gaussians to {len(seconds)} frames", force=True)
    frames = model.frames(None, [float(t) for t in meta["clip_times"]])
    ctx.progress("mesh", 0.5, "Density grid, marching cubes, vertex weights", force=True)
    cfg = MeshConfig(resolution=params["resolution"], level=params["level"],
                     min_piece=params["min_piece"])
    verts, faces, colors = mesh_frames(model.gaussians, frames, cfg)
    seq = MeshSequence(verts, faces, seconds, colors=colors, name="ds4d_mesh")
    ctx.progress("save", 0.95, f"{len(verts[0])} vertices, {len(faces)} faces", force=True)
    return mesh_result(ctx, seq, MESH, params, units="source",
                       extra={"source_job": params["source"],
                              "gaussians": int(model.gaussians.count)})
