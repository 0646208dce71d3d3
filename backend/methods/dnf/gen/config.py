"""Configs of the generators (dataclasses, JSON round trip): denoiser sizes, noise, training.

The paper's code (HyperDiffusion's GPT) is far larger (1280 wide, 32 layers); these defaults
suit the ``tiny`` dictionary on a CPU and are meant to be scaled up with the data.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field

from .noise import NoiseConfig


@dataclass(frozen=True)
class DenoiserConfig:
    """Transformer width, depth (blocks), heads and feed-forward ratio."""

    width: int = 128
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0

    def __post_init__(self) -> None:
        if self.width % self.heads:
            raise ValueError(f"width {self.width} is not divisible by {self.heads} heads")
        if self.depth < 1:
            raise ValueError(f"depth must be at least 1, got {self.depth}")


@dataclass(frozen=True)
class MotionDenoiserConfig(DenoiserConfig):
    """Plus: ``window`` frames per denoised window (learned frame positions cover it) and
    ``shape_depth`` self-attention blocks that encode the shape tokens before cross-attention."""

    window: int = 16
    shape_depth: int = 1


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with a linear warm-up; ``ema`` decay of the sampled weights (0 = none);
    ``log_every``: steps per recorded mean loss."""

    iters: int = 4000
    batch: int = 64
    lr: float = 3e-4
    weight_decay: float = 0.0
    warmup: int = 100
    grad_clip: float = 1.0
    ema: float = 0.0
    seed: int = 0
    log_every: int = 50


@dataclass(frozen=True)
class ShapeDiffusionConfig:
    denoiser: DenoiserConfig = field(default_factory=DenoiserConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)


@dataclass(frozen=True)
class MotionDiffusionConfig:
    """``reverse_prob``: chance that a training window is played backwards (augmentation);
    ``start_prob``: chance that a training window starts at frame 0 (the rest pose), which the
    first window of a sample is generated as; ``context``: frames kept as known when a sample is
    longer than the window, and ``resample``: harmonisation rounds per step of a continuation
    window (sampling defaults, :mod:`.sampling`); ``min_clip_motion``: training clips whose
    decoded motion moves the vertices less than this share of the bounding-box diagonal are
    left out of motion training (:mod:`.clips`; 0 = keep all). It is applied by
    :func:`.store.fit_generator`, which has the model to decode the clips with;
    :func:`.training.train_motion_diffusion` trains on the vectors it is given."""

    denoiser: MotionDenoiserConfig = field(default_factory=MotionDenoiserConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    reverse_prob: float = 0.5
    start_prob: float = 0.25
    context: int = 8
    resample: int = 2
    min_clip_motion: float = 0.0

    def __post_init__(self) -> None:
        if not 1 <= self.context < self.denoiser.window:
            raise ValueError(f"context must be between 1 and window - 1 = "
                             f"{self.denoiser.window - 1}, got {self.context}")
        if self.resample < 0:
            raise ValueError(f"resample must be at least 0, got {self.resample}")
        if not 0.0 <= self.min_clip_motion < 1.0:
            raise ValueError(f"min_clip_motion must be in [0, 1), got {self.min_clip_motion}")
        for name in ("reverse_prob", "start_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")


def to_json(cfg) -> dict:
    return dataclasses.asdict(cfg)


def from_json(cls, d: dict):
    """Rebuild dataclass ``cls`` from :func:`to_json` output (nested dataclasses, tuples)."""
    hints = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        if f.name not in d:
            continue
        v, kind = d[f.name], hints[f.name]
        if dataclasses.is_dataclass(kind):
            v = from_json(kind, v)
        elif isinstance(v, list):
            v = tuple(v)
        out[f.name] = v
    return cls(**out)
