"""The ``creature.*`` job kinds (DNF part 2), offered for the models that hold a generator.

- ``creature.sample``: n new creatures (shape and motion diffusion), one result holding n mesh
  sequences (``files.sequences``) and their coefficients (``files.coefficients``);
- ``creature.animate_mesh``: the artist's mesh (any topology, UVs): its shape vector is fitted
  (dictionary frozen), a motion is sampled for it, and *its own* vertices are moved by the
  motion field (same vertex count, order, faces and UVs), in the mesh's own units;
- ``creature.resample``: a finished sample or animation at new times, without sampling again;
  frames at the source's times come back as they were, times in between use the motion vectors
  interpolated linearly between the two neighbouring motion frames, through the field (the
  vertices follow the field at those coefficients: not a blend of vertex positions);
- ``creature.blend``: two finished samples: ``morph`` (shape and motion vectors interpolated
  from the first creature to the second over the clip; one topology: the first shape is meshed
  once and its vertices are moved each frame onto the interpolated shape's surface by Newton
  steps along the SDF gradient, then by the interpolated motion), ``mix`` (one in-between
  creature at ``amount``, meshed anew, its motion the same mix) or ``transfer`` (the first's
  motion on the second's shape, ``amount`` = strength: the pose vectors go from the rest pose
  frame toward the first's motion by that fraction).

Progress is reported per diffusion step and per creature meshed; cancel is honoured between
diffusion steps. Results are in normalised units (frame 0 in the DNF box of side 1.8) except
``animate_mesh``, which comes back in the uploaded mesh's units.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from backend.jobs.api import JobContext, mesh_sequences_result
from backend.models.registry import ModelInfo
from shared.errors import JobError, ParamError
from shared.manifest import Manifest
from shared.meshseq import MeshSequence
from shared.params import InputSpec, KindSpec, ParamSpec
from shared.resample import manifest_field

log = logging.getLogger("anim4d.dnf")
SAMPLE, ANIMATE, RESAMPLE, BLEND = ("creature.sample", "creature.animate_mesh",
                                    "creature.resample", "creature.blend")
KINDS = (SAMPLE, ANIMATE, RESAMPLE, BLEND)
MESH_TYPES = (".glb", ".gltf", ".obj", ".ply", ".stl", ".off", ".npz", ".anime")
BLEND_MODES = ("morph", "mix", "transfer")


def creature_models(models: Sequence[ModelInfo]) -> list[ModelInfo]:
    """The DNF models that hold a generator (``details["generator"]``)."""
    return [m for m in models if m.details.get("generator")]


def _model_param(names: Sequence[str]) -> ParamSpec:
    names = tuple(names)
    return ParamSpec("model", "enum", names[0], choices=names,
                     help="DNF model with a generator (the server's models: `anim4d kinds`)")


def _timing() -> tuple[ParamSpec, ...]:
    return (ParamSpec("frames", "int", 32, help="Frames in the result", min=1, max=2000),
            ParamSpec("fps", "float", 20.0, help="Frames per second of the result (motion is "
                      "generated at the training data's rate and evaluated in between)",
                      min=1.0, max=240.0))


_SEED = ParamSpec("seed", "int", 0, help="Random seed (same seed, same creatures)", min=0,
                  max=999_999_999)
_STEPS = ParamSpec("steps", "int", 25, help="Diffusion (DDIM) steps", min=1, max=1000)
_RES = ParamSpec("resolution", "int", 96, help="Marching-cubes grid", min=16, max=256)
_MIN_MOTION = ParamSpec("min_motion", "float", 0.01, help="Redraw the motion (up to 4 times, the "
                        "draw that moves most stays) of a creature that moves less than this "
                        "share of its size (an idle); 0 takes the first draw", min=0.0, max=0.2)
_MIN_SPREAD = ParamSpec("min_spread", "float", 0.25, help="Redraw a shape nearer than this "
                        "(times the dictionary's own spacing) to another of the batch, so n "
                        "creatures differ; 0 keeps every draw", min=0.0, max=2.0)
_MIN_CHAMFER = ParamSpec("min_chamfer", "float", 0.009, help="Redraw a creature whose surface "
                         "is nearer than this Chamfer distance (normalised units) to another of "
                         "the batch, the draw farthest from the others stays; default about 3x "
                         "the shipped dictionary's own decoding error; 0 keeps every draw",
                         min=0.0, max=1.0)
_MIN_NOVELTY = ParamSpec("min_novelty", "float", 0.002, help="Redraw a creature (shape and "
                         "motion, up to 8 times) whose animation is within this of one the "
                         "generator was trained on, beyond the distance of two samplings of that "
                         "one (sequence Chamfer, normalised units): a copy; 0 keeps every draw",
                         min=0.0, max=1.0)
_MIN_PIECE = ParamSpec("min_piece", "float", 0.02, help="Drop surface pieces smaller than this "
                       "share of the creature's area (islands that would float); 0 keeps all",
                       min=0.0, max=0.5)


def spec(kind: str, names: Sequence[str]) -> KindSpec:
    """The spec of ``kind`` offering the models ``names``."""
    m = _model_param(names)
    if kind == SAMPLE:
        return KindSpec(SAMPLE, "Generate creatures", representation="mesh_sequence",
                        description="Sample new animated creatures from a DNF generator",
                        params=(m, ParamSpec("n", "int", 1, help="How many creatures", min=1,
                                             max=16), *_timing(), _SEED, _STEPS, _RES,
                                _MIN_PIECE, _MIN_MOTION, _MIN_SPREAD, _MIN_CHAMFER,
                                _MIN_NOVELTY),
                        section="Creatures", resample_kind=RESAMPLE)
    if kind == ANIMATE:
        return KindSpec(ANIMATE, "Animate my mesh", representation="mesh_sequence",
                        description="Fit a DNF shape to your mesh, sample a motion for it and "
                                    "move your own vertices (topology and UVs kept)",
                        params=(m, *_timing(), _SEED, _STEPS,
                                ParamSpec("fit_iters", "int", 0, help="Shape-fit steps; 0 = the "
                                          "preset's", min=0, max=100_000)),
                        inputs=(InputSpec("mesh", MESH_TYPES, help="The mesh to animate (rest "
                                          "pose)"),),
                        section="Creatures", resample_kind=RESAMPLE)
    if kind == RESAMPLE:
        return KindSpec(RESAMPLE, "Resample creature", representation="mesh_sequence",
                        description="A finished creature at new times, from its coefficients "
                                    "(no new sampling)",
                        params=(m, ParamSpec("source", "job", "", help="A finished "
                                             "creature.sample or creature.animate_mesh job"),
                                ParamSpec("times", "floats", (0.0,), help="Seconds from the "
                                          "start, within the source's duration", min=0.0,
                                          max=1e4, max_items=10_000)),
                        section="Creatures", resample_kind=RESAMPLE)
    if kind == BLEND:
        return KindSpec(BLEND, "Blend creatures", representation="mesh_sequence",
                        description="Morph one sampled creature into another, mix them, or put "
                                    "the first's motion on the second's shape",
                        params=(m, ParamSpec("a", "job", "", help="First creature's job"),
                                ParamSpec("b", "job", "", help="Second creature's job"),
                                ParamSpec("a_index", "int", 0, help="Creature of the first job",
                                          min=0, max=15),
                                ParamSpec("b_index", "int", 0, help="Creature of the second job",
                                          min=0, max=15),
                                ParamSpec("mode", "enum", "morph", choices=BLEND_MODES,
                                          help="morph over the clip, mix, or motion transfer"),
                                ParamSpec("amount", "float", 0.5, help="mix: share of the second;"
                                          " transfer: motion strength", min=0.0, max=1.0),
                                *_timing(), _RES),
                        section="Creatures")
    raise KeyError(kind)


def sample_guards() -> dict[str, float]:
    """``creature.sample``'s redraw guards (``min_*``) at their defaults, from its spec."""
    return {p.name: p.default for p in spec(SAMPLE, ["tiny"]).params
            if p.name.startswith("min_")}


def kind_specs(models: Sequence[ModelInfo]) -> dict[str, KindSpec]:
    """``{kind: spec}`` for the models holding a generator (empty when none does)."""
    names = [m.name for m in creature_models(models)]
    return {k: spec(k, names) for k in KINDS} if names else {}


# ---------------------------------------------------------------------------------- workers


def _validated(kind: str, ctx: JobContext, params: dict) -> dict:
    if not ctx.models:
        raise ParamError("this server has no DNF model with a generator", "unknown_model")
    return spec(kind, list(ctx.models)).validate_params(params)


def _load(ctx: JobContext, name: str):
    """The model and its generators, kept loaded between the jobs of a process that runs many
    (a resident Ray actor; see :mod:`.resident`)."""
    from .resident import load_with_generator

    folder = ctx.model_folder(name)
    ctx.progress("load", 0.0, f"Loading DNF model {name!r} and its generator", force=True)
    log.info("loading DNF model %r (generator) from %s", name, folder)
    return load_with_generator(folder, label=name)


def _reporter(ctx: JobContext):
    # in the order sample_creatures runs them (animate_mesh: fit-shape, then motion)
    spans = {"shape": (0.03, 0.12), "mesh": (0.15, 0.2), "fit-shape": (0.05, 0.3),
             "motion": (0.35, 0.43), "prints": (0.78, 0.1), "novelty": (0.88, 0.07)}

    def report(stage: str, fraction: float, message: str) -> None:
        lo, width = spans.get(stage, (0.0, 1.0))
        ctx.progress(stage, lo + width * fraction, message)

    return report


def _times(params: dict) -> np.ndarray:
    return np.arange(params["frames"], dtype=np.float64) / params["fps"]


def _coeff_result(ctx, seqs, kind, params, creatures, **kw) -> Manifest:
    from .gen.creature import COEFF_FILE

    creatures.save(ctx.out_dir / COEFF_FILE)
    manifest = mesh_sequences_result(ctx, seqs, kind, params, **kw)
    manifest.files["coefficients"] = COEFF_FILE
    manifest.resample = manifest_field(RESAMPLE, manifest.frame_times[-1])
    return manifest


def run_sample(ctx: JobContext, params: dict, inputs: list[Path]) -> Manifest:
    from .gen.creature import sample_creatures

    params = _validated(SAMPLE, ctx, params)
    if inputs:
        raise ParamError(f"{SAMPLE}: takes no input files, got {len(inputs)}")
    model, sgen, mgen, info = _load(ctx, params["model"])
    times = _times(params)
    creatures, verts = sample_creatures(model, sgen, mgen, params["n"], times, params["seed"],
                                        params["steps"], params["resolution"],
                                        info.get("stage", "d"), _reporter(ctx), ctx.cancelled,
                                        min_piece=params["min_piece"],
                                        min_motion=params["min_motion"],
                                        min_spread=params["min_spread"],
                                        min_chamfer=params["min_chamfer"],
                                        min_novelty=params["min_novelty"])
    creatures.meta["generator_sha256"] = info.get("weights_sha256", {})
    seqs = [MeshSequence(v, f, times, name=f"creature_{i}")
            for i, (v, f) in enumerate(zip(verts, creatures.faces, strict=True))]
    ctx.progress("save", 0.96, f"Saving {len(seqs)} creatures", force=True)
    return _coeff_result(ctx, seqs, SAMPLE, params, creatures, seed=params["seed"],
                         checkpoint_sha256=model.sha256,
                         extra={"motion_fps": creatures.motion_fps,
                                "motion_frames": int(creatures.motions.shape[1]),
                                "notes": copy_notes(creatures.meta),
                                **{k: creatures.meta[k] for k in ("novelty", "nearest_training")
                                   if k in creatures.meta}})


def copy_notes(meta: dict) -> list[str]:
    """A note per creature the copy guard could not move away from a training instance."""
    from .gen.creature import NOVELTY_REDRAWS

    lim = meta.get("min_novelty", 0.0)
    return [f"creature {i + 1} is still {d:.4f} from training instance {name} after "
            f"{NOVELTY_REDRAWS} redraws (min_novelty {lim:g}): it is close to a copy; "
            "try another seed" for i, (d, name) in
            enumerate(zip(meta.get("novelty", []), meta.get("nearest_training", []),
                          strict=True)) if d < lim]


def run_animate_mesh(ctx: JobContext, params: dict, inputs: list[Path]) -> Manifest:
    from .fit_shape import fit_shape_mesh
    from .gen.creature import Creatures, animate, motion_frames_for, to_output

    params = _validated(ANIMATE, ctx, params)
    if len(inputs) != 1:
        raise ParamError(f"{ANIMATE}: expects exactly one mesh file, got {len(inputs)}")
    path = Path(inputs[0])
    from .fit_shape import read_static_mesh_uvs

    verts, faces, uvs = read_static_mesh_uvs(path)
    if len(verts) < 3 or len(faces) == 0:
        raise ParamError(f"{ANIMATE}: {path.name} holds no triangles (vertices {len(verts)}, "
                         f"faces {len(faces)})")
    model, sgen, mgen, info = _load(ctx, params["model"])
    stage = info.get("stage", "d")
    report = _reporter(ctx)
    fit = fit_shape_mesh(model, verts, faces, path.name, stage, params["fit_iters"],
                         report=report)
    motion_fps = float(mgen.info.get("frame_rate") or model.preset.data.fps)
    times = _times(params)
    motions = mgen.sample(fit.vector[None], motion_frames_for(times, motion_fps),
                          seed=params["seed"], steps=params["steps"], progress=report,
                          cancelled=ctx.cancelled)
    canon = ((np.asarray(verts, np.float64) - np.asarray(fit.center)) * fit.scale)
    canon = canon.astype(np.float32)
    ctx.progress("animate", 0.8, f"Moving {len(verts)} vertices", force=True)
    transform = ([float(c) for c in fit.center], float(fit.scale))
    moved = to_output(animate(model, stage, canon, fit.vector, motions[0], motion_fps, times),
                      transform)
    creatures = Creatures(fit.vector[None], motions, motion_fps, stage, [canon],
                          [np.asarray(faces, np.int32)], [transform],
                          {"seed": params["seed"], "model_sha256": model.sha256,
                           "fit_loss": [fit.loss_before, fit.loss_after]})
    seq = MeshSequence(moved, faces, times, uvs, name=path.stem)
    return _coeff_result(ctx, [seq], ANIMATE, params, creatures, seed=params["seed"],
                         checkpoint_sha256=model.sha256,
                         extra={"motion_fps": motion_fps, "fit_loss_before": fit.loss_before,
                                "fit_loss_after": fit.loss_after})


def _source_creatures(ctx: JobContext, job_id: str, what: str):
    """(ResultData, Creatures) of a finished creature.sample / animate_mesh job."""
    from .gen.creature import Creatures

    src = ctx.open_source(job_id)
    if src.manifest.kind not in (SAMPLE, ANIMATE) or "coefficients" not in src.manifest.files:
        raise JobError(f"{what}: job {job_id} is a {src.manifest.kind} result; it needs a "
                       f"finished {SAMPLE} or {ANIMATE} job (they store their coefficients)",
                       "bad_param")
    return src, Creatures.load(src.file("coefficients"), f"the result of job {job_id}")


def _check_model(model, creatures, job_id: str, name: str) -> None:
    sha = creatures.meta.get("model_sha256")
    if sha and sha != model.sha256:
        raise JobError(f"job {job_id} was made with another dictionary ({sha[:12]}...) than "
                       f"model {name!r} ({model.sha256[:12]}...); choose that job's model",
                       "bad_param")


def run_resample(ctx: JobContext, params: dict, inputs: list[Path]) -> Manifest:
    from .gen.creature import animate, to_output
    from .resident import load_model

    params = _validated(RESAMPLE, ctx, params)
    src, cr = _source_creatures(ctx, params["source"], RESAMPLE)
    times = np.asarray(params["times"], np.float64)
    dur = float(src.manifest.frame_times[-1])
    if np.any(np.diff(times) <= 0) or times[0] < 0 or times[-1] > dur + 1e-9:
        raise ParamError(f"{RESAMPLE}: times must increase and lie in [0, {dur:g}] s (the "
                         f"source's duration); got {times[0]:g} .. {times[-1]:g}")
    model = load_model(ctx.model_folder(params["model"]), label=params["model"])
    _check_model(model, cr, params["source"], params["model"])
    seqs = []
    for i in range(cr.count):
        ctx.progress("resample", 0.1 + 0.85 * i / cr.count, f"creature {i + 1}/{cr.count}")
        base = src.mesh_sequence(i)
        v = to_output(animate(model, cr.stage, cr.canonical[i], cr.shapes[i], cr.motions[i],
                              cr.motion_fps, times), cr.transforms[i])
        seqs.append(MeshSequence(v, base.faces, times, base.uvs, base.colors, base.name))
    manifest = mesh_sequences_result(ctx, seqs, RESAMPLE, params, seed=src.manifest.seed,
                                     checkpoint_sha256=model.sha256,
                                     extra={"source_job": params["source"],
                                            "motion_fps": cr.motion_fps})
    manifest.resample = manifest_field(RESAMPLE, dur, source=params["source"], times=times)
    return manifest


def run_blend(ctx: JobContext, params: dict, inputs: list[Path]) -> Manifest:
    from .decode import interpolate_vectors
    from .gen.creature import animate, mesh_shape, project_to_surface
    from .resident import load_model

    params = _validated(BLEND, ctx, params)
    pick = []
    for key in ("a", "b"):
        _, cr = _source_creatures(ctx, params[key], BLEND)
        i = params[f"{key}_index"]
        if i >= cr.count:
            raise ParamError(f"{BLEND}: {key}_index {i} but job {params[key]} holds "
                             f"{cr.count} creature(s)")
        pick.append((cr, i))
    model = load_model(ctx.model_folder(params["model"]), label=params["model"])
    for (cr, _), key in zip(pick, ("a", "b"), strict=True):
        _check_model(model, cr, params[key], params["model"])
    (ca, ia), (cb, ib) = pick
    stage, fps_m = ca.stage, ca.motion_fps
    times = _times(params)
    ma = interpolate_vectors(ca.motion_times(), ca.motions[ia].float(), times)
    mb = interpolate_vectors(cb.motion_times(), cb.motions[ib].float(), times)
    sa, sb = ca.shapes[ia].float(), cb.shapes[ib].float()
    mode, amount = params["mode"], float(params["amount"])
    extra = {"mode": mode, "a": params["a"], "b": params["b"]}
    if mode == "morph":
        w = times / times[-1] if times[-1] > 0 else np.zeros_like(times)
        verts = ca.canonical[ia]
        faces = ca.faces[ia]
        out = np.empty((len(times), len(verts), 3), np.float32)
        cur = verts
        for k, wk in enumerate(w):
            ctx.progress("morph", 0.05 + 0.9 * k / len(times), f"frame {k + 1}/{len(times)}")
            s = (1 - wk) * sa + wk * sb
            cur = project_to_surface(model, stage, s, cur) if wk > 0 else verts
            m = ((1 - wk) * ma[k] + wk * mb[k])[None]
            out[k] = animate(model, stage, cur, s, m, fps_m, np.zeros(1))[0]
        extra["shape_keys"] = {"property": "dnf_blend", "values": [float(x) for x in w]}
    elif mode == "mix":
        s = (1 - amount) * sa + amount * sb
        ctx.progress("mesh", 0.1, "Marching cubes of the mixed shape", force=True)
        verts, faces, _ = mesh_shape(model, stage, s, params["resolution"])
        if faces.shape[0] == 0:
            raise JobError(f"{BLEND}: the mix at {amount:g} has no surface")
        m = (1 - amount) * ma + amount * mb
        out = animate(model, stage, verts, s, m, float(params["fps"]), times)
    else:  # transfer: b's shape, a's motion at a strength (from a's rest-pose vector)
        verts, faces = cb.canonical[ib], cb.faces[ib]
        rest = ca.motions[ia][0].float()
        m = rest[None] + amount * (ma - rest[None])
        out = animate(model, stage, verts, sb, m, float(params["fps"]), times)
    seq = MeshSequence(out, faces, times, name=f"blend_{mode}")
    ctx.progress("save", 0.97, "Saving", force=True)
    return mesh_sequences_result(ctx, [seq], BLEND, params, checkpoint_sha256=model.sha256,
                                 extra=extra)
