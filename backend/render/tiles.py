"""Tile intersection: which Gaussians touch which screen tile, sorted by (image, tile, depth).

Same bounds as gsplat: a Gaussian with radii (rx, ry) at mean (mx, my) touches the tiles
``floor((m - r) / ts) .. ceil((m + r) / ts)`` (exclusive end), clamped to the grid. The result is
sorted by image, then tile, then depth (ties by Gaussian index), fully vectorised: no Python loop
over Gaussians or tiles.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class TileIntersections:
    """Sorted (tile, Gaussian) pairs for I images of ``tiles_x * tiles_y`` tiles each.

    tile_ids: [M] int64, ``image * n_tiles + ty * tiles_x + tx``, non-decreasing.
    gauss_ids: [M] int64 flat Gaussian index ``image * N + g`` (rows of [I * N, ...] arrays).
    offsets: [I * n_tiles + 1] int64, pairs of tile k are ``offsets[k]:offsets[k + 1]``.
    tiles_per_gauss: [I, N] int64 number of tiles each Gaussian touches.
    """

    tile_size: int
    tiles_x: int
    tiles_y: int
    n_images: int
    tile_ids: Tensor
    gauss_ids: Tensor
    offsets: Tensor
    tiles_per_gauss: Tensor

    @property
    def n_tiles(self) -> int:
        return self.tiles_x * self.tiles_y

    @property
    def n_isects(self) -> int:
        return int(self.gauss_ids.numel())

    def counts(self) -> Tensor:
        """[I * n_tiles] number of Gaussians per tile."""
        return self.offsets[1:] - self.offsets[:-1]


@torch.no_grad()
def intersect_tiles(
    means2d: Tensor,
    radii: Tensor,
    depths: Tensor,
    tile_size: int,
    tiles_x: int,
    tiles_y: int,
) -> TileIntersections:
    """Build the sorted tile/Gaussian pairs.

    Args:
        means2d: [I, N, 2] pixel coordinates.
        radii: [I, N, 2] integer radii, a Gaussian with any radius <= 0 is skipped.
        depths: [I, N] depths (sort key within a tile, front first).
        tile_size: tile edge in pixels.
        tiles_x, tiles_y: tile grid size.
    """
    if means2d.dim() != 3 or means2d.shape[-1] != 2:
        raise ValueError(f"means2d must be [I, N, 2], got {tuple(means2d.shape)}")
    I, N = means2d.shape[:2]
    device = means2d.device
    n_tiles = tiles_x * tiles_y

    valid = (radii > 0).all(dim=-1)  # [I, N]
    img, gid = torch.nonzero(valid, as_tuple=True)  # each sorted by image then index
    m = means2d.detach()[img, gid].to(torch.float64) / tile_size  # [V, 2]
    r = radii[img, gid].to(torch.float64) / tile_size
    lo = torch.floor(m - r)
    hi = torch.ceil(m + r)
    lim = torch.tensor([tiles_x, tiles_y], dtype=torch.float64, device=device)
    lo = torch.minimum(lo.clamp_min(0), lim).to(torch.int64)
    hi = torch.minimum(hi.clamp_min(0), lim).to(torch.int64)
    span = hi - lo  # [V, 2]
    count = span[:, 0] * span[:, 1]  # [V]

    tiles_per_gauss = torch.zeros(I, N, dtype=torch.int64, device=device)
    tiles_per_gauss[img, gid] = count

    # Order the visible Gaussians by (image, depth); a stable sort keeps index order on ties.
    d = depths.detach()[img, gid]
    order = torch.sort(d, stable=True).indices
    order = order[torch.sort(img[order], stable=True).indices]
    img, gid, lo, span, count = img[order], gid[order], lo[order], span[order], count[order]

    # Expand every Gaussian into its rows of tiles, then every row into its tiles (this avoids
    # integer division over all pairs; all gathers are 1D index_select, which is fast).
    key_dtype = torch.int32 if I * n_tiles < 2**31 else torch.int64
    w, h = span[:, 0], span[:, 1]
    row_src = torch.repeat_interleave(h)  # [R] Gaussian of each row
    row_first = torch.cumsum(h, 0) - h
    row_y = torch.index_select(lo[:, 1], 0, row_src) + (
        torch.arange(row_src.numel(), device=device) - torch.index_select(row_first, 0, row_src)
    )
    base = img * n_tiles + lo[:, 0]  # [V] tile id of column lo_x in row 0
    row_base = torch.index_select(base, 0, row_src) + row_y * tiles_x  # [R]
    row_w = torch.index_select(w, 0, row_src)
    cell_row = torch.repeat_interleave(row_w)  # [M] row of each pair
    M = cell_row.numel()
    cell_first = torch.cumsum(row_w, 0) - row_w
    tile_ids = (
        torch.index_select(row_base - cell_first, 0, cell_row)
        + torch.arange(M, device=device)
    ).to(key_dtype)

    # Stable sort by tile keeps the depth order inside each tile.
    tile_ids, perm = torch.sort(tile_ids, stable=True)
    src = torch.index_select(row_src, 0, torch.index_select(cell_row, 0, perm))
    gauss_ids = torch.index_select(img * N + gid, 0, src)
    tile_ids = tile_ids.to(torch.int64)

    per_tile = torch.bincount(tile_ids, minlength=I * n_tiles)
    offsets = torch.zeros(I * n_tiles + 1, dtype=torch.int64, device=device)
    offsets[1:] = torch.cumsum(per_tile, 0)
    return TileIntersections(
        tile_size=tile_size,
        tiles_x=tiles_x,
        tiles_y=tiles_y,
        n_images=I,
        tile_ids=tile_ids,
        gauss_ids=gauss_ids,
        offsets=offsets,
        tiles_per_gauss=tiles_per_gauss,
    )
