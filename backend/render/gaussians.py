"""A set of 3D Gaussians as optimisable tensors, their rendering and their initialisations.

Parameters are stored pre-activation, like the 3DGS ``.ply`` format (:mod:`shared.gsply`):
``means`` [N, 3], ``quats`` [N, 4] (w, x, y, z, unnormalised), ``log_scales`` [N, 3],
``opacity_logits`` [N], ``sh0`` [N, 1, 3] (DC coefficient) and ``shN`` [N, K - 1, 3].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .dispatch import rasterize
from .sh import num_sh_bases, rgb_to_sh0

PARAM_NAMES = ("means", "quats", "log_scales", "opacity_logits", "sh0", "shN")


@dataclass
class Gaussians:
    means: Tensor
    quats: Tensor
    log_scales: Tensor
    opacity_logits: Tensor
    sh0: Tensor
    shN: Tensor

    @property
    def count(self) -> int:
        return int(self.means.shape[0])

    @property
    def sh_degree(self) -> int:
        return int(round(math.sqrt(self.shN.shape[1] + 1))) - 1

    def params(self) -> dict[str, Tensor]:
        return {k: getattr(self, k) for k in PARAM_NAMES}

    def detach(self) -> Gaussians:
        return Gaussians(**{k: v.detach().clone() for k, v in self.params().items()})

    @classmethod
    def from_points(
        cls,
        points: Tensor,
        colors: Tensor,
        scales: Tensor | float,
        opacity: float = 0.1,
        sh_degree: int = 0,
    ) -> Gaussians:
        """Isotropic Gaussians at ``points`` [N, 3] with ``colors`` [N, 3] in [0, 1].

        ``scales``: [N] or a single standard deviation; ``opacity`` in (0, 1).
        """
        n = points.shape[0]
        s = torch.as_tensor(scales, dtype=torch.float32).expand(n).clamp_min(1e-7)
        quats = torch.zeros(n, 4)
        quats[:, 0] = 1
        shN = torch.zeros(n, num_sh_bases(sh_degree) - 1, 3)
        return cls(
            means=points.float().clone(),
            quats=quats,
            log_scales=torch.log(s)[:, None].repeat(1, 3),
            opacity_logits=torch.full((n,), math.log(opacity / (1 - opacity))),
            sh0=rgb_to_sh0(colors.float().clamp(0, 1))[:, None, :],
            shN=shN,
        )

    def render(
        self,
        viewmats: Tensor,
        Ks: Tensor,
        width: int,
        height: int,
        backgrounds: Tensor | None = None,
        sh_degree: int | None = None,
        **kw,
    ):
        """Rasterize (see :func:`backend.render.rasterize`); returns (rgb, alpha, meta)."""
        deg = self.sh_degree if sh_degree is None else sh_degree
        colors = torch.cat([self.sh0, self.shN], dim=1)
        return rasterize(
            self.means,
            self.quats,
            torch.exp(self.log_scales),
            torch.sigmoid(self.opacity_logits),
            colors,
            viewmats,
            Ks,
            width,
            height,
            sh_degree=deg,
            backgrounds=backgrounds,
            **kw,
        )

    def to_frame(self):
        """As a :class:`shared.gsply.GaussianFrame` (for writing a 3DGS ``.ply``)."""
        from shared.gsply import GaussianFrame

        g = self.detach()
        return GaussianFrame(
            means=g.means.cpu().numpy(),
            quats=g.quats.cpu().numpy(),
            log_scales=g.log_scales.cpu().numpy(),
            opacity_logits=g.opacity_logits.cpu().numpy(),
            sh_dc=g.sh0[:, 0].cpu().numpy(),
            sh_rest=g.shN.cpu().numpy(),
        )


# -- initialisation ----------------------------------------------------------------------------


def _project(points: Tensor, viewmats: Tensor, Ks: Tensor) -> tuple[Tensor, Tensor]:
    """Pixel coordinates [V, P, 2] and depths [V, P] of world points [P, 3]."""
    pc = torch.einsum("vij,pj->vpi", viewmats[:, :3, :3], points) + viewmats[:, None, :3, 3]
    z = pc[..., 2]
    uv = torch.einsum("vij,vpj->vpi", Ks[:, :2, :3], pc) / z.clamp_min(1e-6)[..., None]
    return uv, z


def _sample_images(images: Tensor, uv: Tensor) -> tuple[Tensor, Tensor]:
    """Nearest-pixel lookup of [V, H, W, C] at uv [V, P, 2]; returns values and in-image mask."""
    V, H, W, _ = images.shape
    x = torch.floor(uv[..., 0]).long()
    y = torch.floor(uv[..., 1]).long()
    inside = (x >= 0) & (x < W) & (y >= 0) & (y < H)
    xi, yi = x.clamp(0, W - 1), y.clamp(0, H - 1)
    vals = images[torch.arange(V)[:, None], yi, xi]  # [V, P, C]
    return vals, inside


@torch.no_grad()
def visual_hull_points(
    images: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    bound: float,
    n_points: int,
    resolution: int = 64,
    alpha_threshold: float = 0.5,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor, float]:
    """Points on the surface of the visual hull carved from the masks, with mean colours.

    Args:
        images: [V, H, W, 4] straight-alpha RGBA in [0, 1] (alpha = mask).
        viewmats, Ks: the views' cameras.
        bound: half-size of the cube [-bound, bound]^3 that is carved.
        n_points: points returned (sampled with replacement from surface voxels, jittered).
        resolution: voxels per axis.

    Returns:
        points [n, 3], colours [n, 3], voxel size.
    """
    r = resolution
    step = 2 * bound / r
    axis = -bound + step * (torch.arange(r) + 0.5)
    grid = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    uv, z = _project(grid, viewmats, Ks)
    vals, inside = _sample_images(images, uv)
    seen = inside & (z > 0)
    carved = (seen & (vals[..., 3] < alpha_threshold)).any(dim=0)
    occ = (~carved).reshape(r, r, r)
    # Surface voxels: occupied with at least one free 6-neighbour.
    pad = torch.nn.functional.pad(occ[None, None].float(), (1, 1, 1, 1, 1, 1), value=0.0)
    k = torch.zeros(1, 1, 3, 3, 3)
    k[0, 0, 1, 1, 0] = k[0, 0, 1, 1, 2] = k[0, 0, 1, 0, 1] = k[0, 0, 1, 2, 1] = 1
    k[0, 0, 0, 1, 1] = k[0, 0, 2, 1, 1] = 1
    full = torch.nn.functional.conv3d(pad, k)[0, 0] == 6
    surface = (occ & ~full).reshape(-1)
    if not bool(surface.any()):
        raise ValueError("visual hull is empty: the masks and cameras do not agree")
    cand = grid[surface]
    idx = torch.randint(0, cand.shape[0], (n_points,), generator=generator)
    pts = cand[idx] + (torch.rand(n_points, 3, generator=generator) - 0.5) * step
    # Colour: mean over the views that see the point inside the mask.
    uv, z = _project(pts, viewmats, Ks)
    vals, inside = _sample_images(images, uv)
    w = (inside & (z > 0)).float() * vals[..., 3]
    col = (vals[..., :3] * w[..., None]).sum(0) / w.sum(0).clamp_min(1e-6)[..., None]
    return pts, col, step


def random_ball_points(
    n_points: int, radius: float, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """Uniform points in a ball and random colours."""
    d = torch.randn(n_points, 3, generator=generator)
    d = d / d.norm(dim=-1, keepdim=True).clamp_min(1e-9)
    r = radius * torch.rand(n_points, 1, generator=generator) ** (1 / 3)
    return d * r, torch.rand(n_points, 3, generator=generator)
