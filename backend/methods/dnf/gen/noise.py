"""Noise schedules, from diffusers: DDPM for training, DDIM for sampling (never hand-written).

Both schedulers are built from one :class:`NoiseConfig`, so they share ``alphas_cumprod``.
Sampling uses ``timestep_spacing="trailing"``: the first of the user's ``steps`` is the last
training timestep (pure noise), whatever ``steps`` is. Values are never clipped (standardised
tokens are not bounded by 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import DDIMScheduler, DDPMScheduler

from shared.errors import ParamError

#: What the denoiser may predict. Not epsilon: sampling starts at the last training timestep,
#: where the cosine schedule leaves almost no signal (alphas_cumprod ~ 1e-9), and recovering x0
#: from a predicted epsilon there divides by its square root (toy samples landed 10^3-10^4
#: standard deviations away).
PREDICTIONS = ("sample", "v_prediction")
BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")


@dataclass(frozen=True)
class NoiseConfig:
    """``train_steps`` diffusion steps; ``prediction``: what the denoiser outputs (``sample`` =
    the clean tokens x0, as the paper's code, or ``v_prediction``)."""

    train_steps: int = 1000
    beta_schedule: str = "squaredcos_cap_v2"
    beta_start: float = 1e-4
    beta_end: float = 0.02
    prediction: str = "sample"

    def __post_init__(self) -> None:
        if self.prediction not in PREDICTIONS:
            raise ValueError(f"prediction {self.prediction!r}; accepted: {', '.join(PREDICTIONS)}")
        if self.beta_schedule not in BETA_SCHEDULES:
            raise ValueError(f"beta_schedule {self.beta_schedule!r}; accepted: "
                             f"{', '.join(BETA_SCHEDULES)}")
        if self.train_steps < 2:
            raise ValueError(f"train_steps must be at least 2, got {self.train_steps}")

    def _common(self) -> dict:
        return {"num_train_timesteps": self.train_steps, "beta_schedule": self.beta_schedule,
                "beta_start": self.beta_start, "beta_end": self.beta_end,
                "prediction_type": self.prediction, "clip_sample": False}

    def training_scheduler(self) -> DDPMScheduler:
        """``add_noise(x0, noise, t)`` and ``alphas_cumprod`` for training."""
        return DDPMScheduler(**self._common())

    def sampling_scheduler(self, steps: int) -> DDIMScheduler:
        """A DDIM scheduler set to ``steps`` denoising steps (1..train_steps)."""
        if not 1 <= int(steps) <= self.train_steps:
            raise ParamError(f"diffusion steps must be between 1 and {self.train_steps}, "
                             f"got {steps}")
        sched = DDIMScheduler(**self._common(), timestep_spacing="trailing",
                              set_alpha_to_one=True)
        sched.set_timesteps(int(steps))
        return sched


def training_target(noise_cfg: NoiseConfig, sched: DDPMScheduler, x0: torch.Tensor,
                    noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """What the denoiser should output for clean ``x0``, ``noise`` (same shape ``[B, ...]``) and
    timesteps ``t`` ``[B]``."""
    if noise_cfg.prediction == "sample":
        return x0
    return sched.get_velocity(x0, noise, t)
