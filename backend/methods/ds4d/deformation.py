"""The deformation field: HexPlane(x, y, z, t) + fused point features -> linear -> MLP heads.

``features = Linear(cat(HexPlane(x, t), TSSF point features))`` ([P, width]); three heads
(ReLU, Linear(width, width), ReLU, Linear(width, out)) predict the offsets of the position [P, 3],
the log-scales [P, 3] and the quaternion [P, 4] (added before normalisation, as in 4DGS); no
opacity or colour deformation (STAG4D). The heads' last layers start at zero, so the deformed
Gaussians equal the canonical ones at initialisation (identity), while gradients still reach
those last layers (their inputs are not zero).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from .hexplane import HexPlane, HexPlaneConfig


@dataclass
class DeformationConfig:
    hexplane: HexPlaneConfig = field(default_factory=HexPlaneConfig)
    point_dim: int = 0  # channels of the fused point features (0: HexPlane only)
    width: int = 64  # STAG4D's deformation MLP width


@dataclass
class Deformed:
    """Deformed Gaussian parameters: means [P, 3], log_scales [P, 3], quats [P, 4]."""

    means: Tensor
    log_scales: Tensor
    quats: Tensor


def _head(width: int, out: int) -> nn.Sequential:
    last = nn.Linear(width, out)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return nn.Sequential(nn.ReLU(), nn.Linear(width, width), nn.ReLU(), last)


class DeformationField(nn.Module):
    def __init__(self, cfg: DeformationConfig | None = None,
                 generator: torch.Generator | None = None):
        super().__init__()
        self.cfg = cfg = cfg or DeformationConfig()
        self.hexplane = HexPlane(cfg.hexplane, generator)
        self.fuse = nn.Linear(cfg.hexplane.out_dim + cfg.point_dim, cfg.width)
        self.position = _head(cfg.width, 3)
        self.scale = _head(cfg.width, 3)
        self.rotation = _head(cfg.width, 4)

    def offsets(self, means: Tensor, t: Tensor | float,
                point_features: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """(d_means [P, 3], d_log_scales [P, 3], d_quats [P, 4]) at time(s) ``t`` in [0, 1].

        ``point_features`` [P, point_dim] (TSSF output) is required when ``point_dim`` > 0."""
        h = self.hexplane(means, t)
        if self.cfg.point_dim:
            if point_features is None or point_features.shape != (means.shape[0],
                                                                   self.cfg.point_dim):
                got = None if point_features is None else list(point_features.shape)
                raise ValueError(f"point_features must be [{means.shape[0]}, "
                                 f"{self.cfg.point_dim}], got {got}")
            h = torch.cat([h, point_features], -1)
        z = self.fuse(h)
        return self.position(z), self.scale(z), self.rotation(z)

    def forward(self, means: Tensor, log_scales: Tensor, quats: Tensor, t: Tensor | float,
                point_features: Tensor | None = None) -> Deformed:
        """Canonical Gaussians (means [P, 3], log_scales [P, 3], quats [P, 4]) at time ``t``."""
        dm, ds, dq = self.offsets(means, t, point_features)
        return Deformed(means + dm, log_scales + ds, quats + dq)

    def grid_parameters(self) -> list[nn.Parameter]:
        return list(self.hexplane.parameters())

    def mlp_parameters(self) -> list[nn.Parameter]:
        grid = {id(p) for p in self.grid_parameters()}
        return [p for p in self.parameters() if id(p) not in grid]
