"""TSSF: temporal-spatial similarity fusion of per-view point features (DS4D).

Point features: each Gaussian centre is projected into every view (pinhole, OpenCV axes, pixel
centres at +0.5 as in :mod:`backend.render.cameras`) and the view's patch-feature map is sampled
bilinearly there with ``grid_sample(align_corners=False)``: normalised x = 2 u / W - 1, so -1 and
+1 are the outer edges of the image and of the feature map and patch ``j`` (covering pixels
[14 j, 14 j + 14) of the resized image) is hit exactly at its centre. Points behind a camera or
outside its image are marked invisible (their sample is clamped to the border and their score
masked out of the fusion).

- **GA** (global attention): score = softmax over views of FC(point features); fused =
  score-weighted sum of the views' point features. Output [P, C].
- **DA** (distance-aware): the L1 distance (mean absolute difference over channels) of each
  pseudo view's point features to the front (real) view's is appended to the pseudo features,
  these are fused by GA among the pseudo views, the result is stacked with the front features
  (with its own distance, 0, appended) and fused again by GA. Output [P, C + 1].

Two ablation modes (issue 11's ladder, not the method): ``mean`` (no learnt fusion: the plain
mean over the views that see the point) and ``none`` (no point features at all: the deformation
field runs on the HexPlane alone; ``out_dim`` 0).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def project(means: Tensor, viewmats: Tensor, Ks: Tensor) -> tuple[Tensor, Tensor]:
    """Pixel coordinates [V, P, 2] and depths [V, P] of points [P, 3]."""
    pc = torch.einsum("vij,pj->vpi", viewmats[:, :3, :3], means) + viewmats[:, None, :3, 3]
    z = pc[..., 2]
    uv = torch.einsum("vij,vpj->vpi", Ks[:, :2, :3], pc) / z.clamp_min(1e-8)[..., None]
    return uv, z


def sample_point_features(
    maps: Tensor | list[Tensor],
    means: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    sizes: tuple[int, int] | list[tuple[int, int]],
) -> tuple[Tensor, Tensor]:
    """Bilinear point features of every view.

    Args:
        maps: [V, gh, gw, C] (or a list of V [gh_v, gw_v, C]) feature maps at one time.
        means: [P, 3] Gaussian centres (world); viewmats [V, 4, 4]; Ks [V, 3, 3].
        sizes: the (width, height) in pixels that K refers to (one for all views, or per view).

    Returns:
        features [V, P, C] and visible [V, P] (in front of the camera and inside the image).
    """
    V = viewmats.shape[0]
    sizes = [sizes] * V if isinstance(sizes, tuple) else list(sizes)
    uv, z = project(means, viewmats, Ks)
    feats, vis = [], []
    for v in range(V):
        W, H = sizes[v]
        fmap = maps[v].permute(2, 0, 1)[None]  # [1, C, gh, gw]
        g = torch.stack([2 * uv[v, :, 0] / W - 1, 2 * uv[v, :, 1] / H - 1], -1)
        s = F.grid_sample(fmap, g[None, None], mode="bilinear", padding_mode="border",
                          align_corners=False)  # [1, C, 1, P]
        feats.append(s[0, :, 0].T)
        vis.append((z[v] > 1e-6) & (g.abs() <= 1).all(-1))
    return torch.stack(feats), torch.stack(vis)


class GAFusion(nn.Module):
    """GA: softmax over views of a linear score of each view's point features."""

    def __init__(self, dim: int):
        super().__init__()
        self.fc = nn.Linear(dim, 1)

    def forward(self, feats: Tensor, visible: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """feats [V, P, C], visible [V, P] -> fused [P, C], weights [V, P] (sum 1 per point).

        Invisible views get weight 0; a point no view sees gets equal weights."""
        logits = self.fc(feats)[..., 0]
        if visible is not None:
            seen = visible.any(0, keepdim=True)
            logits = torch.where(visible | ~seen, logits, torch.full_like(logits, -torch.inf))
            logits = torch.where(seen, logits, torch.zeros_like(logits))
        w = torch.softmax(logits, dim=0)
        return (w[..., None] * feats).sum(0), w


class DAFusion(nn.Module):
    """DA: distance-aware fusion, view 0 the front (real) view, views 1.. the pseudo views."""

    def __init__(self, dim: int):
        super().__init__()
        self.pseudo = GAFusion(dim + 1)
        self.final = GAFusion(dim + 1)

    def forward(self, feats: Tensor, visible: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """feats [V, P, C] -> fused [P, C + 1], final weights [2, P] (front, fused pseudo)."""
        front = feats[0]
        zero = torch.zeros_like(front[:, :1])
        f = torch.cat([front, zero], -1)
        if feats.shape[0] == 1:
            return f, torch.ones(1, front.shape[0], device=feats.device)
        pseudo = feats[1:]
        dist = (pseudo - front).abs().mean(-1, keepdim=True)
        fused_p, _ = self.pseudo(torch.cat([pseudo, dist], -1),
                                 None if visible is None else visible[1:])
        vis2 = None if visible is None else torch.stack([visible[0], visible[1:].any(0)])
        return self.final(torch.stack([f, fused_p]), vis2)


class MeanFusion(nn.Module):
    """Ablation: the mean over the views that see each point (all views where none does)."""

    def forward(self, feats: Tensor, visible: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """feats [V, P, C] -> fused [P, C], weights [V, P] (sum 1 per point)."""
        w = torch.ones(feats.shape[:2], device=feats.device)
        if visible is not None:
            seen = visible.any(0, keepdim=True)
            w = torch.where(seen, visible.float(), w)
        w = w / w.sum(0, keepdim=True)
        return (w[..., None] * feats).sum(0), w


TSSF_MODES = ("ga", "da", "mean", "none")


class TSSF(nn.Module):
    """Point-feature fusion over views with ``mode`` "ga" or "da" (or the ablations "mean",
    "none"); ``out_dim`` channels out."""

    def __init__(self, dim: int, mode: Literal["ga", "da", "mean", "none"] = "ga"):
        super().__init__()
        if mode not in TSSF_MODES:
            raise ValueError(f"TSSF mode must be one of {', '.join(TSSF_MODES)}, got {mode!r}")
        self.mode = mode
        self.fusion = {"ga": lambda: GAFusion(dim), "da": lambda: DAFusion(dim),
                       "mean": MeanFusion, "none": lambda: None}[mode]()
        self.out_dim = {"ga": dim, "da": dim + 1, "mean": dim, "none": 0}[mode]

    def forward(self, feats: Tensor, visible: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if self.fusion is None:
            return feats.new_zeros(feats.shape[1], 0), feats.new_zeros(0, feats.shape[1])
        return self.fusion(feats, visible)
