"""DDIM sampling loops: plain, with known entries (inpainting), and window by window in time.

Known entries (inpainting): before the denoiser is called at timestep t, the known entries of
the current sample are replaced by the known clean values noised to that same t,
``sqrt(abar_t) x0 + sqrt(1 - abar_t) eps`` (fresh ``eps`` each step), so the denoiser sees
every entry at the noise level its timestep says. (The paper's public code noises them to t+1,
one level off.) After the last step the known entries are copied back exactly.

Long motions: the first window of ``window`` frames is generated from noise (marked as starting
at the rest pose); each next window keeps the last ``context`` frames generated so far as known
frames and generates ``window - context`` new ones after them, until ``frames`` frames exist.

Replacing known entries alone does not quite sample the new frames given the known ones: with
the exact denoiser of a smooth Gaussian process (tests/dnf/test_gen_motion.py, 20 steps) the
mean squared step across a window seam was 0.21 against 0.08 inside a window. ``resample``
rounds (RePaint's harmonisation: noise the step's result back to the step's level and denoise
it again) brought it to 0.10 with 2 rounds, at 3x the denoiser calls of continuation windows.

Progress: ``progress(stage, fraction, message)`` after every diffusion step (fraction of all
steps of all windows); ``cancelled()`` is polled before every step and True raises
:class:`~backend.jobs.api.JobCancelled`. A job passes ``ctx.progress`` and ``ctx.cancelled``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from backend.jobs.api import JobCancelled
from backend.torch_threads import single_thread

from .noise import NoiseConfig

Progress = Callable[[str, float, str], None]
Denoise = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x_t [B, ...], t [B]) -> out


@dataclass
class StepCounter:
    """Counts diffusion steps over several sampling runs for progress and cancellation."""

    total: int
    progress: Progress | None = None
    cancelled: Callable[[], bool] | None = None
    stage: str = "sample"
    done: int = 0

    def before(self) -> None:
        if self.cancelled is not None and self.cancelled():
            raise JobCancelled(f"{self.stage} cancelled at diffusion step {self.done} of "
                               f"{self.total}")

    def after(self) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress(self.stage, self.done / max(1, self.total),
                          f"diffusion step {self.done}/{self.total}")


def ddim_sample(denoise: Denoise, shape: tuple[int, ...], noise: NoiseConfig, steps: int,
                generator: torch.Generator, known: torch.Tensor | None = None,
                known_mask: torch.Tensor | None = None, eta: float = 0.0,
                counter: StepCounter | None = None, resample: int = 0) -> torch.Tensor:
    """A sample ``shape`` = ``[B, ...]`` (float32) after ``steps`` DDIM steps.

    ``known`` (``shape``) and ``known_mask`` (bool, broadcastable to ``shape``): entries fixed
    to ``known`` (see module docstring). ``resample``: with known entries, extra rounds per
    step that noise the result back to the step's level and denoise it again (RePaint's
    harmonisation; each round costs one more denoiser call). ``counter`` reports progress and
    checks cancellation (one tick per denoiser call).
    """
    if (known is None) != (known_mask is None):
        raise ValueError("known and known_mask go together")
    sched = noise.sampling_scheduler(steps)
    counter = counter or StepCounter(total=steps * (1 + (resample if known is not None else 0)))
    b = shape[0]
    x = torch.randn(shape, generator=generator) * sched.init_noise_sigma
    mask = None if known_mask is None else known_mask.expand(shape)
    rounds = 1 + (resample if mask is not None else 0)
    jump = noise.train_steps // sched.num_inference_steps
    with single_thread():  # a few dozen tokens: one thread is fastest (see its module)
        for t in sched.timesteps:
            tb = t.reshape(1).expand(b)
            for r in range(rounds):
                counter.before()
                if mask is not None:
                    eps = torch.randn(shape, generator=generator)
                    x = torch.where(mask, sched.add_noise(known, eps, tb), x)
                with torch.no_grad():
                    out = denoise(x, tb)
                prev = sched.step(out, t, x, eta=eta, generator=generator).prev_sample
                if r + 1 < rounds:  # back to level t: q(x_t | x_prev)
                    ab_t = sched.alphas_cumprod[int(t)]
                    ab_prev = sched.alphas_cumprod[int(t) - jump] if int(t) >= jump \
                        else sched.final_alpha_cumprod
                    keep = ab_t / ab_prev
                    fresh = torch.randn(shape, generator=generator)
                    x = keep.sqrt() * prev + (1 - keep).sqrt() * fresh
                else:
                    x = prev
                counter.after()
    if mask is not None:
        x = torch.where(mask, known, x)
    return x


def window_plan(frames: int, window: int, context: int) -> list[tuple[int, int]]:
    """``(first frame, frame count)`` of each window: the first covers ``[0, window)``, each
    next one starts ``context`` frames before the end of what exists."""
    if frames < 1:
        raise ValueError(f"frame count must be at least 1, got {frames}")
    if not 1 <= context < window:
        raise ValueError(f"context must be between 1 and {window - 1} frames, got {context}")
    plan = [(0, min(window, frames))]
    end = plan[0][1]
    while end < frames:
        new = min(window - context, frames - end)
        plan.append((end - context, context + new))
        end += new
    return plan


WindowDenoise = Callable[[torch.Tensor, torch.Tensor, bool], torch.Tensor]


def sample_frames(denoise: WindowDenoise, batch: int, frames: int, window: int, context: int,
                  token_shape: tuple[int, int], noise: NoiseConfig, steps: int,
                  generator: torch.Generator, progress: Progress | None = None,
                  cancelled: Callable[[], bool] | None = None, eta: float = 0.0,
                  stage: str = "motion", resample: int = 0) -> torch.Tensor:
    """``frames`` frames ``[B, frames, n, W]`` generated window by window (module docstring).

    ``denoise(x [B, F, n, W], t [B], at_start)`` is the window denoiser (shape already bound).
    """
    plan = window_plan(frames, window, context)
    counter = StepCounter((1 + (len(plan) - 1) * (1 + resample)) * steps, progress, cancelled,
                          stage)
    out = torch.zeros(batch, frames, *token_shape)
    for i, (begin, count) in enumerate(plan):
        shape = (batch, count, *token_shape)

        def den(x, t, first=(i == 0)):
            return denoise(x, t, first)

        if i == 0:
            win = ddim_sample(den, shape, noise, steps, generator, eta=eta, counter=counter)
        else:
            known = torch.zeros(shape)
            known[:, :context] = out[:, begin:begin + context]
            mask = (torch.arange(count) < context)[None, :, None, None]
            win = ddim_sample(den, shape, noise, steps, generator, known, mask, eta, counter,
                              resample)
        out[:, begin:begin + count] = win
    return out
