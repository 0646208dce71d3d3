"""A CPU renderer glued from gsplat's pure-torch pieces: the baseline of ``bench/raster.py``.

gsplat ships pure-torch versions of its projection (``_fully_fused_projection``) and tile
intersection (``_isect_tiles``, ``_isect_offset_encode``), but its torch compositing
(``_rasterize_to_pixels``) needs CUDA (``rasterize_to_indices_in_range``) and nerfacc. So the
compositing stage here does what gsplat's ``accumulate`` does (alpha = min(0.999, o exp(-sigma)),
pairs under 1/255 skipped, weights alpha * T with an exclusive cumulative product of 1 - alpha in
depth order) with plain torch ops and autograd, one padded [tiles, K, pixels] block per chunk of
tiles, with a backward pass per chunk so memory stays bounded. Unlike gsplat's CUDA kernel it has no
early stop at T < 1e-4, and gsplat's torch projection uses 3.33 sigma radii (not opacity-aware), so
its images differ from ours by about that much.
"""

from __future__ import annotations

import math
import time

import torch
from torch import Tensor


def render_and_backward(
    means: Tensor, quats: Tensor, scales: Tensor, opacities: Tensor, colors: Tensor,
    viewmats: Tensor, Ks: Tensor, width: int, height: int, grad_color: Tensor | None = None,
    tile_size: int = 16, chunk_elems: int = 1 << 23,
) -> tuple[Tensor, dict[str, float]]:
    """Render [C, H, W, D] (and backpropagate ``grad_color`` into the leaves if given).

    Returns the image and stage times in seconds (process CPU time): projection, isect,
    composite_fwd, composite_bwd (includes the projection's backward).
    """
    from gsplat.cuda import _torch_impl as ti

    times: dict[str, float] = {}
    t0 = time.process_time()
    covars, _ = ti._quat_scale_to_covar_preci(quats, scales, compute_preci=False)
    radii, means2d, depths, conics, _ = ti._fully_fused_projection(
        means, covars, viewmats, Ks, width, height
    )
    t1 = time.process_time()
    C, N = means2d.shape[:2]
    tw, th = math.ceil(width / tile_size), math.ceil(height / tile_size)
    _, isect_ids, flatten_ids = ti._isect_tiles(means2d, radii, depths, tile_size, tw, th)
    offsets = ti._isect_offset_encode(isect_ids, C, tw, th).reshape(-1).long()
    t2 = time.process_time()
    times["projection"], times["isect"] = t1 - t0, t2 - t1

    n_isects = flatten_ids.numel()
    ends = torch.cat([offsets[1:], torch.tensor([n_isects])])
    counts = ends - offsets
    P = tile_size * tile_size
    m2 = means2d.reshape(C * N, 2)
    con = conics.reshape(C * N, 3)
    op = opacities[None].expand(C, N).reshape(C * N)
    col = (colors[None].expand(C, N, -1) if colors.dim() == 2 else colors).reshape(C * N, -1)
    D = col.shape[-1]
    j = torch.arange(tile_size)
    Hp, Wp = th * tile_size, tw * tile_size

    def to_tiles(x: Tensor) -> Tensor:  # [C, Hp, Wp, D] -> [C * th * tw, P, D]
        x = x.reshape(C, th, tile_size, tw, tile_size, D).permute(0, 1, 3, 2, 4, 5)
        return x.reshape(C * th * tw, P, D)

    out_tiles = torch.zeros(C * th * tw, P, D)
    g_tiles = None
    if grad_color is not None:
        gpad = torch.zeros(C, Hp, Wp, D)
        gpad[:, :height, :width] = grad_color
        g_tiles = to_tiles(gpad)
    fwd = bwd = 0.0
    tiles = torch.nonzero(counts).squeeze(1)
    order = tiles[torch.argsort(counts[tiles], descending=True)]
    start = 0
    while start < order.numel():
        kmax = int(counts[order[start]])
        nt = max(1, chunk_elems // max(1, kmax * P))
        chunk = order[start : start + nt]
        start += nt
        ta = time.process_time()
        k = torch.arange(kmax)
        valid_k = k[None] < counts[chunk][:, None]
        idx = torch.where(valid_k, offsets[chunk][:, None] + k[None], 0)
        fid = flatten_ids[idx].long()  # [nt, K]
        local = chunk % (tw * th)
        px = (local % tw)[:, None, None] * tile_size + j[None, None, :] + 0.5  # [nt, 1, ts]
        py = (local // tw)[:, None, None] * tile_size + j[None, :, None] + 0.5  # [nt, ts, 1]
        px = px.expand(-1, tile_size, -1).reshape(-1, 1, P)
        py = py.expand(-1, -1, tile_size).reshape(-1, 1, P)
        mu = m2[fid]  # [nt, K, 2]
        c3 = con[fid]
        dx = mu[..., 0:1] - px  # [nt, K, P]
        dy = mu[..., 1:2] - py
        sigma = 0.5 * (c3[..., 0:1] * dx * dx + c3[..., 2:3] * dy * dy) + c3[..., 1:2] * dx * dy
        alpha = torch.clamp_max(op[fid][..., None] * torch.exp(-sigma), 0.999)
        keep = (sigma >= 0) & (alpha >= 1.0 / 255.0) & valid_k[..., None]
        alpha = torch.where(keep, alpha, torch.zeros_like(alpha))
        T = torch.cumprod(1.0 - alpha, dim=1)
        T = torch.cat([torch.ones_like(T[:, :1]), T[:, :-1]], dim=1)
        w = alpha * T  # [nt, K, P]
        img = torch.einsum("tkp,tkd->tpd", w, col[fid])  # [nt, P, D]
        tb = time.process_time()
        fwd += tb - ta
        out_tiles[chunk] = img.detach()
        if g_tiles is not None:
            tc = time.process_time()
            (img * g_tiles[chunk]).sum().backward(retain_graph=True)
            bwd += time.process_time() - tc
    times["composite_fwd"], times["composite_bwd"] = fwd, bwd
    out = out_tiles.reshape(C, th, tw, tile_size, tile_size, D).permute(0, 1, 3, 2, 4, 5)
    return out.reshape(C, Hp, Wp, D)[:, :height, :width], times
