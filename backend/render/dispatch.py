"""``rasterize``: gsplat's ``rasterization`` on CUDA, our own differentiable path elsewhere.

Arguments follow ``gsplat.rasterization`` (one scene, C cameras): means [N, 3], quats [N, 4]
(w, x, y, z, any norm), scales [N, 3], opacities [N], colours [N, D] / [C, N, D] post-activation
or SH coefficients [N, K, 3] / [C, N, K, 3] with ``sh_degree``, viewmats [C, 4, 4] world-to-camera
in OpenCV axes (camera looks down +Z, y down), Ks [C, 3, 3], backgrounds [C, D]. It returns
``(render_colors [C, H, W, X], render_alphas [C, H, W, 1], meta)`` where X is D, 1 or D + 1
depending on ``render_mode`` ("RGB", "D", "ED", "RGB+D", "RGB+ED"; ED = expected depth, the
accumulated depth divided by alpha). ``meta`` carries ``means2d`` [C, N, 2] (call
``retain_grad()`` on it for densification), ``radii`` [C, N, 2], ``depths``, ``conics``,
``width``, ``height``, ``n_cameras`` as gsplat's non-packed mode does.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Literal

import torch
from torch import Tensor

from shared.errors import Anim4DError

from .composite_cpu import DEFAULT_BLOCK_ELEMS, composite
from .project import camera_centers, project_gaussians, tile_grid
from .sh import sh_to_rgb
from .tiles import intersect_tiles

RenderMode = Literal["RGB", "D", "ED", "RGB+D", "RGB+ED"]
Backend = Literal["auto", "gsplat", "torch"]

#: Tile sizes the torch path chooses from when none is given (gsplat uses 16 on the GPU).
CPU_TILE_SIZES = (4, 8, 16)
#: Cost of one (tile, Gaussian) pair in units of one (pixel, Gaussian) evaluation: sorting,
#: gathering and scattering a pair. Fitted on bench/raster.py (10k-200k Gaussians, 256-512 px,
#: where 8 wins) and the 48 px fitting test (where 4 wins); see docs/results/raster.md.
PAIR_COST = 16.0


@torch.no_grad()
def choose_tile_size(means2d: Tensor, radii: Tensor, width: int, height: int) -> int:
    """Tile size with the lowest estimated cost ``pairs * (tile pixels + PAIR_COST)``.

    Small tiles waste fewer pixel evaluations on Gaussians that cover part of a tile; large
    tiles make fewer pairs to sort and gather. ``means2d`` [..., 2], ``radii`` [..., 2].
    """
    ok = (radii > 0).all(dim=-1)
    m = means2d.detach()[ok].double()
    r = radii[ok].double()
    best, best_cost = CPU_TILE_SIZES[0], math.inf
    for ts in CPU_TILE_SIZES:
        tx, ty = tile_grid(width, height, ts)
        lim = torch.tensor([tx, ty], dtype=torch.float64, device=m.device)
        lo = torch.minimum(torch.floor((m - r) / ts).clamp_min(0), lim)
        hi = torch.minimum(torch.ceil((m + r) / ts).clamp_min(0), lim)
        pairs = float(((hi - lo)[:, 0] * (hi - lo)[:, 1]).sum())
        cost = pairs * (ts * ts + PAIR_COST)
        if cost < best_cost:
            best, best_cost = ts, cost
    return best


class RasterizerUnavailable(Anim4DError):
    """The requested rasterizer cannot run here (for example CUDA without gsplat)."""

    code = "rasterizer_unavailable"


@functools.cache
def _gsplat_rasterization():
    try:
        from gsplat import rasterization
    except Exception as exc:  # ImportError, or a broken CUDA build
        raise RasterizerUnavailable(
            "CUDA rendering needs the gsplat package, which could not be imported "
            f"({type(exc).__name__}: {exc}). Install it with `pip install -e '.[cuda]'` (or "
            "`pip install gsplat`), or pass backend='torch' to use the slower built-in "
            "rasterizer."
        ) from exc
    return rasterization


def gsplat_available() -> bool:
    """True when ``gsplat.rasterization`` can be imported."""
    try:
        _gsplat_rasterization()
    except RasterizerUnavailable:
        return False
    return True


def _check_shapes(means, quats, scales, opacities, colors, viewmats, Ks, sh_degree, backgrounds):
    if means.dim() != 2 or means.shape[-1] != 3:
        raise ValueError(f"means must be [N, 3] (one scene), got {tuple(means.shape)}")
    N = means.shape[0]
    for name, t, shape in (
        ("quats", quats, (N, 4)),
        ("scales", scales, (N, 3)),
        ("opacities", opacities, (N,)),
    ):
        if tuple(t.shape) != shape:
            raise ValueError(f"{name} must be {list(shape)}, got {list(t.shape)}")
    if viewmats.dim() != 3 or viewmats.shape[1:] != (4, 4):
        raise ValueError(f"viewmats must be [C, 4, 4], got {list(viewmats.shape)}")
    C = viewmats.shape[0]
    if tuple(Ks.shape) != (C, 3, 3):
        raise ValueError(f"Ks must be [{C}, 3, 3], got {list(Ks.shape)}")
    if sh_degree is None:
        ok = (colors.dim() == 2 and colors.shape[0] == N) or (
            colors.dim() == 3 and colors.shape[:2] == (C, N)
        )
        if not ok:
            raise ValueError(f"colors must be [N, D] or [C, N, D], got {list(colors.shape)}")
    else:
        ok = (colors.dim() == 3 and colors.shape[0] == N) or (
            colors.dim() == 4 and colors.shape[:2] == (C, N)
        )
        if not ok or colors.shape[-1] != 3:
            raise ValueError(
                f"with sh_degree colors must be [N, K, 3] or [C, N, K, 3], got {list(colors.shape)}"
            )
        if (sh_degree + 1) ** 2 > colors.shape[-2]:
            raise ValueError(f"sh_degree {sh_degree} needs {(sh_degree + 1) ** 2} coefficients")
    if backgrounds is not None and (backgrounds.dim() != 2 or backgrounds.shape[0] != C):
        raise ValueError(f"backgrounds must be [C, D], got {list(backgrounds.shape)}")


def rasterize(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    opacities: Tensor,
    colors: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    radius_clip: float = 0.0,
    eps2d: float = 0.3,
    sh_degree: int | None = None,
    tile_size: int | None = None,
    backgrounds: Tensor | None = None,
    render_mode: RenderMode = "RGB",
    rasterize_mode: Literal["classic", "antialiased"] = "classic",
    backend: Backend = "auto",
    block_elems: int = DEFAULT_BLOCK_ELEMS,
    **gsplat_kwargs: Any,
) -> tuple[Tensor, Tensor, dict]:
    """Rasterize N Gaussians into C cameras; see the module docstring for shapes.

    backend: "auto" uses gsplat for CUDA tensors (error if gsplat is missing) and the built-in
    torch rasterizer otherwise; "gsplat" / "torch" force one. ``gsplat_kwargs`` (packed,
    absgrad, ...) go to gsplat only. ``block_elems`` bounds the torch path's temporaries.
    """
    if render_mode not in ("RGB", "D", "ED", "RGB+D", "RGB+ED"):
        raise ValueError(f"unknown render_mode {render_mode!r}")
    if rasterize_mode not in ("classic", "antialiased"):
        raise ValueError(f"unknown rasterize_mode {rasterize_mode!r}")
    if backend not in ("auto", "gsplat", "torch"):
        raise ValueError(f"backend must be 'auto', 'gsplat' or 'torch', got {backend!r}")
    use_gsplat = backend == "gsplat" or (backend == "auto" and means.is_cuda)
    if use_gsplat:
        gsplat_rasterization = _gsplat_rasterization()  # first: a missing gsplat is the news
        if not means.is_cuda:
            raise RasterizerUnavailable(
                f"backend='gsplat' needs CUDA tensors, got means on {means.device}"
            )
        # gsplat defaults to packed=True, whose meta differs from the shapes documented above
        # (and whose rasterize_to_pixels rejects [C, D] backgrounds in gsplat 1.5.3)
        gsplat_kwargs.setdefault("packed", False)
        return gsplat_rasterization(
            means, quats, scales, opacities, colors, viewmats, Ks, width, height,
            near_plane=near_plane, far_plane=far_plane, radius_clip=radius_clip, eps2d=eps2d,
            sh_degree=sh_degree, tile_size=16 if tile_size is None else tile_size,
            backgrounds=backgrounds, render_mode=render_mode, rasterize_mode=rasterize_mode,
            **gsplat_kwargs,
        )
    if gsplat_kwargs:
        raise ValueError(f"options only gsplat supports: {sorted(gsplat_kwargs)}")
    _check_shapes(means, quats, scales, opacities, colors, viewmats, Ks, sh_degree, backgrounds)
    return _rasterize_torch(
        means, quats, scales, opacities, colors, viewmats, Ks, int(width), int(height),
        near_plane, far_plane, radius_clip, eps2d, sh_degree,
        tile_size, backgrounds, render_mode,
        rasterize_mode == "antialiased", block_elems,
    )


def _rasterize_torch(
    means, quats, scales, opacities, colors, viewmats, Ks, width, height, near_plane, far_plane,
    radius_clip, eps2d, sh_degree, tile_size, backgrounds, render_mode, antialiased, block_elems,
):
    C = viewmats.shape[0]
    proj = project_gaussians(
        means, quats, scales, opacities, viewmats, Ks, width, height, eps2d=eps2d,
        near_plane=near_plane, far_plane=far_plane, radius_clip=radius_clip,
        antialiased=antialiased,
    )
    if sh_degree is not None:
        dirs = means[None, :, :] - camera_centers(viewmats)[:, None, :]  # [C, N, 3]
        shs = colors if colors.dim() == 4 else colors[None].expand(C, -1, -1, -1)
        colors = sh_to_rgb(sh_degree, dirs, shs)  # [C, N, 3]
    elif colors.dim() == 2:
        colors = colors[None].expand(C, -1, -1)
    depth = proj.depths[..., None]
    zeros_bg = None if backgrounds is None else backgrounds.new_zeros(C, 1)
    if render_mode in ("RGB+D", "RGB+ED"):
        colors = torch.cat([colors, depth], dim=-1)
        if backgrounds is not None:
            backgrounds = torch.cat([backgrounds, zeros_bg], dim=-1)
    elif render_mode in ("D", "ED"):
        colors = depth
        backgrounds = zeros_bg
    if tile_size is None:
        tile_size = choose_tile_size(proj.means2d, proj.radii, width, height)
    tile_size = int(tile_size)
    tiles_x, tiles_y = tile_grid(width, height, tile_size)
    isect = intersect_tiles(proj.means2d, proj.radii, proj.depths, tile_size, tiles_x, tiles_y)
    render_colors, render_alphas = composite(
        proj.means2d, proj.conics, proj.opacities, colors, isect, width, height,
        backgrounds=backgrounds, block_elems=block_elems,
    )
    if render_mode in ("ED", "RGB+ED"):
        render_colors = torch.cat(
            [render_colors[..., :-1], render_colors[..., -1:] / render_alphas.clamp(min=1e-10)],
            dim=-1,
        )
    meta = {
        "camera_ids": None,
        "gaussian_ids": None,
        "radii": proj.radii,
        "means2d": proj.means2d,
        "depths": proj.depths,
        "conics": proj.conics,
        "opacities": proj.opacities,
        "tile_width": tiles_x,
        "tile_height": tiles_y,
        "tiles_per_gauss": isect.tiles_per_gauss,
        "isect_offsets": isect.offsets,
        "n_isects": isect.n_isects,
        "width": width,
        "height": height,
        "tile_size": tile_size,
        "n_cameras": C,
        "backend": "torch",
    }
    return render_colors, render_alphas, meta
