"""DNF presets: data selection, network sizes, schedules and what training leaves out.

``tiny`` fits on 2 CPU cores in under 45 minutes (prepare included) and uses at most 30k SDF
samples per shape; ``paper`` uses the paper's sizes (public code: shape 8 x 512 with a skip at
layer 4 and 8 positional-encoding frequencies, motion 8 x 1024, 50k uniform + 150k near-surface
SDF samples, 17 frames) and expects a GPU.

Both presets leave out one named clip per animal (``held_out_clips``) and whole species
(``held_out_species``: Husky, a fish, the snake: three body plans): those are the held-out rows
of the results and the unseen-shape fits.

Fidelity to the public code (``xzhang-t/DNF``, ``configs_train/config_train_DT4D.py``) in
``paper``: shape and pose codes 384, top-k 384 (shape) and 768 (motion) directions per layer
(absolute), residual ranks 256 (shape) and 512 (motion), SDF clamp 0.1, motion supervised at
surface points and at points offset along the normal (``sample_flow.py``: uniform offsets of
+-sigma/2, sigma 0.02, on 30 % of the points), codes frozen and unregularised while the
dictionary is fine-tuned (``freeze_*_codes``, ``do_code_regularization = False``).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

from shared.errors import ParamError

REPO = Path(__file__).resolve().parents[3]

#: One named clip per animal that training never sees (quadrupeds: the jump; dinosaurs: the jump).
HELD_OUT_CLIPS: tuple[tuple[str, str], ...] = (
    ("Alpaca", "AnimalArmature|Jump_toIdle"),
    ("Apatosaurus", "Armature|Apatosaurus_Jump"),
    ("Bull", "AnimalArmature|Jump_toIdle"),
    ("Cow", "AnimalArmature|Jump_toIdle"),
    ("Deer", "AnimalArmature|Jump_toIdle"),
    ("Donkey", "AnimalArmature|Jump_toIdle"),
    ("Horse", "AnimalArmature|Jump_toIdle"),
    ("Horse_White", "AnimalArmature|Jump_toIdle"),
    ("Parasaurolophus", "Armature|Parasaurolophus_Jump"),
    ("ShibaInu", "AnimalArmature|Jump_ToIdle"),
    ("Stegosaurus", "Armature|Stegosaurus_Jump"),
    ("Trex", "Armature|TRex_Jump"),
    ("Velociraptor", "Armature|Velociraptor_Jump"),
)
#: Whole species that training never sees: a quadruped (its ShibaInu cousin is in training), a
#: fish (other fish are) and the snake (no other legless body plan is).
HELD_OUT_SPECIES: tuple[str, ...] = ("Husky", "Koi", "Snake")


@dataclass(frozen=True)
class DataConfig:
    """Which sequences become instances and how they are sampled.

    ``animals_dir`` "" = ``$ANIM4D_SHARED_DATA/animals`` or ``<repo>/../shared/data/animals``;
    ``creatures_dir`` likewise for ``creatures`` (``"-"`` = none), ``creature_clips`` clips per
    creature (0 = all); ``held_out_species``: whole files (stems) kept out of training;
    ``anime_dirs``: DeformingThings4D folders (each holding ``.anime`` files) to add;
    ``frames`` frames per instance sampled at ``fps`` from the clip start (a clip shorter than
    ``(frames - 1) / fps`` is sampled evenly over its duration); ``clips_per_animal`` 0 = all
    clips (else that many, evenly spread over the file order, the held-out clip excluded);
    ``procedural``: ``(seed, gait)`` creatures in training; ``fit_seeds``: unseen creatures for
    the shape-fitting table. SDF: ``sdf_uniform`` points in ``[-1, 1]^3`` and ``sdf_near``
    points at surface samples plus Gaussian noise, split evenly over ``near_sigmas``; the solid
    is the winding-number inside region united with a shell of half-thickness ``open_shell``
    around open parts (:func:`~.sdf.solid_sdf`). Motion: ``corr_points`` correspondences, the
    last ``corr_offset_fraction`` of them offset along the face normal (of each frame) by
    uniform ``+-corr_offset_sigma / 2``. ``pieces_touch``: distance under which two mesh parts
    count as one piece of the source (about one marching-cubes voxel).
    """

    animals_dir: str = ""
    creatures_dir: str = ""
    creature_clips: int = 1
    anime_dirs: tuple[str, ...] = ()
    frames: int = 17
    fps: float = 20.0
    clips_per_animal: int = 4
    held_out_species: tuple[str, ...] = HELD_OUT_SPECIES
    held_out_clips: tuple[tuple[str, str], ...] = HELD_OUT_CLIPS
    procedural: tuple[tuple[int, str], ...] = (
        (0, "walk"), (1, "trot"), (2, "gallop"), (3, "idle"),
        (4, "walk"), (5, "trot"), (6, "gallop"), (7, "walk"),
    )
    fit_seeds: tuple[int, ...] = (1001,)
    extent: float = 1.8
    sdf_uniform: int = 8_000
    sdf_near: int = 16_000
    near_sigmas: tuple[float, ...] = (0.01, 0.04)
    open_shell: float = 0.02
    corr_points: int = 2_048
    corr_offset_fraction: float = 0.3
    corr_offset_sigma: float = 0.02
    pieces_touch: float = 0.03
    iou_points: int = 10_000
    eval_points: int = 2_048
    weld_rel_tol: float = 1e-5

    @property
    def sdf_points(self) -> int:
        return self.sdf_uniform + self.sdf_near

    def resolved_animals_dir(self) -> Path | None:
        """The animals folder, or None when absent (procedural data still works)."""
        return _resolve(self.animals_dir, "animals")

    def resolved_creatures_dir(self) -> Path | None:
        """The creatures folder, or None when absent or switched off (``"-"``)."""
        return None if self.creatures_dir == "-" else _resolve(self.creatures_dir, "creatures")


def _resolve(given: str, name: str) -> Path | None:
    if given:
        p = Path(given)
        return p if p.is_dir() else None
    env = os.environ.get("ANIM4D_SHARED_DATA")
    for c in ([Path(env) / name] if env else []) + [REPO / ".." / "shared" / "data" / name]:
        if c.is_dir():
            return c.resolve()
    return None


@dataclass(frozen=True)
class ShapeNetConfig:
    """SDF auto-decoder: PE(xyz) ++ code -> ``layers`` x ``hidden`` (ReLU) -> sdf; the input is
    concatenated again before each layer in ``skip``; ``clamp``: SDF loss clamp (DeepSDF)."""

    code_dim: int = 64
    hidden: int = 128
    layers: int = 4
    skip: tuple[int, ...] = (2,)
    pe_freqs: int = 6
    clamp: float = 0.1


@dataclass(frozen=True)
class MotionNetConfig:
    """Displacement MLP: PE(canonical xyz) ++ shape code ++ pose code -> hidden -> xyz offset."""

    pose_dim: int = 32
    hidden: int = 128
    layers: int = 4
    skip: tuple[int, ...] = ()
    pe_freqs: int = 4


@dataclass(frozen=True)
class TrainConfig:
    """Schedules. ``*_batch``: instances (shape) or instance-frames (motion) per step;
    ``*_points``: points per instance per step; ``ft_*``: dictionary fine-tuning stages."""

    seed: int = 0
    shape_iters: int = 3_000
    shape_batch: int = 20
    shape_points: int = 512
    shape_lr: float = 1e-3
    code_lr: float = 3e-3
    code_reg: float = 1e-4
    motion_iters: int = 2_500
    motion_batch: int = 128
    motion_points: int = 64
    motion_lr: float = 1e-3
    ft_shape_iters: int = 600
    ft_motion_iters: int = 600
    ft_lr: float = 5e-3
    ft_residual_lr: float = 1e-3


@dataclass(frozen=True)
class DictConfig:
    """Top-k compression and the rank of the shared residual basis per layer (shape, motion).

    ``*_topk`` > 0: keep that many directions per layer (absolute, as the public code: 384
    shape, 768 motion); 0: keep the fraction ``*_keep`` of each layer's rank (at least 1).
    Output layers of rank <= 8 are always kept whole."""

    shape_keep: float = 0.75
    motion_keep: float = 0.75
    shape_topk: int = 0
    motion_topk: int = 0
    shape_residual: int = 8
    motion_residual: int = 8


@dataclass(frozen=True)
class EvalConfig:
    """Marching-cubes grid, test-time fitting iterations for held-out instances, shape fits."""

    mc_resolution: int = 64
    fit_iters: int = 200
    fit_lr: float = 1e-2
    max_train_instances: int = 16


@dataclass(frozen=True)
class Preset:
    name: str
    data: DataConfig = field(default_factory=DataConfig)
    shape: ShapeNetConfig = field(default_factory=ShapeNetConfig)
    motion: MotionNetConfig = field(default_factory=MotionNetConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    dictionary: DictConfig = field(default_factory=DictConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    device: str = "cpu"
    #: torch CPU threads; 1 by default: on a shared 2-core machine a second OpenMP thread that
    #: gets descheduled makes every small op wait (measured 5-10x slower than one thread)
    threads: int = 1

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> Preset:
        def build(kind, values):
            out = {}
            for f in dataclasses.fields(kind):
                if f.name in values:
                    v = values[f.name]
                    if isinstance(v, list):
                        v = tuple(tuple(x) if isinstance(x, list) else x for x in v)
                    out[f.name] = v
            return kind(**out)

        data = dict(d.get("data", {}))
        if "held_out_animal" in data and "held_out_species" not in data:  # version 1 configs
            data["held_out_species"] = [data.pop("held_out_animal")]
            data.setdefault("creatures_dir", "-")
        return cls(
            name=d["name"], data=build(DataConfig, data),
            shape=build(ShapeNetConfig, d.get("shape", {})),
            motion=build(MotionNetConfig, d.get("motion", {})),
            train=build(TrainConfig, d.get("train", {})),
            dictionary=build(DictConfig, d.get("dictionary", {})),
            eval=build(EvalConfig, d.get("eval", {})),
            device=d.get("device", "cpu"), threads=int(d.get("threads", 1)),
        )

    def left_out(self) -> str:
        """One line saying what training leaves out."""
        clips = ", ".join(f"{a}:{c}" for a, c in self.data.held_out_clips)
        return f"whole species {', '.join(self.data.held_out_species)}; clips {clips}"


def _tiny() -> Preset:
    return Preset(name="tiny")


def _paper() -> Preset:
    return Preset(
        name="paper",
        data=DataConfig(clips_per_animal=0, creature_clips=0, sdf_uniform=50_000,
                        sdf_near=150_000, open_shell=2.0 / 256, pieces_touch=2.0 / 256,
                        corr_points=8_192, iou_points=100_000,
                        procedural=tuple((s, g) for s in range(32)
                                         for g in ("walk", "trot", "gallop", "idle"))),
        shape=ShapeNetConfig(code_dim=384, hidden=512, layers=8, skip=(4,), pe_freqs=8),
        motion=MotionNetConfig(pose_dim=384, hidden=1024, layers=8, skip=(4,), pe_freqs=8),
        train=TrainConfig(shape_iters=100_000, shape_batch=32, shape_points=8_192,
                          shape_lr=5e-4, code_lr=1e-3, motion_iters=100_000, motion_batch=64,
                          motion_points=2_048, motion_lr=5e-4, ft_shape_iters=20_000,
                          ft_motion_iters=20_000, ft_lr=2e-3, ft_residual_lr=5e-4),
        dictionary=DictConfig(shape_topk=384, motion_topk=768, shape_residual=256,
                              motion_residual=512),
        eval=EvalConfig(mc_resolution=256, fit_iters=2_000, max_train_instances=0),
        device="cuda", threads=0,
    )


PRESETS = {"tiny": _tiny, "paper": _paper}


def get_preset(name: str) -> Preset:
    """The preset called ``name``; ParamError lists the accepted names."""
    try:
        return PRESETS[name]()
    except KeyError:
        raise ParamError(
            f"unknown DNF preset {name!r}; accepted: {', '.join(PRESETS)}"
        ) from None
