"""Per-view DSFD feature maps over time, sampled at Gaussian centres at any time.

:class:`PointFeatureSampler` holds, for every view, the DSFD features of its frames
([T, gh, gw, 2C], :func:`.dsfd.dsfd_grid` of :mod:`.features` maps) and the view's camera. At a
frame time it samples that frame's map; between frame times it interpolates linearly between the
two neighbouring frames (the deformation field is continuous in time, so a result can be
re-evaluated at new times); outside [first, last] it holds the end frames.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .dsfd import dsfd_grid
from .tssf import sample_point_features


class PointFeatureSampler:
    """Args:
        maps: per view [T, gh, gw, C] frame features (before DSFD; ``apply_dsfd`` runs it).
        times: [T] increasing frame times in [0, 1].
        viewmats [V, 4, 4], Ks [V, 3, 3]; sizes: (width, height) per view that K refers to.
    """

    def __init__(self, maps: Sequence[Tensor], times: Tensor, viewmats: Tensor, Ks: Tensor,
                 sizes: Sequence[tuple[int, int]], apply_dsfd: bool = True):
        if not (len(maps) == viewmats.shape[0] == Ks.shape[0] == len(sizes)):
            raise ValueError("one feature map stack, camera and size per view")
        self.maps = [dsfd_grid(m) if apply_dsfd else m for m in maps]
        self.times = torch.as_tensor(times, dtype=torch.float32)
        if any(m.shape[0] != self.times.shape[0] for m in self.maps):
            raise ValueError("every view needs one feature map per frame time")
        self.viewmats, self.Ks, self.sizes = viewmats.float(), Ks.float(), list(sizes)

    @property
    def dim(self) -> int:
        return int(self.maps[0].shape[-1])

    def maps_at(self, t: float) -> list[Tensor]:
        """Each view's map [gh, gw, C'] at time ``t`` (linear between neighbouring frames)."""
        T = self.times.shape[0]
        k = int(torch.searchsorted(self.times, torch.tensor([float(t)]), right=True)[0]) - 1
        if k < 0 or T == 1:
            return [m[0] for m in self.maps]
        if k >= T - 1:
            return [m[-1] for m in self.maps]
        t0, t1 = float(self.times[k]), float(self.times[k + 1])
        w = (float(t) - t0) / max(t1 - t0, 1e-12)
        return [(1 - w) * m[k] + w * m[k + 1] for m in self.maps]

    def __call__(self, means: Tensor, t: float) -> tuple[Tensor, Tensor]:
        """Point features [V, P, C'] and visibility [V, P] of centres [P, 3] at time ``t``."""
        maps = [m.to(means.device) for m in self.maps_at(t)]
        return sample_point_features(maps, means, self.viewmats.to(means.device),
                                     self.Ks.to(means.device), self.sizes)
