"""Exact retiming of the data module's results (protocol 1.1, :mod:`shared.resample`).

- ``creature.procedural_resample``: a finished ``creature.procedural`` job posed again at any
  times ``t >= 0`` (the gait is a function of time, periodic: nothing to interpolate), exactly as
  ``creature.procedural`` poses it at its own frames;
- ``sequence.resample``: a finished ``sequence.bake`` of a glTF clip sampled again from the glTF
  (kept on the server beside the result, never sent with it) at times within the clip
  (``0`` to its duration), through the same skinning, morph and node code as the bake.

Both return the source's topology and vertex order (faces, UVs, colours unchanged). ``times``
are seconds of the source, increasing; ``fps`` > 0 plays the frames at that rate (frame ``i`` at
``i / fps``: times spaced by ``speed / fps`` give slow motion), 0 keeps the times as they are.
The result says in ``manifest.resample`` which job it came from and the source second of each
frame, so it can itself be resampled again (from the source).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from backend.jobs.api import JobContext, mesh_result
from shared.errors import JobError, ParamError
from shared.manifest import Manifest
from shared.meshseq import MeshSequence
from shared.params import KindSpec, ParamSpec
from shared.resample import check_times, manifest_field, output_frame_times

PROCEDURAL_RESAMPLE = "creature.procedural_resample"
SEQUENCE_RESAMPLE = "sequence.resample"
#: extra key of a ``sequence.bake`` manifest naming its copy of the baked file (server only)
BAKE_SOURCE_KEY = "bake_source"


def _params(what: str, times_help: str) -> tuple[ParamSpec, ...]:
    return (
        ParamSpec("source", "job", "", help=f"The finished {what} job"),
        ParamSpec("times", "floats", (0.0,), help=times_help, min=0.0, max=1e6,
                  max_items=10_000),
        ParamSpec("fps", "float", 0.0, help="Play the frames at this rate (frame i at i / fps);"
                  " 0 = at the times given, from the first", min=0.0, max=1000.0),
    )


PROCEDURAL_RESAMPLE_KIND = KindSpec(
    name=PROCEDURAL_RESAMPLE, title="Resample procedural creature",
    description="Pose a finished procedural creature again at exact times (any t >= 0: the "
                "gait is periodic), same mesh and vertex order",
    representation="mesh_sequence",
    params=_params("creature.procedural", "Seconds of the source, increasing, any t >= 0"),
    section="Procedural creature", resample_kind=PROCEDURAL_RESAMPLE,
)
SEQUENCE_RESAMPLE_KIND = KindSpec(
    name=SEQUENCE_RESAMPLE, title="Resample baked sequence",
    description="Sample a finished glTF bake again from its glTF at exact times (0 to the "
                "clip's duration), same mesh and vertex order",
    representation="mesh_sequence",
    params=_params("sequence.bake (of a .glb/.gltf)", "Seconds from the clip's start, "
                   "increasing, within the clip"),
    section="Bake sequence", resample_kind=SEQUENCE_RESAMPLE,
)


def keep_bake_source(src: Path, out_dir: Path) -> str:
    """Keep the baked glTF beside its result (not in ``files``: never sent to clients), for
    ``sequence.resample``; returns its name. A hard link when possible, else a copy."""
    name = BAKE_SOURCE_KEY + src.suffix.lower()
    target = out_dir / name
    try:
        os.link(src, target)
    except OSError:
        shutil.copyfile(src, target)
    return name


def _source(ctx: JobContext, params: dict, kind: str, source_kind: str):
    src = ctx.open_source(params["source"])
    m = src.manifest
    if m.kind != source_kind:
        origin = (m.resample or {}).get("source")
        hint = (f"; resample its source job {origin} instead" if origin else "")
        raise JobError(f"{kind}: job {params['source']} is a {m.kind} result; it takes a "
                       f"finished {source_kind} job{hint}", "bad_param")
    return src


def _finish(ctx: JobContext, kind: str, params: dict, base: MeshSequence, verts: np.ndarray,
            times: np.ndarray, end: float | None, units: str, seed=None) -> Manifest:
    frame_times = output_frame_times(times, params["fps"])
    seq = MeshSequence(verts, base.faces, frame_times, base.uvs, base.colors, base.name)
    ctx.progress("save", 0.9, f"Saving {len(times)} frames", force=True)
    manifest = mesh_result(ctx, seq, kind, params, seed=seed, units=units,
                           extra={"source_job": params["source"]})
    if params["fps"] > 0:
        manifest.fps = float(params["fps"])
    manifest.resample = manifest_field(kind, end, source=params["source"], times=times)
    ctx.progress("done", 1.0, f"{len(times)} frames, {seq.vertex_count} vertices")
    return manifest


def run_procedural_resample(ctx: JobContext, params: dict, inputs: list[Path]) -> Manifest:
    from .jobs import PROCEDURAL_KIND
    from .procedural import animate, make_creature

    params = PROCEDURAL_RESAMPLE_KIND.validate_params(params)
    if inputs:
        raise ParamError(f"{PROCEDURAL_RESAMPLE}: takes no input files, got {len(inputs)}")
    times = check_times(params["times"], None, PROCEDURAL_RESAMPLE)
    src = _source(ctx, params, PROCEDURAL_RESAMPLE, PROCEDURAL_KIND.name)
    sp = src.manifest.params
    ctx.progress("build", 0.05, f"Building creature {sp['seed']}", force=True)
    creature = make_creature(int(sp["seed"]), int(sp.get("legs", 0)))
    verts = np.empty((len(times), creature.rest.shape[0], 3), dtype=np.float32)
    step = 32
    for a in range(0, len(times), step):
        b = min(len(times), a + step)
        ctx.progress("animate", 0.1 + 0.8 * a / len(times), f"Posing frames {a}-{b - 1}")
        verts[a:b] = animate(creature, str(sp["gait"]), times[a:b])
    return _finish(ctx, PROCEDURAL_RESAMPLE, params, src.mesh, verts, times, None, "meters",
                   seed=src.manifest.seed)


def run_sequence_resample(ctx: JobContext, params: dict, inputs: list[Path]) -> Manifest:
    from .gltf_reader import GltfAnimation
    from .jobs import BAKE_KIND

    params = SEQUENCE_RESAMPLE_KIND.validate_params(params)
    if inputs:
        raise ParamError(f"{SEQUENCE_RESAMPLE}: takes no input files, got {len(inputs)}")
    src = _source(ctx, params, SEQUENCE_RESAMPLE, BAKE_KIND.name)
    m = src.manifest
    name = m.extra.get(BAKE_SOURCE_KEY)
    path = ctx.source(params["source"]) / str(name or "")
    if not name or not m.resample or not path.is_file():
        raise JobError(f"{SEQUENCE_RESAMPLE}: job {params['source']} cannot be resampled (only "
                       "a glTF bake without weld keeps its glTF on the server)", "bad_param")
    ctx.progress("read", 0.05, "Reading the glTF", force=True)
    anim = GltfAnimation(path)
    clip = anim.clip(m.params.get("clip") or None)
    end = float(clip.duration)
    times = check_times(params["times"], end, SEQUENCE_RESAMPLE)

    def sampled(fraction: float) -> None:
        ctx.progress("sample", 0.1 + 0.75 * fraction, f"Sampling {len(times)} times")

    verts = anim.sample(clip, times, "nlerp", sampled)
    if verts.shape[1] != src.mesh.vertex_count:
        raise JobError(f"{SEQUENCE_RESAMPLE}: the glTF of job {params['source']} gives "
                       f"{verts.shape[1]} vertices, its bake {src.mesh.vertex_count}")
    return _finish(ctx, SEQUENCE_RESAMPLE, params, src.mesh, verts, times, end, m.units)


KINDS = [(PROCEDURAL_RESAMPLE_KIND, "run_procedural_resample"),
         (SEQUENCE_RESAMPLE_KIND, "run_sequence_resample")]
