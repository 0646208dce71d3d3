"""Training entry points: fitted flat vectors -> a trained shape or motion generator.

Each step draws a batch of clean standardised tokens x0 (shape instances, or motion windows with
time-reversal augmentation, :mod:`.windows`), timesteps t uniform over the training steps and
Gaussian noise, noises x0 with diffusers' DDPM scheduler and regresses the denoiser's output on
the target (x0 by default) with a mean squared error over the real token entries (padding
excluded). AdamW, linear warm-up, gradient clipping, optional EMA of the weights.

Progress: ``progress("train-shape" | "train-motion", fraction, message)`` every ``log_every``
steps; ``cancelled()`` is polled every step and True raises
:class:`~backend.jobs.api.JobCancelled`.

``device``: where the denoiser trains ("cpu", "cuda"). Batches, noise and timesteps are drawn on
the CPU from the seeded generator and moved there, so a seed draws the same batches on every
device; the trained denoiser comes back on the CPU (saving and sampling run there).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable

import torch
from torch import nn

from backend.jobs.api import JobCancelled

from ..layout import FlatLayout
from .config import MotionDiffusionConfig, OptimConfig, ShapeDiffusionConfig
from .generator import MotionGenerator, ShapeGenerator
from .motion_denoiser import MotionDenoiser
from .noise import NoiseConfig, training_target
from .sampling import Progress
from .shape_denoiser import ShapeDenoiser
from .tokens import Tokenizer
from .windows import sample_windows

#: random generator -> (clean tokens x0 ``[B, ...]``, extra denoiser arguments)
BatchFn = Callable[[torch.Generator], tuple[torch.Tensor, tuple]]


def train_shape_diffusion(cfg: ShapeDiffusionConfig, vectors: torch.Tensor, layout: FlatLayout,
                          progress: Progress | None = None,
                          cancelled: Callable[[], bool] | None = None,
                          device: str = "cpu") -> ShapeGenerator:
    """Train the unconditional shape denoiser on fitted shape vectors ``[N, D_shape]``."""
    if vectors.dim() != 2:
        raise ValueError(f"shape vectors must be [N, D], got {tuple(vectors.shape)}")
    tok = Tokenizer.fit(layout, vectors)
    x0_all = tok.to_tokens(vectors).float()  # [N, n, W]
    torch.manual_seed(cfg.optim.seed)
    model = ShapeDenoiser(cfg.denoiser, tok.mask)

    def batch(gen: torch.Generator) -> tuple[torch.Tensor, tuple]:
        idx = torch.randint(x0_all.shape[0], (cfg.optim.batch,), generator=gen)
        return x0_all[idx], ()

    model, info = _fit(model, batch, tok.mask, cfg.noise, cfg.optim, progress, cancelled,
                       "train-shape", device)
    info["instances"] = int(vectors.shape[0])
    return ShapeGenerator(cfg, tok, model, info)


def train_motion_diffusion(cfg: MotionDiffusionConfig, shape_vectors: torch.Tensor,
                           motion_vectors: torch.Tensor, shape_tokenizer: Tokenizer,
                           layout: FlatLayout, progress: Progress | None = None,
                           cancelled: Callable[[], bool] | None = None,
                           device: str = "cpu") -> MotionGenerator:
    """Train the shape-conditioned motion denoiser on windows of fitted motion vectors
    ``[N, T, D_motion]`` of the instances whose shape vectors are ``[N, D_shape]``
    (standardised with ``shape_tokenizer``, the shape generator's)."""
    if motion_vectors.dim() != 3 or shape_vectors.dim() != 2:
        raise ValueError(f"need shape vectors [N, D] and motion vectors [N, T, D]; got "
                         f"{tuple(shape_vectors.shape)} and {tuple(motion_vectors.shape)}")
    tok = Tokenizer.fit(layout, motion_vectors)
    motion = tok.to_tokens(motion_vectors).float()  # [N, T, n, W]
    shapes = shape_tokenizer.to_tokens(shape_vectors).float()  # [N, S, Ws]
    torch.manual_seed(cfg.optim.seed)
    model = MotionDenoiser(cfg.denoiser, tok.mask, shape_tokenizer.mask)

    def batch(gen: torch.Generator) -> tuple[torch.Tensor, tuple]:
        wb = sample_windows(motion, shapes, cfg.optim.batch, cfg.denoiser.window,
                            cfg.reverse_prob, cfg.start_prob, gen)
        return wb.frames, (wb.shapes, wb.at_start)

    model, info = _fit(model, batch, tok.mask, cfg.noise, cfg.optim, progress, cancelled,
                       "train-motion", device)
    info["instances"] = int(motion_vectors.shape[0])
    info["frames"] = int(motion_vectors.shape[1])
    return MotionGenerator(cfg, shape_tokenizer, tok, model, info)


def _fit(model: nn.Module, batch: BatchFn, mask: torch.Tensor, noise: NoiseConfig,
         opt: OptimConfig, progress: Progress | None, cancelled: Callable[[], bool] | None,
         stage: str, device: str = "cpu") -> tuple[nn.Module, dict]:
    """The shared loop; returns the trained model (its EMA when ``opt.ema``) in eval mode, on
    the CPU."""
    gen = torch.Generator().manual_seed(opt.seed)
    sched = noise.training_scheduler()
    model = model.to(device)
    optim = torch.optim.AdamW(model.parameters(), lr=opt.lr, weight_decay=opt.weight_decay)
    warm = torch.optim.lr_scheduler.LambdaLR(
        optim, lambda s: min(1.0, (s + 1) / max(1, opt.warmup)))
    ema = copy.deepcopy(model).requires_grad_(False) if opt.ema > 0 else None
    real_cpu = mask.float()
    real = real_cpu.to(device)
    losses, window, t0 = [], [], time.monotonic()
    model.train()
    for step in range(opt.iters):
        if cancelled is not None and cancelled():
            raise JobCancelled(f"{stage} cancelled at step {step} of {opt.iters}")
        x0, extra = batch(gen)
        eps = torch.randn(x0.shape, generator=gen) * real_cpu
        t = torch.randint(noise.train_steps, (x0.shape[0],), generator=gen)
        x0, eps, t = x0.to(device), eps.to(device), t.to(device)
        extra = tuple(e.to(device) for e in extra)
        xt = sched.add_noise(x0, eps, t)
        target = training_target(noise, sched, x0, eps, t)
        pred = model(xt, t, *extra)
        loss = ((pred - target) ** 2 * real).sum() / (real.sum() * x0[..., 0, 0].numel())
        optim.zero_grad(set_to_none=True)
        loss.backward()
        if opt.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), opt.grad_clip)
        optim.step()
        warm.step()
        if ema is not None:
            with torch.no_grad():
                for pe, pm in zip(ema.parameters(), model.parameters(), strict=True):
                    pe.lerp_(pm, 1.0 - opt.ema)
        window.append(loss.item())
        if len(window) == opt.log_every or step == opt.iters - 1:
            losses.append(sum(window) / len(window))
            window = []
            if progress is not None:
                progress(stage, (step + 1) / opt.iters,
                         f"step {step + 1}/{opt.iters} loss {losses[-1]:.4f}")
    out = (ema if ema is not None else model).to("cpu")
    info = {"iters": opt.iters, "seconds": round(time.monotonic() - t0, 2),
            "losses": [round(v, 6) for v in losses], "log_every": opt.log_every}
    return out.eval(), info
