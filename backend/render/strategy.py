"""Densification and pruning on any device: an equivalent of gsplat's ``DefaultStrategy``.

Same interface and rules as gsplat's (3DGS's) default strategy, so the fitting loop can use either:
``params`` is a dict of ``nn.Parameter`` with at least ``means``, ``scales`` (log), ``quats`` and
``opacities`` (logits), ``optimizers`` one optimizer per parameter with a single group.

- The image-plane gradient of each Gaussian's 2D mean is accumulated while it is visible
  (normalised to [-1, 1] screen units times the number of cameras, as gsplat does).
- Every ``refine_every`` steps between ``refine_start_iter`` and ``refine_stop_iter``, Gaussians
  whose mean gradient exceeds ``grow_grad2d`` are duplicated when small (max scale
  <= ``grow_scale3d`` x scene scale) or split in two when large (new means sampled from the
  Gaussian, scales divided by 1.6); then Gaussians with opacity < ``prune_opa`` are removed, and
  after the first opacity reset also those larger than ``prune_scale3d`` x scene scale.
- With ``grow_top_fraction`` > 0 the candidates are instead the top fraction of all Gaussians by
  mean gradient (DS4D densifies the top 2.5 %).
- Every ``reset_every`` steps opacities are clamped to at most ``2 * prune_opa``.
- Optimizer moments of new Gaussians start at zero. ``max_gaussians`` (0 = no limit) caps growth
  by keeping the candidates with the highest gradients.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from .project import quat_to_rotmat


@dataclass
class DensifyConfig:
    prune_opa: float = 0.005
    grow_grad2d: float = 0.0002
    grow_scale3d: float = 0.01
    prune_scale3d: float = 0.1
    refine_start_iter: int = 500
    refine_stop_iter: int = 15_000
    refine_every: int = 100
    reset_every: int = 3000
    max_gaussians: int = 0
    # > 0: grow the top fraction of Gaussians by accumulated gradient (DS4D: 0.025) instead of
    # those above grow_grad2d.
    grow_top_fraction: float = 0.0


ParamFn = Callable[[str, Tensor], Tensor]


@torch.no_grad()
def _update(params: dict, optimizers: dict, param_fn: ParamFn, state_fn: ParamFn) -> None:
    """Replace every parameter by ``param_fn(name, old)`` and its optimizer moments alike."""
    for name in list(params):
        old = params[name]
        new = nn.Parameter(param_fn(name, old.data), requires_grad=old.requires_grad)
        params[name] = new
        opt = optimizers.get(name)
        if opt is None:
            continue
        state = opt.state.pop(old, {})
        for key, v in state.items():
            if torch.is_tensor(v) and v.dim() > 0:
                state[key] = state_fn(name, v)
        opt.param_groups[0]["params"] = [new]
        opt.state[new] = state


class CPUDefaultStrategy:
    """``step_pre_backward`` / ``step_post_backward`` like gsplat's ``DefaultStrategy``."""

    def __init__(self, config: DensifyConfig, scene_scale: float = 1.0, generator=None):
        self.cfg = config
        self.scene_scale = float(scene_scale)
        self.gen = generator
        self.grad2d: Tensor | None = None
        self.count: Tensor | None = None
        self.log: list[dict[str, Any]] = []

    def step_pre_backward(self, info: dict) -> None:
        info["means2d"].retain_grad()

    @torch.no_grad()
    def step_post_backward(self, params: dict, optimizers: dict, step: int, info: dict) -> None:
        cfg = self.cfg
        if step >= cfg.refine_stop_iter:
            return
        self._accumulate(params, info)
        if (
            step > cfg.refine_start_iter
            and step % cfg.refine_every == 0
            and self.count is not None
        ):
            n_dup, n_split = self._grow(params, optimizers)
            n_prune = self._prune(params, optimizers, step)
            self.log.append({"step": step, "duplicated": n_dup, "split": n_split,
                             "pruned": n_prune, "count": int(params["means"].shape[0])})
            self.grad2d = self.count = None
        if step > 0 and step % cfg.reset_every == 0:
            cap = torch.logit(torch.tensor(2.0 * cfg.prune_opa)).item()
            _update(
                params, optimizers,
                lambda n, p: p.clamp_max(cap) if n == "opacities" else p,
                lambda n, v: torch.zeros_like(v) if n == "opacities" else v,
            )

    def _accumulate(self, params: dict, info: dict) -> None:
        grad = info["means2d"].grad
        if grad is None:
            return
        n = params["means"].shape[0]
        if self.grad2d is None or self.grad2d.shape[0] != n:
            self.grad2d = torch.zeros(n, device=grad.device)
            self.count = torch.zeros(n, device=grad.device)
        g = grad.detach().clone()  # [C, N, 2]
        g[..., 0] *= info["width"] / 2.0 * info["n_cameras"]
        g[..., 1] *= info["height"] / 2.0 * info["n_cameras"]
        sel = (info["radii"] > 0).all(dim=-1)  # [C, N]
        gs = torch.nonzero(sel)[:, 1]
        self.grad2d.index_add_(0, gs, g[sel].norm(dim=-1))
        self.count.index_add_(0, gs, torch.ones_like(gs, dtype=self.count.dtype))

    def _grow(self, params: dict, optimizers: dict) -> tuple[int, int]:
        cfg = self.cfg
        grads = self.grad2d / self.count.clamp_min(1)
        n = params["means"].shape[0]
        if cfg.grow_top_fraction > 0:
            k = min(n, int(math.ceil(cfg.grow_top_fraction * n)))
            high = torch.zeros(n, dtype=torch.bool, device=grads.device)
            high[torch.topk(grads, k).indices] = True
            high &= grads > 0
        else:
            high = grads > cfg.grow_grad2d
        if cfg.max_gaussians > 0:
            room = max(0, cfg.max_gaussians - n)
            if int(high.sum()) > room:  # keep the strongest candidates
                keep = torch.topk(torch.where(high, grads, -1.0), room).indices
                high = torch.zeros_like(high)
                high[keep] = True
        size = torch.exp(params["scales"]).max(dim=-1).values
        small = size <= cfg.grow_scale3d * self.scene_scale
        dup, split = high & small, high & ~small
        n_dup, n_split = int(dup.sum()), int(split.sum())
        if n_dup:
            sel = torch.nonzero(dup).squeeze(1)
            _update(params, optimizers, lambda _, p: torch.cat([p, p[sel]]),
                    lambda _, v: torch.cat([v, torch.zeros_like(v[sel])]))
            split = torch.cat([split, torch.zeros(n_dup, dtype=torch.bool, device=split.device)])
        if n_split:
            self._split(params, optimizers, split)
        return n_dup, n_split

    def _split(self, params: dict, optimizers: dict, mask: Tensor) -> None:
        sel = torch.nonzero(mask).squeeze(1)
        rest = torch.nonzero(~mask).squeeze(1)
        scales = torch.exp(params["scales"][sel])
        R = quat_to_rotmat(params["quats"][sel])
        noise = torch.randn(2, len(sel), 3, generator=self.gen).to(scales.device)
        offsets = torch.einsum("nij,nj,bnj->bni", R, scales, noise)  # [2, n, 3]

        def param_fn(name: str, p: Tensor) -> Tensor:
            if name == "means":
                new = (p[sel][None] + offsets).reshape(-1, 3)
            elif name == "scales":
                new = torch.log(scales / 1.6).repeat(2, 1)
            else:
                new = p[sel].repeat(2, *([1] * (p.dim() - 1)))
            return torch.cat([p[rest], new])

        def state_fn(_: str, v: Tensor) -> Tensor:
            return torch.cat([v[rest], v.new_zeros((2 * len(sel), *v.shape[1:]))])

        _update(params, optimizers, param_fn, state_fn)

    def _prune(self, params: dict, optimizers: dict, step: int) -> int:
        cfg = self.cfg
        prune = torch.sigmoid(params["opacities"]) < cfg.prune_opa
        if step > cfg.reset_every:
            size = torch.exp(params["scales"]).max(dim=-1).values
            big = size > cfg.prune_scale3d * self.scene_scale
            prune |= big
        n = int(prune.sum())
        if n:
            keep = torch.nonzero(~prune).squeeze(1)
            _update(params, optimizers, lambda _, p: p[keep], lambda _, v: v[keep])
        return n
