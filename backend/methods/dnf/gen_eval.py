"""The generation evaluation protocol: held-out references, sampled creatures, the metrics.

- references: every held-out sequence of the model's own preset (``split`` starting with
  ``heldout``: the held-out clips, animals and species), read from the source files, with the
  preset's frame count and frame rate;
- generators: the same diffusion (shape, then motion conditioned on the shape) trained on the
  vectors of one representation of the checkpoint: ``d`` (the dictionary: coefficients and
  codes) or ``a`` (the auto-decoder's latent codes alone, the baseline);
- samples: as many as references; motion is conditioned on the SAMPLED shapes; decoded by
  marching cubes once on the sampled shape and displacing its vertices per frame;
- both sets -> :func:`..gen_metrics.sequence_points` (same frame count, same normalisation,
  the same 2,048-point sampler) -> MMD / COV / 1-NNA;
- copy check: each sample against the training instances decoded from their own vectors of the
  same representation (a memorised vector decodes to exactly its training instance, whatever the
  decoder's error against the source mesh).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from shared.errors import FormatError
from shared.meshseq import MeshSequence

from .data import SequenceLoader, frame_times, list_sources
from .decode import decode
from .gen.config import MotionDiffusionConfig, ShapeDiffusionConfig
from .gen.generator import MotionGenerator, ShapeGenerator, load_generator, save_generator
from .gen.training import train_motion_diffusion, train_shape_diffusion
from .gen_metrics import (
    CopyCheck,
    SetMetrics,
    copy_check,
    copy_check_nn,
    distances,
    motion_amount,
    sequence_points,
    set_metrics,
)

Log = Callable[[str], None]


@dataclass(frozen=True)
class GenEvalSettings:
    """``points`` per frame, marching-cubes ``resolution``, DDIM ``steps``, generator configs,
    ``max_train`` training instances in the copy check (0 = all, else evenly spread)."""

    points: int = 2048
    resolution: int = 64
    steps: int = 50
    shape: ShapeDiffusionConfig = field(default_factory=ShapeDiffusionConfig)
    motion: MotionDiffusionConfig = field(default_factory=MotionDiffusionConfig)
    max_train: int = 0
    seed: int = 0
    backend: str = "kdtree"


@dataclass
class Sampled:
    """One representation's samples: shape ``[S, D_s]``, motion ``[S, T, D_m]`` vectors, the
    decoded sequences (None: no surface) and their points ``[T, P, 3]``."""

    shapes: torch.Tensor
    motions: torch.Tensor
    meshes: list[MeshSequence | None]
    points: list[np.ndarray | None]


def reference_sequences(model) -> list[MeshSequence]:
    """Every held-out sequence of the model's preset (see module docstring)."""
    cfg = model.preset.data
    trained = {i["name"] for i in model.instances}
    specs = [s for s in list_sources(cfg) if s.split.startswith("heldout")]
    if not specs:
        raise FormatError(f"preset {model.preset.name!r}: no held-out sequences (is the "
                          "animals folder there? set ANIM4D_SHARED_DATA)")
    leaked = [s.name for s in specs if s.name in trained]
    if leaked:
        raise FormatError(f"held-out sequences {leaked[:3]} are among the checkpoint's training "
                          "instances; retrain the checkpoint with its preset")
    loader = SequenceLoader(cfg)
    out = []
    for s in specs:
        seq = loader.read(s)
        out.append(MeshSequence(seq.vertices, seq.faces, seq.times, name=s.name))
    return out


def get_generators(model, stage: str, settings: GenEvalSettings, folder: Path | None,
                   log: Log = print) -> tuple[ShapeGenerator, MotionGenerator]:
    """Load ``folder/{shape,motion}.*`` when present, else train on the model's stage vectors
    (and save them into ``folder``)."""
    if folder is not None and (folder / "shape.json").is_file() \
            and (folder / "motion.json").is_file():
        log(f"[{stage}] loading generators from {folder}")
        shape_gen, motion_gen = load_generator(folder, "shape"), load_generator(folder, "motion")
        want = (model.shape_layout(stage).size, model.motion_layout(stage).size)
        got = (shape_gen.tokenizer.layout.size, motion_gen.tokenizer.layout.size)
        if got != want:
            raise FormatError(f"{folder}: generators are for vectors of sizes {got}, stage "
                              f"{stage} of this checkpoint has {want}")
        return shape_gen, motion_gen

    def progress(name: str, frac: float, msg: str) -> None:
        if frac >= 1.0 or int(frac * 100) % 25 == 0:
            log(f"[{stage}] {name} {frac:.0%} {msg}")

    t0 = time.monotonic()
    shape_gen = train_shape_diffusion(settings.shape, model.shape_vecs[stage],
                                      model.shape_layout(stage), progress)
    motion_gen = train_motion_diffusion(settings.motion, model.shape_vecs[stage],
                                        model.motion_vecs[stage], shape_gen.tokenizer,
                                        model.motion_layout(stage), progress)
    log(f"[{stage}] trained generators in {time.monotonic() - t0:.0f} s")
    if folder is not None:
        save_generator(shape_gen, folder)
        save_generator(motion_gen, folder)
    return shape_gen, motion_gen


def decode_points(model, stage: str, shape_vec: torch.Tensor, motion_vecs: torch.Tensor,
                  times: np.ndarray, settings: GenEvalSettings, seed: int,
                  name: str) -> tuple[MeshSequence | None, np.ndarray | None]:
    """Decode one creature (marching cubes once, displace) and sample its points; (None, None)
    when the sampled SDF has no surface."""
    try:
        seq = decode(model, stage, shape_vec, motion_vecs, times, resolution=settings.resolution,
                     name=name)
    except FormatError:
        return None, None
    return seq, sequence_points(seq.vertices, seq.faces, settings.points, seed)


def sample_creatures(model, stage: str, gens: tuple[ShapeGenerator, MotionGenerator], n: int,
                     settings: GenEvalSettings) -> Sampled:
    """``n`` creatures: shapes, then motion conditioned on those sampled shapes; decoded."""
    cfg = model.preset.data
    shape_gen, motion_gen = gens
    shapes = shape_gen.sample(n, seed=settings.seed, steps=settings.steps)
    motions = motion_gen.sample(shapes, frames=cfg.frames, seed=settings.seed + 1,
                                steps=settings.steps)
    times = frame_times(0.0, cfg)
    meshes, points = [], []
    for i in range(n):
        seq, pts = decode_points(model, stage, shapes[i], motions[i], times, settings,
                                 settings.seed + i, f"sample_{stage}_{i}")
        meshes.append(seq)
        points.append(pts)
    return Sampled(shapes, motions, meshes, points)


def train_points(model, stage: str, settings: GenEvalSettings) -> tuple[list[int], list]:
    """(indices, points or None) of the training instances in the copy check, decoded from their
    own stage vectors."""
    n = len(model.instances)
    idx = list(range(n))
    if settings.max_train and n > settings.max_train:
        idx = sorted(set(np.round(np.linspace(0, n - 1, settings.max_train)).astype(int)))
    pts = []
    for i in idx:
        inst = model.instances[i]
        _, p = decode_points(model, stage, model.shape_vecs[stage][i],
                             model.motion_vecs[stage][i], np.asarray(inst["times"]), settings,
                             settings.seed + 10_000 + i, inst["name"])
        pts.append(p)
    return idx, pts


@dataclass
class RepResult:
    """One representation's evaluation; ``gens``: the (shape, motion) generators used;
    ``guard``: each sample's copy-guard distance (:func:`guard_distances`); ``meta``: the job
    sampler's record (:func:`evaluate_job_sampler`)."""

    stage: str
    gens: tuple[ShapeGenerator, MotionGenerator]
    sampled: Sampled
    metrics: SetMetrics
    copy: CopyCheck
    train_index: list[int]
    empty: int
    seconds: dict[str, float]
    train_motion: float = float("nan")
    train_points: list = field(default_factory=list)
    guard: list[float] = field(default_factory=list)
    meta: dict = field(default_factory=dict)


def evaluate_representation(model, stage: str, refs_points: list[np.ndarray],
                            d_rr: np.ndarray, settings: GenEvalSettings,
                            folder: Path | None, log: Log = print) -> RepResult:
    """Generators of ``stage`` -> samples -> metrics against the references and copy check."""
    sec: dict[str, float] = {}
    t = time.monotonic()
    gens = get_generators(model, stage, settings, folder, log)
    sec["generators"] = time.monotonic() - t
    t = time.monotonic()
    sampled = sample_creatures(model, stage, gens, len(refs_points), settings)
    sec["sample+decode"] = time.monotonic() - t
    empty = sum(p is None for p in sampled.points)
    log(f"[{stage}] {len(sampled.points)} samples decoded ({empty} without a surface) in "
        f"{sec['sample+decode']:.0f} s")
    t = time.monotonic()
    d_ss = distances(sampled.points, None, settings.backend)
    d_sr = distances(sampled.points, refs_points, settings.backend)
    metrics = set_metrics(d_ss, d_rr, d_sr)
    sec["metrics"] = time.monotonic() - t
    t = time.monotonic()
    idx, tpts = train_points(model, stage, settings)
    keep = [k for k, p in enumerate(tpts) if p is not None]
    d_tt = distances([tpts[k] for k in keep], None, settings.backend)
    d_st = distances(sampled.points, [tpts[k] for k in keep], settings.backend)
    copy = copy_check(d_st, d_tt)
    sec["copy check"] = time.monotonic() - t
    log(f"[{stage}] MMD {metrics.mmd * 1e3:.3f} COV {metrics.cov:.1%} 1-NNA {metrics.nna:.1%}; "
        f"copy check done in {sec['copy check']:.0f} s")
    moves = [motion_amount(tpts[k]) for k in keep]
    t = time.monotonic()
    guard = guard_distances(model, stage, sampled, settings)
    sec["copy guard"] = time.monotonic() - t
    return RepResult(stage, gens, sampled, metrics, copy, [idx[k] for k in keep], empty, sec,
                     float(np.mean(moves)) if moves else float("nan"),
                     [tpts[k] for k in keep], guard)


def guard_distances(model, stage: str, sampled: Sampled, settings: GenEvalSettings
                    ) -> list[float]:
    """What ``creature.sample``'s copy guard (:mod:`.gen.novelty`) measures for each sample:
    its distance to the nearest training instance's print (inf: no surface)."""
    from .gen.creature import mesh_shape
    from .gen.novelty import MIN_PIECE, creature_print, training_prints

    prints = training_prints(model, stage, settings.resolution)
    out = []
    for i, pts in enumerate(sampled.points):
        if pts is None:
            out.append(float("inf"))
            continue
        v, f, _ = mesh_shape(model, stage, sampled.shapes[i], settings.resolution,
                             min_piece=MIN_PIECE)
        out.append(prints.nearest(creature_print(model, stage, v, f, sampled.shapes[i],
                                                 sampled.motions[i], 1.0,
                                                 sampled.motions.shape[1], seed=i))[0])
    return out


def evaluate_job_sampler(model, base: RepResult, refs_points: list[np.ndarray],
                         d_rr: np.ndarray, settings: GenEvalSettings, guards: dict,
                         log: Log = print) -> RepResult:
    """``base``'s generators drawn through ``creature.sample``'s own sampler
    (:func:`.gen.creature.sample_creatures` with the redraw guards ``guards``, e.g. the job's
    defaults) instead of plain sampling; decoded, measured and copy-checked as ``base`` (its
    training points and nearest-neighbour distances)."""
    from .gen.creature import sample_creatures as job_sample

    sec: dict[str, float] = {}
    cfg = model.preset.data
    t = time.monotonic()
    times = frame_times(0.0, cfg)
    creatures, verts = job_sample(model, base.gens[0], base.gens[1], len(refs_points), times,
                                  settings.seed, settings.steps, settings.resolution, base.stage,
                                  **guards)
    meshes = [MeshSequence(v, f, times, name=f"job_{base.stage}_{i}")
              for i, (v, f) in enumerate(zip(verts, creatures.faces, strict=True))]
    points = [sequence_points(m.vertices, m.faces, settings.points, settings.seed + i)
              for i, m in enumerate(meshes)]
    sampled = Sampled(creatures.shapes, creatures.motions, meshes, points)
    sec["sample+decode"] = time.monotonic() - t
    t = time.monotonic()
    metrics = set_metrics(distances(points, None, settings.backend), d_rr,
                          distances(points, refs_points, settings.backend))
    sec["metrics"] = time.monotonic() - t
    t = time.monotonic()
    copy = copy_check_nn(distances(points, base.train_points, settings.backend),
                         base.copy.train_nn)
    sec["copy check"] = time.monotonic() - t
    log(f"[{base.stage}+guards] MMD {metrics.mmd * 1e3:.3f} COV {metrics.cov:.1%} "
        f"1-NNA {metrics.nna:.1%}; redraws: " + ", ".join(
            f"{k} {sum(creatures.meta.get(k, []))}"
            for k in ("surface_redraws", "motion_redraws", "novelty_redraws")))
    return RepResult(base.stage, base.gens, sampled, metrics, copy, base.train_index, 0, sec,
                    base.train_motion, base.train_points,
                    list(creatures.meta.get("novelty", [])), creatures.meta)
