"""Job kinds of the data module: bake an animated file, make a procedural creature.

Both can be re-evaluated exactly at new times (``manifest.resample``): a procedural creature at
any time, a glTF bake (without weld) within its clip; see :mod:`.resample_jobs`.

Both write ``sequence.npz`` (through :func:`backend.jobs.api.mesh_result`) and report progress
at every step, which is where cancellation lands. Other formats (PC2, OBJ, ...) are exports made
from a result (``anim4d export``), so a fetched result folder is exactly what the server holds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from backend.jobs.api import JobContext, mesh_result
from shared.errors import FormatError, ParamError
from shared.manifest import Manifest
from shared.meshseq import MeshSequence
from shared.params import InputSpec, KindSpec, ParamSpec
from shared.resample import manifest_field

from .procedural import GAITS, animate, cycle_seconds, make_creature
from .readers import BakeConfig, read_sequence
from .weld import weld

BAKE_EXTENSIONS = (".glb", ".gltf", ".anime")
GLTF_SUFFIXES = (".glb", ".gltf")
MAX_SEED = 2**31 - 1

BAKE_KIND = KindSpec(
    name="sequence.bake",
    title="Bake sequence",
    description=(
        "Sample an animated glTF/GLB clip (skinning, morph targets, node animation) or a "
        "DeformingThings4D .anime file into a constant-topology mesh sequence"
    ),
    representation="mesh_sequence",
    params=(
        ParamSpec("clip", "str", "",
                  help="glTF animation to bake; empty = the first (ignored for .anime)"),
        ParamSpec("fps", "float", 30.0, help="Samples per second (for .anime: the file's rate)",
                  min=1.0, max=240.0),
        ParamSpec("weld", "bool", False,
                  help="Merge vertices split along seams (drops UVs; for training)"),
    ),
    inputs=(InputSpec("source", BAKE_EXTENSIONS, help="An animated .glb/.gltf or an .anime"),),
    section="Bake sequence", resample_kind="sequence.resample",
)

PROCEDURAL_KIND = KindSpec(
    name="creature.procedural",
    title="Procedural creature",
    description=(
        "A rigged animal built from parametric parts, drawn from a seed, walking, trotting, "
        "galloping or idling in place (Y-up, facing +Z)"
    ),
    representation="mesh_sequence",
    params=(
        ParamSpec("seed", "int", 0, help="Creature seed: proportions, colours, legs",
                  min=0, max=MAX_SEED),
        ParamSpec("gait", "enum", "walk", help="Motion cycle", choices=GAITS),
        ParamSpec("frames", "int", 48, help="Number of frames", min=1, max=2000),
        ParamSpec("fps", "float", 24.0, help="Frames per second", min=1.0, max=240.0),
        ParamSpec("legs", "int", 0, help="0 = from the seed, else an even count 2 to 8",
                  min=0, max=8),
    ),
    section="Procedural creature", resample_kind="creature.procedural_resample",
)


def run_bake(ctx: JobContext, params: dict, inputs: list[Path]) -> Manifest:
    """``sequence.bake``: one ``.glb``/``.gltf``/``.anime`` input -> mesh sequence."""
    params = BAKE_KIND.validate_params(params)
    if len(inputs) != 1:
        raise ParamError(
            f"{BAKE_KIND.name}: expects exactly one input file ({', '.join(BAKE_EXTENSIONS)}), "
            f"got {len(inputs)}"
        )
    src = Path(inputs[0])
    if src.suffix.lower() not in BAKE_EXTENSIONS:
        raise FormatError(
            f"{src}: unsupported file type {src.suffix or '(none)'!r}; accepted: "
            + ", ".join(BAKE_EXTENSIONS)
        )
    ctx.progress("read", 0.0, f"Reading {src.name}", force=True)
    config = BakeConfig(clip=params["clip"] or None, fps=params["fps"], weld=False)

    def sampled(fraction: float) -> None:
        ctx.progress("sample", 0.05 + 0.75 * fraction, f"Sampling {src.name}")

    seq = read_sequence(src, config, progress=sampled)
    if params["weld"]:
        ctx.progress("weld", 0.82, f"Welding {seq.vertex_count} vertices", force=True)
        seq = weld(seq)
    ctx.progress("save", 0.9, f"Saving {seq.frame_count} frames", force=True)
    extra = {"source": src.name}
    for key in ("clip", "clips", "duration", "source_vertices"):
        if key in seq.meta:
            extra[key] = seq.meta[key]
    manifest = mesh_result(ctx, seq, BAKE_KIND.name, params, extra=extra)
    if src.suffix.lower() in GLTF_SUFFIXES and not params["weld"]:
        # a glTF is a function of time: keep it (server only) to sample it again exactly
        from .resample_jobs import BAKE_SOURCE_KEY, keep_bake_source

        manifest.extra[BAKE_SOURCE_KEY] = keep_bake_source(src, ctx.out_dir)
        end = float(seq.meta.get("duration", seq.times[-1] - seq.times[0]))
        manifest.resample = manifest_field(BAKE_KIND.resample_kind, end)
    ctx.progress("done", 1.0, f"{seq.frame_count} frames, {seq.vertex_count} vertices")
    return manifest


def run_procedural(ctx: JobContext, params: dict, inputs: list[Path]) -> Manifest:
    """``creature.procedural``: no inputs -> mesh sequence of a seeded creature."""
    params = PROCEDURAL_KIND.validate_params(params)
    if inputs:
        raise ParamError(f"{PROCEDURAL_KIND.name}: takes no input files, got {len(inputs)}")
    legs = params["legs"]
    if legs and (legs < 2 or legs % 2):
        raise ParamError(
            f"{PROCEDURAL_KIND.name}: parameter 'legs' = {legs!r} is not accepted; expected 0 "
            "(from the seed) or an even number from 2 to 8"
        )
    seed, gait, frames, fps = params["seed"], params["gait"], params["frames"], params["fps"]
    ctx.progress("build", 0.0, f"Building creature {seed}", force=True)
    creature = make_creature(seed, legs)
    times = np.arange(frames, dtype=np.float64) / fps
    verts = np.empty((frames, creature.rest.shape[0], 3), dtype=np.float32)
    step = 32
    for a in range(0, frames, step):
        b = min(frames, a + step)
        ctx.progress("animate", 0.05 + 0.8 * a / frames, f"Posing frames {a}-{b - 1}")
        verts[a:b] = animate(creature, gait, times[a:b])
    seq = MeshSequence(verts, creature.faces, times, colors=creature.colors,
                       name=f"creature_{seed}_{gait}")
    ctx.progress("save", 0.9, f"Saving {frames} frames", force=True)
    extra = {"gait": gait, "legs": creature.spec.legs,
             "cycle_seconds": cycle_seconds(creature, gait), "facing": "+Z"}
    manifest = mesh_result(ctx, seq, PROCEDURAL_KIND.name, params, seed=seed, units="meters",
                           extra=extra)
    manifest.resample = manifest_field(PROCEDURAL_KIND.resample_kind, None)  # any t >= 0
    ctx.progress("done", 1.0, f"{frames} frames, {seq.vertex_count} vertices")
    return manifest
