"""A mesh sequence from 4D Gaussians: extracted once, then moved with the Gaussians (one topology).

1. **Density**: the canonical Gaussians' opacity-weighted density
   ``D(x) = sum_i o_i exp(-1/2 (x - mu_i)^T Sigma_i^-1 (x - mu_i))`` on a grid over their bounds
   (each Gaussian splatted onto the voxels within 3 sigma of its centre).
2. **Surface**: marching cubes (PyMCubes) of ``D = level``, closed at the grid's border; pieces
   under ``min_piece`` of the area dropped.
3. **Motion**: each vertex follows its ``k`` nearest canonical Gaussians as bones (linear blend
   skinning): at a time, each Gaussian's rigid motion (the change of its rotation about its
   centre, then its centre's move) carries the vertex, and the results are averaged, weighted by
   each Gaussian's density at the vertex (its opacity times its Mahalanobis falloff). A rigid
   motion of all Gaussians moves the mesh by exactly that motion; the vertex order and faces
   never change.
4. **Colour**: each vertex takes its nearest Gaussian's base colour (SH band 0).

Shapes: ``means`` ``[N, 3]``, ``quats`` ``[N, 4]`` (w, x, y, z), ``log_scales`` ``[N, 3]``,
``opacity_logits`` ``[N]`` or ``[N, 1]``, ``sh0`` ``[N, 1, 3]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from backend.data.mesh_pieces import drop_small_pieces
from backend.render.gaussians import Gaussians
from backend.render.project import quat_to_rotmat
from shared.errors import JobError
from shared.gsply import SH_C0


@dataclass(frozen=True)
class MeshConfig:
    """``resolution``: grid cells along the longest side; ``level``: density of the surface
    (a lone opaque Gaussian's density is 1 at its centre); ``k``: Gaussians a vertex follows;
    ``min_piece``: pieces under this share of the area are dropped (0 keeps all)."""

    resolution: int = 96
    level: float = 0.5
    k: int = 8
    min_piece: float = 0.01

    def __post_init__(self) -> None:
        if not 16 <= self.resolution <= 512:
            raise ValueError(f"mesh resolution {self.resolution}: expected 16 to 512")
        if not 0.0 < self.level < 10.0:
            raise ValueError(f"mesh level {self.level:g}: expected between 0 and 10")
        if not 1 <= self.k <= 64:
            raise ValueError(f"mesh k {self.k}: expected 1 to 64")


def _inverse_covariances(g: Gaussians) -> torch.Tensor:
    """``[N, 3, 3]`` inverse covariances from quaternions (w, x, y, z) and log-scales."""
    rot = quat_to_rotmat(g.quats.double())
    inv_s2 = torch.exp(-2 * g.log_scales.double())
    return rot @ torch.diag_embed(inv_s2) @ rot.transpose(1, 2)


def _rotations(g: Gaussians) -> np.ndarray:
    """``[N, 3, 3]`` float64 rotation matrices of the quaternions (w, x, y, z)."""
    return quat_to_rotmat(g.quats.double()).numpy()


def _opacity(g: Gaussians) -> torch.Tensor:
    return torch.sigmoid(g.opacity_logits.double().reshape(-1))


def density_grid(g: Gaussians, resolution: int, chunk: int = 4096
                 ) -> tuple[np.ndarray, np.ndarray, float]:
    """(grid ``[X, Y, Z]`` float64, its origin ``[3]``, voxel size): ``D`` at voxel centres over
    the Gaussians' 3-sigma bounds plus two voxels."""
    mu = g.means.double()
    sig = torch.exp(g.log_scales.double()).amax(-1)
    lo = (mu - 3 * sig[:, None]).amin(0)
    hi = (mu + 3 * sig[:, None]).amax(0)
    voxel = float((hi - lo).max()) / resolution
    origin = lo - 2 * voxel
    dims = torch.ceil((hi - lo) / voxel).long() + 5
    grid = torch.zeros(int(dims[0] * dims[1] * dims[2]), dtype=torch.float64)
    inv = _inverse_covariances(g)
    op = _opacity(g)
    reach = torch.clamp(torch.ceil(3 * sig / voxel).long(), 1, 8)
    for r in torch.unique(reach).tolist():  # Gaussians of one reach share one voxel kernel
        ax = torch.arange(-r, r + 1)
        offs = torch.stack(torch.meshgrid(ax, ax, ax, indexing="ij"), -1).reshape(-1, 3)
        idx_all = torch.nonzero(reach == r).reshape(-1)
        for s in range(0, len(idx_all), chunk):
            idx = idx_all[s:s + chunk]
            centre = torch.round((mu[idx] - origin) / voxel - 0.5).long()
            cells = centre[:, None, :] + offs[None]  # [n, K, 3]
            cells = torch.maximum(torch.minimum(cells, dims - 1), torch.zeros(3, dtype=torch.long))
            d = (cells.double() + 0.5) * voxel + origin - mu[idx][:, None]
            m = torch.einsum("nki,nij,nkj->nk", d, inv[idx], d)
            val = op[idx][:, None] * torch.exp(-0.5 * m)
            flat = (cells[..., 0] * dims[1] + cells[..., 1]) * dims[2] + cells[..., 2]
            grid.index_add_(0, flat.reshape(-1), val.reshape(-1))
    return grid.reshape(*dims.tolist()).numpy(), origin.numpy(), voxel


def extract_surface(g: Gaussians, cfg: MeshConfig) -> tuple[np.ndarray, np.ndarray]:
    """(vertices ``[V, 3]`` float32, faces ``[F, 3]`` int32) of the canonical Gaussians."""
    import mcubes

    grid, origin, voxel = density_grid(g, cfg.resolution)
    if not grid.max() > cfg.level:
        raise JobError(f"no surface: the Gaussians' density peaks at {grid.max():.3g}, under "
                       f"the level {cfg.level:g}; lower the level", "no_surface")
    field = np.pad(cfg.level - grid, 1, constant_values=cfg.level)  # < 0 inside, closed border
    verts, faces = mcubes.marching_cubes(field, 0.0)
    verts = (verts - 1.0 + 0.5) * voxel + origin
    faces = faces.astype(np.int32)
    a, b, c = (verts[faces[:, k]] for k in range(3))
    if np.einsum("ij,ij->i", a, np.cross(b, c)).sum() < 0:  # outward
        faces = faces[:, [0, 2, 1]]
    verts, faces, _ = drop_small_pieces(verts, faces, cfg.min_piece)
    return verts.astype(np.float32), faces


def follow_weights(verts: np.ndarray, g: Gaussians, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices ``[V, k]``, weights ``[V, k]`` summing to 1): the ``k`` nearest Gaussians of each
    vertex and their densities there (the nearest alone where all densities vanish)."""
    from scipy.spatial import cKDTree

    mu = g.means.double().numpy()
    k = min(k, len(mu))
    _, idx = cKDTree(mu).query(np.asarray(verts, np.float64), k=k)
    idx = idx.reshape(len(verts), k)
    inv = _inverse_covariances(g).numpy()[idx]  # [V, k, 3, 3]
    d = np.asarray(verts, np.float64)[:, None] - mu[idx]
    m = np.einsum("vki,vkij,vkj->vk", d, inv, d)
    w = _opacity(g).numpy()[idx] * np.exp(-0.5 * m)
    empty = w.sum(1) <= 1e-300
    w[empty] = 0.0
    w[empty, 0] = 1.0
    return idx, w / w.sum(1, keepdims=True)


def mesh_frames(canonical: Gaussians, frames: list[Gaussians], cfg: MeshConfig
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vertices ``[T, V, 3]``, faces ``[F, 3]``, colours ``[V, 4]``) following ``frames``
    (the canonical Gaussians moved: same count and order)."""
    verts, faces = extract_surface(canonical, cfg)
    idx, w = follow_weights(verts, canonical, cfg.k)
    base = canonical.means.double().numpy()
    rot0 = _rotations(canonical)
    local = verts[:, None, :].astype(np.float64) - base[idx]  # [V, k, 3] from each Gaussian
    out = np.empty((len(frames), len(verts), 3), np.float32)
    for t, f in enumerate(frames):
        if f.count != canonical.count:
            raise ValueError(f"frame {t} has {f.count} Gaussians, the canonical {canonical.count}")
        # each Gaussian's rigid motion (its rotation change, its move) applied to the vertex,
        # blended by the weights (linear blend skinning with the Gaussians as bones)
        rel = _rotations(f) @ rot0.transpose(0, 2, 1)  # [N, 3, 3]
        each = np.einsum("vkij,vkj->vki", rel[idx], local) + f.means.double().numpy()[idx]
        out[t] = np.einsum("vk,vki->vi", w, each)
    rgb = np.clip(canonical.sh0.double().numpy().reshape(-1, 3) * SH_C0 + 0.5, 0, 1)
    colors = np.concatenate([rgb[idx[:, 0]], np.ones((len(verts), 1))], 1).astype(np.float32)
    return out, faces, colors
