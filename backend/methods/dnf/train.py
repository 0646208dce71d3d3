"""Training: auto-decoder MLPs (stage a) and dictionary fine-tuning (stages b, c, d).

Every stage is one call of :func:`optimise`: per-instance flat vectors (codes in stage a) are
trained together with the stage's shared parameters (the MLP in stage a, the residual basis in
stage d, nothing in b and c). Fitting a held-out instance is the same call with nothing shared.

Losses (N instances or instance-frames per step, P points each):

- shape: L1 between SDF predictions and targets, both clamped to +-``clamp`` (DeepSDF), plus
  ``code_reg * |code|^2``;
- motion: squared error of the displacement of canonical correspondence points (frame t minus
  frame 0), the shape code of the instance given as a fixed condition.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .dictionary import Dictionary
from .fields import FieldMLP, field_input
from .layout import FlatLayout

Report = Callable[[str, float, str], None]


def _no_report(stage: str, fraction: float, message: str) -> None:
    return None


@dataclass
class TrainData:
    """Stacked tensors of N instances with T frames: ``sdf_points`` ``[N, S, 3]``, ``sdf``
    ``[N, S]``, ``corr`` ``[N, T, C, 3]``, ``times`` ``[N, T]``."""

    names: list[str]
    sdf_points: torch.Tensor
    sdf: torch.Tensor
    corr: torch.Tensor
    times: torch.Tensor

    @classmethod
    def from_instances(cls, instances: list, device: str = "cpu") -> TrainData:
        if not instances:
            raise ValueError("no instances to train on")
        t = {len(i["times"]) for i in instances}
        if len(t) != 1:
            raise ValueError(f"instances have different frame counts {sorted(t)}")

        def stack(key: str) -> torch.Tensor:
            return torch.as_tensor(np.stack([i[key] for i in instances]), device=device)

        return cls([i.name for i in instances], stack("sdf_points").float(), stack("sdf").float(),
                   stack("corr").float(), stack("times").float())

    @property
    def count(self) -> int:
        return self.sdf.shape[0]

    @property
    def frames(self) -> int:
        return self.corr.shape[1]


class FieldRep(nn.Module):
    """Decodes per-instance flat vectors with the plain MLP (``dictionary`` None: the vector is
    just the code) or with a :class:`Dictionary`. ``x`` ``[N, P, 3]``, ``vec`` ``[N, D]``,
    ``cond`` ``[N, C]`` (the shape code, for motion) -> ``[N, P, out]``."""

    def __init__(self, mlp: FieldMLP, pe_freqs: int, layout: FlatLayout,
                 dictionary: Dictionary | None = None):
        super().__init__()
        self.mlp, self.pe_freqs, self.layout, self.dictionary = mlp, pe_freqs, layout, dictionary

    def forward(self, x: torch.Tensor, vec: torch.Tensor,
                cond: torch.Tensor | None = None) -> torch.Tensor:
        code = self.layout.get(vec, "code")
        inp = field_input(x, self.pe_freqs, *([cond] if cond is not None else []), code)
        if self.dictionary is None:
            return self.mlp(inp)
        return self.dictionary(inp, vec, self.layout)

    def shared_parameters(self) -> list[nn.Parameter]:
        """What a stage trains besides the vectors: the MLP (plain) or the residual basis."""
        if self.dictionary is None:
            return list(self.mlp.parameters())
        return [p for p in self.dictionary.parameters() if p.numel()]


LossFn = Callable[[FieldRep, torch.Tensor, torch.Tensor, torch.Generator], torch.Tensor]


def shape_loss(data: TrainData, points: int, clamp: float, code_reg: float) -> LossFn:
    """Clamped L1 SDF loss on ``points`` random samples per instance."""

    def loss(rep: FieldRep, vec: torch.Tensor, idx: torch.Tensor,
             gen: torch.Generator) -> torch.Tensor:
        pidx = torch.randint(0, data.sdf.shape[1], (idx.shape[0], points), generator=gen)
        x = data.sdf_points[idx[:, None], pidx]
        gt = data.sdf[idx[:, None], pidx]
        pred = rep(x, vec)[..., 0]
        err = (pred.clamp(-clamp, clamp) - gt.clamp(-clamp, clamp)).abs().mean()
        return err + code_reg * rep.layout.get(vec, "code").pow(2).sum(-1).mean()

    return loss


def motion_loss(data: TrainData, shape_codes: torch.Tensor, points: int,
                code_reg: float) -> LossFn:
    """Displacement MSE; ``idx`` indexes instance-frames ``i * T + t``; ``shape_codes``
    ``[N, d]``."""
    frames = data.frames

    def loss(rep: FieldRep, vec: torch.Tensor, idx: torch.Tensor,
             gen: torch.Generator) -> torch.Tensor:
        inst, t = idx // frames, idx % frames
        pidx = torch.randint(0, data.corr.shape[2], (idx.shape[0], points), generator=gen)
        x0 = data.corr[inst[:, None], 0, pidx]
        target = data.corr[inst[:, None], t[:, None], pidx] - x0
        pred = rep(x0, vec, shape_codes[inst])
        err = (pred - target).pow(2).sum(-1).mean()
        return err + code_reg * rep.layout.get(vec, "code").pow(2).sum(-1).mean()

    return loss


def optimise(
    rep: FieldRep, vecs: torch.Tensor, loss_fn: LossFn, iters: int, batch: int, lr: float,
    shared: list[nn.Parameter] | None = None, shared_lr: float = 0.0, seed: int = 0,
    report: Report = _no_report, stage: str = "", vec_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, list[float]]:
    """Train ``vecs`` ``[M, D]`` (and ``shared``) for ``iters`` steps of ``batch`` rows.

    Cosine learning-rate decay to 5 %; returns (trained vectors, loss per step). ``report``
    is called about every 2 % (it raises to cancel); ``vec_mask`` ``[D]`` freezes entries at 0.
    """
    gen = torch.Generator().manual_seed(seed)
    vec = nn.Parameter(vecs.detach().clone())
    groups = [{"params": [vec], "lr": lr}]
    if shared:
        groups.append({"params": list(shared), "lr": shared_lr})
    opt = torch.optim.Adam(groups)
    base = [g["lr"] for g in opt.param_groups]
    history: list[float] = []
    every = max(1, iters // 50)
    m = vec.shape[0]
    mask = vec_mask.to(vec.device) if vec_mask is not None else None
    for step in range(iters):
        scale = 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * step / max(1, iters)))
        for g, b in zip(opt.param_groups, base, strict=True):
            g["lr"] = b * scale
        idx = (torch.randperm(m, generator=gen)[:batch] if batch < m else torch.arange(m))
        loss = loss_fn(rep, vec[idx], idx, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if vec_mask is not None and vec.grad is not None:
            vec.grad.mul_(mask)
        opt.step()
        history.append(float(loss.detach()))
        if step % every == 0 or step == iters - 1:
            recent = float(np.mean(history[-every:]))
            report(stage, (step + 1) / iters, f"step {step + 1}/{iters} loss {recent:.5f}")
    return vec.detach(), history
