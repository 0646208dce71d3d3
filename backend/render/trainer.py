"""One Gaussian training loop, shared by the static fit and DS4D's static and dynamic stages.

:class:`GaussianTrainer` owns the Gaussian parameters (``means``, ``scales``, ``quats``,
``opacities``, ``sh0``, ``shN``), one Adam per parameter, and a densification strategy; a stage is
described by hooks:

- ``render(step, params) -> RenderOut``: render whatever the stage renders from the current
  parameters (canonical Gaussians, or Gaussians moved by a deformation field) and give the
  targets along;
- ``loss(step, out) -> (loss, metrics)``: the scalar to minimise and numbers to log (a value
  may be a callable, evaluated only on the steps that log);
- ``extra_optimizers``: further optimisers (a deformation MLP, a HexPlane) stepped with the
  Gaussians' every step;
- ``schedule(step)``: sets learning rates before the step (exponential decays);
- ``on_refine(step, params, entry)``: called after densification grew, split or pruned, with the
  strategy's log entry. Per-Gaussian state that must follow the Gaussians through a refinement
  (``[N, ...]`` tensors) is given as ``gaussian_state``: it is carried in the parameter dict
  without an optimiser, so duplication, splitting and pruning index it exactly as they index the
  Gaussians (read it back with :meth:`GaussianTrainer.state`).

Every step polls ``cancelled()``; by default a cancel raises :class:`JobCancelled`, with
``keep_on_cancel`` the stage stops and returns (the trainer keeps the latest parameters).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from backend.jobs.api import JobCancelled

from .gaussians import Gaussians
from .strategy import CPUDefaultStrategy, DensifyConfig

GAUSSIAN_KEYS = ("means", "scales", "quats", "opacities", "sh0", "shN")
Progress = Callable[[str, float, str], None]


@dataclass
class RenderOut:
    """What a render hook returns: rgb [C, H, W, 3], alpha [C, H, W, 1], the rasterizer's
    ``info`` (``means2d`` etc., for densification) and anything the loss hook needs."""

    rgb: Tensor
    alpha: Tensor
    info: dict
    extras: dict = field(default_factory=dict)


@dataclass
class StageStats:
    steps: int
    seconds: float
    final_loss: float
    stopped_by_budget: bool = False
    cancelled: bool = False
    history: list[dict] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase, summed


RenderHook = Callable[[int, dict], RenderOut]
LossHook = Callable[[int, RenderOut], tuple[Tensor, dict]]


def exp_decay(lr0: float, lr1: float, step: int, steps: int) -> float:
    """Log-linear interpolation from ``lr0`` at step 0 to ``lr1`` at ``steps`` (3DGS's schedule)."""
    if steps <= 0 or lr0 <= 0:
        return lr0
    f = min(max(step / steps, 0.0), 1.0)
    return math.exp((1 - f) * math.log(lr0) + f * math.log(lr1))


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for group in opt.param_groups:
        group["lr"] = lr


class GaussianTrainer:
    """Args:
        gaussians: the starting Gaussians (moved to ``device`` and made trainable).
        lrs: learning rate per Gaussian parameter name (:data:`GAUSSIAN_KEYS`).
        strategy: a :class:`CPUDefaultStrategy`, gsplat's ``DefaultStrategy`` (``gsplat_state``
            then holds its state), or None for no densification.
        gaussian_state: optional per-Gaussian tensors [N, ...] that follow refinements.
    """

    def __init__(self, gaussians: Gaussians, lrs: dict[str, float], strategy=None,
                 device: str | torch.device = "cpu", gsplat_state: dict | None = None,
                 gaussian_state: dict[str, Tensor] | None = None):
        device = torch.device(device)
        self.device = device
        src = {"means": gaussians.means, "scales": gaussians.log_scales,
               "quats": gaussians.quats, "opacities": gaussians.opacity_logits,
               "sh0": gaussians.sh0, "shN": gaussians.shN}
        self.params: dict[str, nn.Parameter] = {
            k: nn.Parameter(v.detach().to(device)) for k, v in src.items()}
        self.optimizers = {
            k: torch.optim.Adam([{"params": [p], "lr": lrs[k], "name": k}], eps=1e-15)
            for k, p in self.params.items()}
        self.state_keys = tuple(gaussian_state or {})
        for k, v in (gaussian_state or {}).items():
            if k in self.params or v.shape[0] != src["means"].shape[0]:
                raise ValueError(f"gaussian_state {k!r} must be [N, ...] with a new name")
            self.params[k] = nn.Parameter(v.detach().to(device), requires_grad=False)
        self.strategy = strategy
        self.gsplat_state = gsplat_state
        self.step = 0  # global step over all stages

    # ---- access ---------------------------------------------------------------------------
    def gaussians(self) -> Gaussians:
        """The live Gaussians (tensors that require grad: read, do not modify)."""
        p = self.params
        return Gaussians(p["means"], p["quats"], p["scales"], p["opacities"], p["sh0"], p["shN"])

    def snapshot(self) -> Gaussians:
        """A detached CPU copy of the current Gaussians."""
        g = self.gaussians()
        return Gaussians(*(t.detach().cpu().clone() for t in
                           (g.means, g.quats, g.log_scales, g.opacity_logits, g.sh0, g.shN)))

    def state(self, name: str) -> Tensor:
        return self.params[name].data

    @property
    def count(self) -> int:
        return int(self.params["means"].shape[0])

    # ---- the loop -------------------------------------------------------------------------
    def run(
        self,
        steps: int,
        render: RenderHook,
        loss: LossHook,
        *,
        stage: str = "fit",
        extra_optimizers: dict[str, torch.optim.Optimizer] | None = None,
        schedule: Callable[[int], None] | None = None,
        on_refine: Callable[[int, dict, dict], None] | None = None,
        progress: Progress | None = None,
        cancelled: Callable[[], bool] | None = None,
        keep_on_cancel: bool = False,
        progress_every: int = 10,
        on_step: Callable[[int, RenderOut, float], None] | None = None,
        time_budget_s: float | None = None,
        fraction: Callable[[int], float] | None = None,
        densify_strategy: bool = True,
    ) -> StageStats:
        """Run ``steps`` steps of one stage. ``step`` passed to hooks counts from 0 within the
        stage (``self.step`` counts over all stages). ``fraction(i)``: the progress fraction
        reported after stage step ``i`` (default ``(i + 1) / steps``)."""
        report = progress or (lambda s, f, m: None)
        is_cancelled = cancelled or (lambda: False)
        extras = dict(extra_optimizers or {})
        frac = fraction or (lambda i: (i + 1) / max(1, steps))
        t0 = time.monotonic()
        stats = StageStats(0, 0.0, math.nan)
        timings = {"render": 0.0, "backward": 0.0, "densify": 0.0}
        strategy = self.strategy if densify_strategy else None
        for i in range(steps):
            if is_cancelled():
                if keep_on_cancel:
                    stats.cancelled = True
                    break
                raise JobCancelled(f"{stage} cancelled")
            if time_budget_s is not None and time.monotonic() - t0 > time_budget_s:
                stats.stopped_by_budget = True
                break
            if schedule is not None:
                schedule(i)
            ta = time.monotonic()
            out = render(i, self.params)
            if strategy is not None:
                if self.gsplat_state is not None:
                    strategy.step_pre_backward(self.params, self.optimizers, self.gsplat_state,
                                               i, out.info)
                else:
                    strategy.step_pre_backward(out.info)
            value, metrics = loss(i, out)
            tb = time.monotonic()
            value.backward()
            for opt in (*self.optimizers.values(), *extras.values()):
                opt.step()
                opt.zero_grad(set_to_none=True)
            tc = time.monotonic()
            if strategy is not None:
                n_log = len(getattr(strategy, "log", []))
                n_before = self.count
                if self.gsplat_state is not None:
                    strategy.step_post_backward(self.params, self.optimizers, self.gsplat_state,
                                                i, out.info, packed=False)
                else:
                    strategy.step_post_backward(self.params, self.optimizers, i, out.info)
                log = getattr(strategy, "log", [])
                if on_refine is not None and (len(log) > n_log or self.count != n_before):
                    entry = log[-1] if len(log) > n_log else {"step": i, "count": self.count}
                    on_refine(i, self.params, entry)
            td = time.monotonic()
            timings["render"] += tb - ta
            timings["backward"] += tc - tb
            timings["densify"] += td - tc
            stats.final_loss = float(value.detach())
            stats.steps = i + 1
            self.step += 1
            if i % progress_every == 0 or i == steps - 1:
                logged = {k: (v() if callable(v) else v) for k, v in metrics.items()}
                stats.history.append({"step": i, "loss": stats.final_loss, **logged,
                                      "n": self.count, "t": time.monotonic() - t0})
                report(stage, frac(i), f"step {i + 1}/{steps} loss {stats.final_loss:.4f} "
                                       f"gaussians {self.count}")
            if on_step is not None:
                on_step(i, out, stats.final_loss)
        stats.seconds = time.monotonic() - t0
        stats.timings = timings
        return stats


def make_strategy(cfg: DensifyConfig, scene_scale: float, generator: torch.Generator,
                  device: torch.device, use_gsplat: bool):
    """(strategy, gsplat_state or None): gsplat's ``DefaultStrategy`` when asked (CUDA),
    otherwise the built-in one."""
    if use_gsplat:
        from gsplat import DefaultStrategy

        strategy = DefaultStrategy(
            prune_opa=cfg.prune_opa, grow_grad2d=cfg.grow_grad2d,
            grow_scale3d=cfg.grow_scale3d, prune_scale3d=cfg.prune_scale3d,
            refine_start_iter=cfg.refine_start_iter, refine_stop_iter=cfg.refine_stop_iter,
            refine_every=cfg.refine_every, reset_every=cfg.reset_every)
        return strategy, strategy.initialize_state(scene_scale=scene_scale)
    return CPUDefaultStrategy(cfg, scene_scale, generator=generator), None
