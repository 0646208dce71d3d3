"""Gaussian splatting core: differentiable rasterizer, cameras and static fitting.

- :func:`rasterize` follows ``gsplat.rasterization``: on CUDA it calls gsplat, elsewhere it runs
  the built-in torch implementation (projection, tile intersection, front-to-back compositing with
  a custom backward). See :mod:`backend.render.dispatch`.
- :mod:`backend.render.cameras`: orbit cameras (Zero123++ / STAG4D conventions), intrinsics and the
  conversion to and from Blender cameras.
- :func:`fit_static`: optimise Gaussians to posed RGBA views (DS4D's first stage).
"""

from .cameras import (
    K_from_blender_lens,
    blender_lens_from_K,
    blender_to_viewmat,
    intrinsics_from_fov,
    look_at,
    orbit_cameras,
    orbit_viewmat,
    viewmat_to_blender,
    zero123pp_cameras,
)
from .dispatch import RasterizerUnavailable, gsplat_available, rasterize
from .fit import FitConfig, FitStats, evaluate, fit_static
from .gaussians import Gaussians
from .strategy import CPUDefaultStrategy, DensifyConfig

__all__ = [
    "CPUDefaultStrategy",
    "DensifyConfig",
    "FitConfig",
    "FitStats",
    "Gaussians",
    "K_from_blender_lens",
    "RasterizerUnavailable",
    "blender_lens_from_K",
    "blender_to_viewmat",
    "evaluate",
    "fit_static",
    "gsplat_available",
    "intrinsics_from_fov",
    "look_at",
    "orbit_cameras",
    "orbit_viewmat",
    "rasterize",
    "viewmat_to_blender",
    "zero123pp_cameras",
]
