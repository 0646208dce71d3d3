"""HexPlane / K-planes field over (x, y, z, t) (STAG4D / 4DGS settings by default).

Six planes per scale, one per pair of the four coordinates: xy, xz, xt, yz, yt, zt. A point's
feature at one scale is the product (Hadamard) of its bilinear samples on the six planes; the
scales are concatenated. Space is normalised from [-bound, bound] to [-1, 1] and time from
[0, 1] to [-1, 1]; ``grid_sample(align_corners=True)`` puts grid vertex ``i`` of a plane with
``n`` vertices along an axis at ``-1 + 2 i / (n - 1)``; coordinates outside are clamped to the
border. Spatial resolutions are multiplied by each multi-resolution factor, time's is not.
Initialisation as in K-planes/4DGS: spatial planes uniform in [0.1, 0.5], planes with time ones
(so the field starts static in time).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: The six coordinate pairs (0 = x, 1 = y, 2 = z, 3 = t).
PLANES = tuple(itertools.combinations(range(4), 2))


@dataclass
class HexPlaneConfig:
    bound: float = 1.6
    resolution: tuple[int, int, int, int] = (64, 64, 64, 25)  # x, y, z, time vertices
    channels: int = 32
    multires: tuple[int, ...] = (1, 2, 4, 8)
    init_low: float = 0.1
    init_high: float = 0.5

    @property
    def out_dim(self) -> int:
        return self.channels * len(self.multires)


class HexPlane(nn.Module):
    """``forward(points [P, 3], t [P] or float)`` -> features [P, channels x len(multires)]."""

    def __init__(self, cfg: HexPlaneConfig | None = None, generator: torch.Generator | None = None):
        super().__init__()
        self.cfg = cfg = cfg or HexPlaneConfig()
        self.grids = nn.ParameterList()
        for m in cfg.multires:
            res = [r * m for r in cfg.resolution[:3]] + [cfg.resolution[3]]
            for a, b in PLANES:
                shape = (1, cfg.channels, res[b], res[a])  # grid_sample: x -> a, y -> b
                if 3 in (a, b):
                    p = torch.ones(shape)
                else:
                    p = torch.empty(shape).uniform_(cfg.init_low, cfg.init_high,
                                                    generator=generator)
                self.grids.append(nn.Parameter(p))

    def normalise(self, points: Tensor, t: Tensor | float) -> Tensor:
        """[P, 4] coordinates in [-1, 1] (x, y, z scaled by the bound; t from [0, 1])."""
        tt = torch.as_tensor(t, dtype=points.dtype, device=points.device).expand(points.shape[0])
        return torch.cat([points / self.cfg.bound, (2 * tt - 1)[:, None]], -1)

    def forward(self, points: Tensor, t: Tensor | float) -> Tensor:
        q = self.normalise(points, t)
        out = []
        for s in range(len(self.cfg.multires)):
            feat = None
            for i, (a, b) in enumerate(PLANES):
                grid = self.grids[s * len(PLANES) + i]
                g = q[:, [a, b]][None, None]  # [1, 1, P, 2]
                v = F.grid_sample(grid, g, mode="bilinear", padding_mode="border",
                                  align_corners=True)[0, :, 0].T  # [P, C]
                feat = v if feat is None else feat * v
            out.append(feat)
        return torch.cat(out, -1)

    def plane_tv(self) -> Tensor:
        """Total variation of all planes (mean squared difference of neighbours)."""
        tv = 0.0
        for g in self.grids:
            tv = tv + (g[..., 1:, :] - g[..., :-1, :]).pow(2).mean()
            tv = tv + (g[..., :, 1:] - g[..., :, :-1]).pow(2).mean()
        return tv

    def time_smoothness(self) -> Tensor:
        """Second difference along time of the planes that contain t (K-planes' smoothness)."""
        loss = 0.0
        for s in range(len(self.cfg.multires)):
            for i, (_, b) in enumerate(PLANES):
                if b == 3:  # time is the plane's height axis (dim -2)
                    g = self.grids[s * len(PLANES) + i]
                    d2 = g[..., 2:, :] - 2 * g[..., 1:-1, :] + g[..., :-2, :]
                    loss = loss + d2.pow(2).mean()
        return loss
