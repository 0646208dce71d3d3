"""Job kinds of DNF part 1 (registered in ``backend/jobs/registry.py``):

- ``dnf.reconstruct``: decode a training instance of a checkpoint into a mesh sequence at any
  frame rate (one marching-cubes pass, then the motion field at every requested time);
- ``dnf.fit_shape``: fit the shape vector of an input mesh with the dictionary frozen and
  return its decoded canonical mesh (one frame) plus the vector (``shape_vector.safetensors``
  and ``.json``), which part 2 animates.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from backend.jobs.api import JobContext, mesh_result
from shared.errors import ParamError
from shared.manifest import Manifest
from shared.meshseq import MeshSequence
from shared.params import InputSpec, KindSpec, ParamSpec

SHIPPED = Path(__file__).resolve().parent / "checkpoints" / "tiny"
_CKPT = ParamSpec("checkpoint", "str", "", help="Checkpoint folder; empty = the shipped tiny one")
_STAGE = ParamSpec("stage", "enum", "d", help="Representation stage", choices=("a", "b", "c", "d"))
_RES = ParamSpec("resolution", "int", 96, help="Marching-cubes grid", min=16, max=512)

RECONSTRUCT_KIND = KindSpec(
    name="dnf.reconstruct", title="DNF reconstruct",
    description="Decode a training instance of a DNF checkpoint: one canonical mesh moved by "
                "the motion field at any frame rate",
    representation="mesh_sequence",
    params=(ParamSpec("instance", "str", "", help="Instance name; empty = the first"),
            _STAGE, ParamSpec("fps", "float", 30.0, help="Frames per second", min=1.0,
                              max=240.0), _RES, _CKPT),
    section="DNF",
)

FIT_SHAPE_KIND = KindSpec(
    name="dnf.fit_shape", title="DNF fit shape",
    description="Fit DNF shape coefficients to a mesh (dictionary frozen) and decode it",
    representation="mesh_sequence",
    params=(ParamSpec("iters", "int", 0, help="Steps; 0 = the preset's", min=0, max=100_000),
            _RES, _CKPT),
    inputs=(InputSpec("mesh", (".glb", ".gltf", ".obj", ".ply", ".stl", ".off", ".npz",
                               ".anime"), help="The mesh to fit (rest pose / frame 0)"),),
    section="DNF",
)


def _model(ctx: JobContext, params: dict):
    from .checkpoint import load_checkpoint

    ctx.progress("load", 0.0, "Loading the DNF checkpoint", force=True)
    return load_checkpoint(_folder(params))


def _folder(params: dict) -> Path:
    return Path(params["checkpoint"]) if params["checkpoint"] else SHIPPED


def _checkpoint_sha256(params: dict) -> str:
    """SHA-256 of the checkpoint's weights, recorded in every result's manifest."""
    return hashlib.sha256((_folder(params) / "model.safetensors").read_bytes()).hexdigest()


def run_reconstruct(ctx: JobContext, params: dict, inputs: list[Path]) -> Manifest:
    from .decode import decode_instance

    params = RECONSTRUCT_KIND.validate_params(params)
    if inputs:
        raise ParamError(f"{RECONSTRUCT_KIND.name}: takes no input files, got {len(inputs)}")
    model = _model(ctx, params)
    if params["stage"] not in model.stages:
        raise ParamError(f"{RECONSTRUCT_KIND.name}: the checkpoint has no stage "
                         f"{params['stage']!r}; it has {', '.join(model.stages)}")
    try:
        idx = model.index(params["instance"]) if params["instance"] else 0
    except KeyError as err:
        raise ParamError(f"{RECONSTRUCT_KIND.name}: {err.args[0]}") from None
    span = model.instances[idx]["times"][-1]
    times = np.arange(0.0, span + 1e-9, 1.0 / params["fps"])
    ctx.progress("decode", 0.2, f"Decoding {model.instances[idx]['name']}", force=True)
    seq = decode_instance(model, idx, params["stage"], times, params["resolution"],
                          source_units=True)
    ctx.progress("save", 0.9, f"Saving {seq.frame_count} frames", force=True)
    manifest = mesh_result(ctx, seq, RECONSTRUCT_KIND.name, params,
                           checkpoint_sha256=_checkpoint_sha256(params),
                           extra={"instance": model.instances[idx]["name"]})
    ctx.progress("done", 1.0, f"{seq.frame_count} frames, {seq.vertex_count} vertices")
    return manifest


def run_fit_shape(ctx: JobContext, params: dict, inputs: list[Path]) -> Manifest:
    from .decode import marching_cubes, sdf_grid
    from .fit_shape import fit_shape_file

    params = FIT_SHAPE_KIND.validate_params(params)
    if len(inputs) != 1:
        raise ParamError(f"{FIT_SHAPE_KIND.name}: expects exactly one mesh file, "
                         f"got {len(inputs)}")
    model = _model(ctx, params)

    def report(stage: str, fraction: float, message: str) -> None:
        ctx.progress(stage, 0.1 + 0.75 * fraction, message)

    fit = fit_shape_file(model, Path(inputs[0]), iters=params["iters"], report=report)
    ctx.progress("decode", 0.9, "Marching cubes", force=True)
    verts, faces = marching_cubes(sdf_grid(model.shape_rep(fit.stage), fit.vector,
                                           params["resolution"]))
    verts = verts / fit.scale + np.asarray(fit.center)[None]
    seq = MeshSequence(verts[None], faces, np.zeros(1), name=Path(inputs[0]).stem)
    fit.save(ctx.out_dir / "shape_vector")
    manifest = mesh_result(ctx, seq, FIT_SHAPE_KIND.name, params,
                           checkpoint_sha256=_checkpoint_sha256(params),
                           extra={"loss_before": fit.loss_before, "loss_after": fit.loss_after,
                                  "stage": fit.stage})
    manifest.files["shape_vector"] = "shape_vector.safetensors"
    manifest.files["shape_vector_meta"] = "shape_vector.json"
    ctx.progress("done", 1.0, f"SDF loss {fit.loss_before:.4f} -> {fit.loss_after:.4f}")
    return manifest
