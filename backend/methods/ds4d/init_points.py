"""Initial points without pretrained weights: a voted visual hull, or an inflated silhouette.

- :func:`carve_hull`: voxels of the cube [-bound, bound]^3 are projected into every view (pinhole,
  OpenCV axes); a view votes "background" where the voxel centre falls on a pixel with alpha
  below the threshold, or (``outside_is_background``, the default, since the input crop keeps the
  whole object in frame) outside its image or behind it. A voxel is removed only where at least
  ``min_votes`` views vote background: with k > 1 one bad mask cannot cut a limb off.
- :meth:`Hull.bounds`: centre and half-size of the hull, to normalise a supplied scene.
- :func:`hull_points`: points sampled on the hull's surface voxels (jittered), coloured by the
  mean colour of the views that see them inside their masks.
- :func:`inflated_silhouette`: one view only: each mask pixel is lifted to the depth of the world
  origin (its lateral position taken on that depth plane) and pushed along the optical axis
  towards and away from the camera by a half-thickness from the mask's distance transform,
  ``h = sqrt(2 R d - d^2)`` (d: distance to the silhouette edge, R: its maximum), which turns a
  disk into a sphere; ``inflation`` scales it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage
from torch import Tensor

from shared.errors import FormatError, ParamError

from .tssf import project


@dataclass
class HullConfig:
    bound: float = 1.0  # half-size of the carved cube (world units)
    resolution: int = 64  # voxels per axis
    min_votes: int = 1  # k: background votes that remove a voxel
    alpha_threshold: float = 0.5
    outside_is_background: bool = True


@dataclass
class Hull:
    """occupied [r, r, r] bool (index order x, y, z), centres [r, r, r, 3], voxel size."""

    occupied: Tensor
    centres: Tensor
    voxel: float

    def bounds(self) -> tuple[Tensor, float]:
        """Centre [3] and half-size of the occupied voxels' bounding cube (to re-centre and
        rescale a scene whose object is not at the origin in the unit cube)."""
        if not bool(self.occupied.any()):
            raise FormatError("the visual hull is empty: the masks and the cameras do not agree")
        pts = self.centres[self.occupied]
        lo, hi = pts.min(0).values, pts.max(0).values
        return (lo + hi) / 2, float((hi - lo).max()) / 2 + self.voxel / 2


def _lookup(masks: Tensor, uv: Tensor) -> tuple[Tensor, Tensor]:
    """Nearest-pixel alpha [V, P] of masks [V, H, W] at uv [V, P, 2] and the in-image flag."""
    V, H, W = masks.shape
    x, y = torch.floor(uv[..., 0]).long(), torch.floor(uv[..., 1]).long()
    inside = (x >= 0) & (x < W) & (y >= 0) & (y < H)
    vals = masks[torch.arange(V, device=masks.device)[:, None], y.clamp(0, H - 1),
                 x.clamp(0, W - 1)]
    return vals, inside


@torch.no_grad()
def carve_hull(masks: Tensor, viewmats: Tensor, Ks: Tensor, cfg: HullConfig | None = None) -> Hull:
    """Voted visual hull of masks [V, H, W] (alpha in [0, 1]) seen by cameras [V, 4, 4], [V, 3, 3].
    """
    cfg = cfg or HullConfig()
    V, dev = masks.shape[0], masks.device
    if not 1 <= cfg.min_votes <= V:
        raise ParamError(f"hull min_votes {cfg.min_votes}: accepted 1 to the number of views {V}")
    r, step = cfg.resolution, 2 * cfg.bound / cfg.resolution
    axis = -cfg.bound + step * (torch.arange(r, dtype=torch.float32, device=dev) + 0.5)
    centres = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1)
    flat = centres.reshape(-1, 3)
    votes = torch.zeros(flat.shape[0], dtype=torch.int32, device=dev)
    for i in range(0, flat.shape[0], 65536):
        uv, z = project(flat[i:i + 65536], viewmats.float(), Ks.float())
        vals, inside = _lookup(masks.float(), uv)
        seen = inside & (z > 0)
        bg = seen & (vals < cfg.alpha_threshold)
        if cfg.outside_is_background:
            bg = bg | ~seen
        votes[i:i + 65536] = bg.sum(0).int()
    occupied = (votes < cfg.min_votes).reshape(r, r, r)
    return Hull(occupied, centres, step)


@torch.no_grad()
def hull_points(hull: Hull, images: Tensor, viewmats: Tensor, Ks: Tensor, n_points: int,
                generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Points [n, 3] on the hull's surface voxels and colours [n, 3] from images [V, H, W, 4]."""
    occ = hull.occupied
    if not bool(occ.any()):
        raise FormatError("the visual hull is empty: the masks and the cameras do not agree "
                          "(check the views' cameras and that every mask shows the object)")
    occ = occ.cpu()
    interior = torch.from_numpy(ndimage.binary_erosion(occ.numpy(), border_value=0))
    surface = occ & ~interior
    cand = hull.centres.cpu()[surface]
    idx = torch.randint(0, cand.shape[0], (n_points,), generator=generator)
    pts = cand[idx] + (torch.rand(n_points, 3, generator=generator) - 0.5) * hull.voxel
    images, viewmats, Ks = images.cpu(), viewmats.cpu(), Ks.cpu()
    uv, z = project(pts, viewmats.float(), Ks.float())
    V, H, W, _ = images.shape
    x = torch.floor(uv[..., 0]).long().clamp(0, W - 1)
    y = torch.floor(uv[..., 1]).long().clamp(0, H - 1)
    vals = images.float()[torch.arange(V)[:, None], y, x]  # [V, n, 4]
    inside = (uv[..., 0] >= 0) & (uv[..., 0] < W) & (uv[..., 1] >= 0) & (uv[..., 1] < H)
    w = (inside & (z > 0)).float() * vals[..., 3]
    cols = (vals[..., :3] * w[..., None]).sum(0) / w.sum(0).clamp_min(1e-6)[..., None]
    cols = torch.where(w.sum(0)[:, None] > 0, cols, torch.full_like(cols, 0.5))
    return pts, cols


@torch.no_grad()
def inflated_silhouette(rgba: Tensor, viewmat: Tensor, K: Tensor, n_points: int,
                        inflation: float = 1.0, alpha_threshold: float = 0.5,
                        generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, float]:
    """Points [n, 3], colours [n, 3] and the pixel footprint (world units at the origin's depth)
    of one view's RGBA [H, W, 4] inflated into a volume (see the module docstring)."""
    rgba, viewmat, K = rgba.cpu(), viewmat.cpu(), K.cpu()
    mask = (rgba[..., 3] > alpha_threshold).numpy()
    if mask.sum() == 0:
        raise FormatError("cannot inflate an empty silhouette: the mask shows no object")
    dt = ndimage.distance_transform_edt(mask) - 0.5  # pixel centre to the silhouette's edge
    R = float(dt.max())
    h = np.sqrt(np.clip(2 * R * dt - dt * dt, 0, None)) * inflation  # pixels
    vm, K = viewmat.double(), K.double()
    z0 = float(vm[2, 3])  # depth of the world origin
    if z0 <= 0:
        raise ParamError("the world origin is behind the input camera; cannot inflate")
    ys, xs = np.nonzero(mask)
    pick = torch.randint(0, len(xs), (n_points,), generator=generator).numpy()
    jit = torch.rand(n_points, 2, generator=generator).double()
    u = torch.from_numpy(xs[pick]).double() + jit[:, 0]
    v = torch.from_numpy(ys[pick]).double() + jit[:, 1]
    side = torch.randint(0, 2, (n_points,), generator=generator).double() * 2 - 1
    footprint = z0 / float(K[0, 0])
    z = z0 + side * torch.from_numpy(h[ys[pick], xs[pick]]) * footprint
    # Lateral position on the origin's depth plane, thickness along the optical axis.
    pc = torch.stack([(u - K[0, 2]) * z0 / K[0, 0], (v - K[1, 2]) * z0 / K[1, 1], z], -1)
    pts = (pc - vm[:3, 3]) @ vm[:3, :3]  # R^T (pc - t), row-wise
    cols = rgba[ys[pick], xs[pick], :3].float()
    return pts.float(), cols, footprint
