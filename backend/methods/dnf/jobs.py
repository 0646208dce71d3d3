"""Job kinds of DNF part 1 (registered in ``backend/jobs/registry.py``):

- ``dnf.reconstruct``: decode a training instance of a model into a mesh sequence at any
  frame rate (one marching-cubes pass, then the motion field at every requested time);
- ``dnf.fit_shape``: fit the shape vector of an input mesh with the dictionary frozen and
  return its decoded canonical mesh (one frame) plus the vector (``shape_vector.safetensors``
  and ``.json``), which part 2 animates.

Both take ``model``: the name of a DNF model of the server (``hello``'s ``models``), never a
path. The kind specs are built per server (:func:`reconstruct_kind`, :func:`fit_shape_kind`)
from its models: ``model``'s choices are their names, ``stage``'s the stages they hold. A
worker resolves the name through ``ctx.model_folder`` and loads the model with its SHA-256
checked; errors name the model, not its folder.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from backend.jobs.api import JobContext, mesh_result
from backend.models.registry import ModelInfo
from shared.errors import ParamError
from shared.manifest import Manifest
from shared.meshseq import MeshSequence
from shared.params import InputSpec, KindSpec, ParamSpec

from .model_files import STAGE_ORDER

log = logging.getLogger("anim4d.dnf")
RECONSTRUCT = "dnf.reconstruct"
FIT_SHAPE = "dnf.fit_shape"
_RES = ParamSpec("resolution", "int", 96, help="Marching-cubes grid", min=16, max=512)
# (name, stages held) of each model a spec offers
Offer = Sequence[tuple[str, Sequence[str]]]


def _offer(models: Sequence[ModelInfo]) -> list[tuple[str, tuple[str, ...]]]:
    return [(m.name, tuple(m.details.get("stages", ()))) for m in models]


def _model_param(offer: Offer) -> ParamSpec:
    names = tuple(n for n, _ in offer)
    return ParamSpec("model", "enum", names[0], choices=names,
                     help="DNF model (the server's models: `anim4d kinds`)")


def _stage_param(offer: Offer) -> ParamSpec:
    held = {s for _, stages in offer for s in stages}
    choices = tuple(s for s in STAGE_ORDER if s in held)
    per = "; ".join(f"{n}: {', '.join(stages)}" for n, stages in offer)
    return ParamSpec("stage", "enum", "d" if "d" in choices else choices[-1], choices=choices,
                     help=f"Representation stage the model holds ({per})")


def _reconstruct(offer: Offer) -> KindSpec:
    return KindSpec(
        name=RECONSTRUCT, title="DNF reconstruct",
        description="Decode a training instance of a DNF model: one canonical mesh moved by "
                    "the motion field at any frame rate",
        representation="mesh_sequence",
        params=(_model_param(offer),
                ParamSpec("instance", "str", "", help="Instance name; empty = the first"),
                _stage_param(offer),
                ParamSpec("fps", "float", 30.0, help="Frames per second", min=1.0, max=240.0),
                _RES),
        section="DNF",
    )


def _fit_shape(offer: Offer) -> KindSpec:
    return KindSpec(
        name=FIT_SHAPE, title="DNF fit shape",
        description="Fit DNF shape coefficients to a mesh (dictionary frozen) and decode it",
        representation="mesh_sequence",
        params=(_model_param(offer),
                ParamSpec("iters", "int", 0, help="Steps; 0 = the preset's", min=0,
                          max=100_000),
                _RES),
        inputs=(InputSpec("mesh", (".glb", ".gltf", ".obj", ".ply", ".stl", ".off", ".npz",
                                   ".anime"), help="The mesh to fit (rest pose / frame 0)"),),
        section="DNF",
    )


def reconstruct_kind(models: Sequence[ModelInfo]) -> KindSpec:
    """``dnf.reconstruct`` offering ``models`` (at least one DNF model)."""
    return _reconstruct(_offer(models))


def fit_shape_kind(models: Sequence[ModelInfo]) -> KindSpec:
    """``dnf.fit_shape`` offering ``models`` (at least one DNF model)."""
    return _fit_shape(_offer(models))


def _worker_spec(build, ctx: JobContext) -> KindSpec:
    """The spec a worker validates with: the models it was given, every stage (the stage is
    checked against the loaded model, which knows what it holds)."""
    if not ctx.models:
        raise ParamError("this server has no DNF model", "unknown_model")
    return build([(name, STAGE_ORDER) for name in ctx.models])


def _model(ctx: JobContext, params: dict):
    """The model, kept loaded between the jobs of a process that runs many (a resident Ray
    actor; see :mod:`.resident`). The jobs only read it (fit_shape optimises its own vector)."""
    from .resident import load_model

    name = params["model"]
    folder = ctx.model_folder(name)
    ctx.progress("load", 0.0, f"Loading DNF model {name!r}", force=True)
    log.info("loading DNF model %r from %s", name, folder)
    return load_model(folder, label=name)


def run_reconstruct(ctx: JobContext, params: dict, inputs: list[Path]) -> Manifest:
    from .decode import decode_instance

    params = _worker_spec(_reconstruct, ctx).validate_params(params)
    if inputs:
        raise ParamError(f"{RECONSTRUCT}: takes no input files, got {len(inputs)}")
    model = _model(ctx, params)
    if params["stage"] not in model.stages:
        raise ParamError(f"{RECONSTRUCT}: model {params['model']!r} has no stage "
                         f"{params['stage']!r}; it holds {', '.join(model.stages)}")
    try:
        idx = model.index(params["instance"]) if params["instance"] else 0
    except KeyError as err:
        raise ParamError(f"{RECONSTRUCT}: {err.args[0]}") from None
    span = model.instances[idx]["times"][-1]
    times = np.arange(0.0, span + 1e-9, 1.0 / params["fps"])
    ctx.progress("decode", 0.2, f"Decoding {model.instances[idx]['name']}", force=True)
    seq = decode_instance(model, idx, params["stage"], times, params["resolution"],
                          source_units=True)
    ctx.progress("save", 0.9, f"Saving {seq.frame_count} frames", force=True)
    manifest = mesh_result(ctx, seq, RECONSTRUCT, params, checkpoint_sha256=model.sha256,
                           extra={"instance": model.instances[idx]["name"]})
    ctx.progress("done", 1.0, f"{seq.frame_count} frames, {seq.vertex_count} vertices")
    return manifest


def run_fit_shape(ctx: JobContext, params: dict, inputs: list[Path]) -> Manifest:
    from .decode import marching_cubes, sdf_grid
    from .fit_shape import fit_shape_file

    params = _worker_spec(_fit_shape, ctx).validate_params(params)
    if len(inputs) != 1:
        raise ParamError(f"{FIT_SHAPE}: expects exactly one mesh file, got {len(inputs)}")
    model = _model(ctx, params)

    def report(stage: str, fraction: float, message: str) -> None:
        ctx.progress(stage, 0.1 + 0.75 * fraction, message)

    stage = "d" if "d" in model.stages else model.stages[-1]
    fit = fit_shape_file(model, Path(inputs[0]), stage=stage, iters=params["iters"],
                         report=report)
    ctx.progress("decode", 0.9, "Marching cubes", force=True)
    verts, faces = marching_cubes(sdf_grid(model.shape_rep(fit.stage), fit.vector,
                                           params["resolution"]))
    verts = verts / fit.scale + np.asarray(fit.center)[None]
    seq = MeshSequence(verts[None], faces, np.zeros(1), name=Path(inputs[0]).stem)
    fit.save(ctx.out_dir / "shape_vector")
    manifest = mesh_result(ctx, seq, FIT_SHAPE, params, checkpoint_sha256=model.sha256,
                           extra={"loss_before": fit.loss_before, "loss_after": fit.loss_after,
                                  "stage": fit.stage})
    manifest.files["shape_vector"] = "shape_vector.safetensors"
    manifest.files["shape_vector_meta"] = "shape_vector.json"
    ctx.progress("done", 1.0, f"SDF loss {fit.loss_before:.4f} -> {fit.loss_after:.4f}")
    return manifest
