"""The shape and motion MLPs and the positional encoding they share.

Both networks are plain coordinate MLPs (:class:`FieldMLP`): ``layers`` hidden linear layers
of width ``hidden`` with ReLU, the network input concatenated again before each layer in
``skip``, and a linear output layer. Inputs (N instances or instance-frames, P points):

- shape: ``[PE(x), shape_code]`` -> SDF ``[N, P, 1]``;
- motion: ``[PE(x), shape_code, pose_code]`` -> displacement ``[N, P, 3]`` of canonical point x.

:class:`FieldMLP` exposes its linear layers in order (``linears``) so that
:mod:`.dictionary` can replace each by its SVD factorisation and run the same graph.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from .config import MotionNetConfig, ShapeNetConfig


def posenc_dim(freqs: int) -> int:
    """Width of :func:`posenc` for 3D points."""
    return 3 + 6 * freqs


def posenc(x: torch.Tensor, freqs: int) -> torch.Tensor:
    """``[..., 3]`` -> ``[..., 3 + 6 freqs]``: x, sin(2^k pi x), cos(2^k pi x), k < freqs."""
    if freqs == 0:
        return x
    scales = (2.0 ** torch.arange(freqs, device=x.device, dtype=x.dtype)) * math.pi
    xs = x[..., None, :] * scales[:, None]  # [..., F, 3]
    return torch.cat([x, torch.sin(xs).flatten(-2), torch.cos(xs).flatten(-2)], dim=-1)


LinearApply = Callable[[int, torch.Tensor], torch.Tensor]


def run_graph(inp: torch.Tensor, depth: int, skip: tuple[int, ...],
              apply: LinearApply) -> torch.Tensor:
    """The MLP graph: ``depth`` hidden layers ``apply(j, h)`` + ReLU (input re-concatenated
    before layers in ``skip``), then the output layer ``apply(depth, h)``."""
    h = inp
    for j in range(depth):
        if j in skip:
            h = torch.cat([h, inp], dim=-1)
        h = torch.relu(apply(j, h))
    return apply(depth, h)


class FieldMLP(nn.Module):
    """``in_dim`` -> ``layers`` x ``hidden`` (ReLU, skips) -> ``out_dim``.

    ``linears[j]`` for ``j < layers`` are the hidden layers (input width ``in_dim`` for j = 0,
    ``hidden + in_dim`` for j in ``skip``, else ``hidden``); ``linears[layers]`` is the output.
    """

    def __init__(self, in_dim: int, hidden: int, layers: int, skip: tuple[int, ...],
                 out_dim: int, out_scale: float = 1.0):
        super().__init__()
        if layers < 1:
            raise ValueError(f"layers must be >= 1, got {layers}")
        self.in_dim, self.hidden, self.depth, self.out_dim = in_dim, hidden, layers, out_dim
        self.skip = tuple(s for s in skip if 0 < s < layers)
        dims = [(in_dim if j == 0 else hidden + (in_dim if j in self.skip else 0), hidden)
                for j in range(layers)] + [(hidden, out_dim)]
        self.linears = nn.ModuleList(nn.Linear(i, o) for i, o in dims)
        with torch.no_grad():
            self.linears[-1].weight.mul_(out_scale)
            self.linears[-1].bias.zero_()

    def layer_dims(self) -> list[tuple[int, int]]:
        """``[(in, out)]`` of every linear layer, in order."""
        return [(lin.in_features, lin.out_features) for lin in self.linears]

    def run(self, inp: torch.Tensor, apply: LinearApply) -> torch.Tensor:
        """The MLP graph on ``inp`` ``[N, P, in_dim]`` with ``apply(j, h)`` as linear layer j."""
        return run_graph(inp, self.depth, self.skip, apply)

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        return self.run(inp, lambda j, h: self.linears[j](h))


def shape_mlp(cfg: ShapeNetConfig) -> FieldMLP:
    """The SDF network of ``cfg`` (input PE(x) ++ shape code)."""
    return FieldMLP(posenc_dim(cfg.pe_freqs) + cfg.code_dim, cfg.hidden, cfg.layers, cfg.skip, 1)


def motion_mlp(cfg: MotionNetConfig, shape_code_dim: int) -> FieldMLP:
    """The displacement network (input PE(x) ++ shape code ++ pose code), output ~0 at init."""
    return FieldMLP(posenc_dim(cfg.pe_freqs) + shape_code_dim + cfg.pose_dim, cfg.hidden,
                    cfg.layers, cfg.skip, 3, out_scale=0.1)


def field_input(x: torch.Tensor, freqs: int, *codes: torch.Tensor) -> torch.Tensor:
    """``[PE(x), codes...]``: points ``[N, P, 3]``, each code ``[N, d]`` -> ``[N, P, D]``."""
    parts = [posenc(x, freqs)]
    for c in codes:
        parts.append(c[:, None, :].expand(-1, x.shape[1], -1))
    return torch.cat(parts, dim=-1)
