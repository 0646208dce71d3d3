"""A DNF model's generator, kept inside the model's folder and tied to its dictionary.

Layout: ``<model folder>/generator/`` holds ``shape.json``/``shape.safetensors`` and
``motion.json``/``motion.safetensors`` (:func:`~.generator.save_generator`) and
``generator.json``: ``format`` ``anim4d-dnf-generator-set``, ``dictionary_sha256`` (the
``model_sha256`` of the dictionary whose stage-d vectors it was trained on), ``stage``, the
preset, the SHA-256 of both weight files and the command that made it.

A generator samples vectors of one dictionary: after the dictionary is retrained its vectors
mean something else, so :func:`load_model_generator` refuses a generator whose recorded
dictionary hash is not the model's, with the command that retrains it (:data:`FIT_COMMAND`).

Presets (:func:`generator_preset`): ``tiny`` sizes train in minutes on 2 CPU cores and sample one
creature (shape + 32 frames) in well under a second of diffusion.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from shared.errors import FormatError

from ..model_files import file_sha256

GENERATOR_DIR = "generator"
SET_FORMAT = "anim4d-dnf-generator-set"
SET_VERSION = 1
FIT_COMMAND = "python -m backend.methods.dnf.cli fit-generator --model-dir {folder}"
WEIGHTS = ("shape.safetensors", "motion.safetensors")
#: both presets leave clips moving under 1 % of their size out of motion training (:mod:`.clips`)
MIN_CLIP_MOTION = 0.01


@dataclass(frozen=True)
class GeneratorPreset:
    name: str
    shape: object  # ShapeDiffusionConfig
    motion: object  # MotionDiffusionConfig


def generator_preset(name: str, frames: int) -> GeneratorPreset:
    """``tiny`` (CPU), ``default`` (:mod:`.config`'s defaults) or ``paper`` (the public code's
    GPT denoiser: 1280 wide, 32 blocks, 16 heads, 500 diffusion steps, x0 prediction; for a GPU)
    sizes; ``frames``: the training clips' frame count (the motion window is at most that)."""
    from .config import (
        DenoiserConfig,
        MotionDenoiserConfig,
        MotionDiffusionConfig,
        OptimConfig,
        ShapeDiffusionConfig,
    )
    from .noise import NoiseConfig

    window = min(16, frames)  # every preset's motion window
    if name == "tiny":
        return GeneratorPreset(
            "tiny",
            ShapeDiffusionConfig(denoiser=DenoiserConfig(width=64, depth=3, heads=4),
                                 optim=OptimConfig(iters=3000, batch=64, lr=1e-3, warmup=100,
                                                   ema=0.995, log_every=50)),
            MotionDiffusionConfig(
                denoiser=MotionDenoiserConfig(width=48, depth=2, heads=4, window=window),
                optim=OptimConfig(iters=3000, batch=16, lr=1e-3, warmup=100, ema=0.995,
                                  log_every=50),
                context=max(1, min(4, window - 1)), resample=1,
                min_clip_motion=MIN_CLIP_MOTION))
    if name == "default":  # the gen.config defaults (GPU-sized for the tiny dictionary)
        return GeneratorPreset("default", ShapeDiffusionConfig(), MotionDiffusionConfig(
            denoiser=MotionDenoiserConfig(window=window), context=max(1, min(8, window - 1)),
            min_clip_motion=MIN_CLIP_MOTION))
    if name == "paper":  # the public code's denoiser (HyperDiffusion's GPT): GPU-sized
        noise = NoiseConfig(train_steps=500)
        optim = OptimConfig(iters=100_000, batch=64, lr=1e-4, warmup=1000, ema=0.9999,
                            log_every=100)
        return GeneratorPreset(
            "paper",
            ShapeDiffusionConfig(denoiser=DenoiserConfig(width=1280, depth=32, heads=16),
                                 noise=noise, optim=optim),
            MotionDiffusionConfig(
                denoiser=MotionDenoiserConfig(width=1280, depth=32, heads=16, window=window),
                noise=noise, optim=optim, context=max(1, min(8, window - 1)),
                min_clip_motion=MIN_CLIP_MOTION))
    raise FormatError(f"unknown generator preset {name!r}; accepted: tiny, default, paper")


def generator_info(model_folder: Path) -> dict | None:
    """``generator.json`` of a model folder (no torch), or None when it has no generator.
    Raises :class:`FormatError` for a damaged one."""
    path = Path(model_folder) / GENERATOR_DIR / "generator.json"
    if not path.is_file():
        return None
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise FormatError(f"{GENERATOR_DIR}/generator.json: unreadable ({err})") from None
    if not isinstance(info, dict) or info.get("format") != SET_FORMAT:
        raise FormatError(f"{GENERATOR_DIR}/generator.json: not a DNF generator")
    for name in WEIGHTS:
        if not (path.parent / name).is_file():
            raise FormatError(f"{GENERATOR_DIR}/{name}: not found")
    return info


def save_model_generator(model_folder: Path, shape_gen, motion_gen, dictionary_sha256: str,
                         preset: str, stage: str = "d") -> Path:
    """Write both generators into ``<model_folder>/generator/`` with ``generator.json``."""
    from .generator import save_generator

    folder = Path(model_folder) / GENERATOR_DIR
    save_generator(shape_gen, folder, "shape")
    save_generator(motion_gen, folder, "motion")
    info = {"format": SET_FORMAT, "version": SET_VERSION, "dictionary_sha256": dictionary_sha256,
            "stage": stage, "preset": preset,
            "weights_sha256": {n: file_sha256(folder / n) for n in WEIGHTS},
            "command": FIT_COMMAND.format(folder=model_folder) + f" --preset {preset}"}
    tmp = folder / "generator.json.tmp"
    tmp.write_text(json.dumps(info, indent=1))
    tmp.replace(folder / "generator.json")
    return folder


def load_model_generator(model_folder: Path, model_sha256: str, label: str | None = None):
    """``(shape generator, motion generator, info)`` of a model folder, checked: the weights'
    SHA-256 and the dictionary hash they were trained for. Errors name the model (``label``)
    and the command that (re)makes the generator."""
    from .generator import load_generator

    folder = Path(model_folder)
    who = f"model {label!r}" if label else str(folder)
    remake = FIT_COMMAND.format(folder=label and f"<models dir>/dnf/{label}" or folder)
    info = generator_info(folder)
    if info is None:
        raise FormatError(f"{who} has no generator; train one with `{remake}`",
                          "missing_checkpoint")
    if info.get("dictionary_sha256") != model_sha256:
        raise FormatError(
            f"{who}: its generator was trained for dictionary "
            f"{str(info.get('dictionary_sha256'))[:12]}..., but the dictionary is now "
            f"{model_sha256[:12]}... (retrained since); retrain the generator with `{remake}`",
            "bad_checkpoint")
    gdir = folder / GENERATOR_DIR
    for name, want in (info.get("weights_sha256") or {}).items():
        if file_sha256(gdir / name) != want:
            raise FormatError(f"{who}: {GENERATOR_DIR}/{name} does not match the SHA-256 in "
                              f"generator.json (damaged or replaced); retrain it with "
                              f"`{remake}`", "bad_checkpoint")
    return load_generator(gdir, "shape"), load_generator(gdir, "motion"), info


def fit_generator(model, model_folder: Path, preset: str | GeneratorPreset = "tiny",
                  stage: str = "d",
                  progress: Callable[[str, float, str], None] | None = None,
                  iters_scale: float = 1.0, device: str = "cpu") -> Path:
    """Train the shape and motion diffusion on ``model``'s fitted ``stage`` vectors and save
    them into ``model_folder`` (the folder ``model`` was loaded from); ``device``: where the
    denoisers train ("cpu" or "cuda")."""
    from dataclasses import replace

    from .clips import CLIP_RESOLUTION, moving_clips
    from .training import train_motion_diffusion, train_shape_diffusion

    if stage not in model.stages:
        raise FormatError(f"{model_folder}: the model holds no stage {stage!r} "
                          f"(it holds {', '.join(model.stages)})")
    shapes, motions = model.shape_vecs[stage], model.motion_vecs[stage]
    p = preset if isinstance(preset, GeneratorPreset) else \
        generator_preset(preset, int(motions.shape[1]))
    scfg, mcfg = p.shape, p.motion
    if iters_scale != 1.0:
        scfg = replace(scfg, optim=replace(scfg.optim,
                                           iters=max(1, int(scfg.optim.iters * iters_scale))))
        mcfg = replace(mcfg, optim=replace(mcfg.optim,
                                           iters=max(1, int(mcfg.optim.iters * iters_scale))))
    sgen = train_shape_diffusion(scfg, shapes, model.shape_layout(stage), progress,
                                 device=device)
    if progress is not None and mcfg.min_clip_motion > 0:
        progress("clips", 0.0, f"measuring the motion of {shapes.shape[0]} clips")
    keep, still = moving_clips(model, stage, mcfg.min_clip_motion)
    mgen = train_motion_diffusion(mcfg, shapes[keep], motions[keep], sgen.tokenizer,
                                  model.motion_layout(stage), progress, device=device)
    mgen.info["still_clips"] = still  # [[name, motion share], ...] left out of motion training
    mgen.info["clip_motion_resolution"] = CLIP_RESOLUTION
    for g in (sgen, mgen):
        g.info["dictionary_sha256"] = model.sha256
        g.info["frame_rate"] = float(model.preset.data.fps)
    return save_model_generator(model_folder, sgen, mgen, model.sha256, p.name, stage)
