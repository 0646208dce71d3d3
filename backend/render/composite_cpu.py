"""Front-to-back alpha compositing of projected Gaussians on the CPU (or any torch device).

The rules are gsplat's (``RasterizeToPixels3DGSFwd.cu``): at pixel centre p, for Gaussians sorted
front to back, ``sigma = 0.5 (a dx^2 + c dy^2) + b dx dy`` with ``d = mean - p``,
``alpha = min(0.999, o exp(-sigma))``; a Gaussian is skipped when ``alpha < 1/255``; the pixel
stops (excluding that Gaussian) as soon as ``T (1 - alpha) <= 1e-4``;
``colour = sum alpha_i T_i c_i + T_final * background`` and ``alpha_out = 1 - T_final``. (gsplat
also skips ``sigma < 0``, which with a positive definite conic only happens through rounding; here
sigma comes from a different but equally exact formula, so that test is left out rather than
letting rounding drop a Gaussian at its own centre.)

How it is vectorised. Non-empty tiles are sorted by their number of Gaussians (longest first). A
step takes the still-active tiles and their next ``B`` Gaussians (entries ``k0 <= k < k0 + B``),
evaluates all of them at all pixels of the tile as one ``[tiles, pixels, B]`` block and composites
it with a cumulative product along B, carrying each pixel's transmittance from block to block (0
once the pixel has stopped). ``log alpha`` is one matmul: with pixel coordinates relative to the
tile centre, ``log o - sigma`` is linear in the monomials (u^2, v^2, uv, u, v, 1). A tile leaves
the active set when all its pixels have stopped or its list is exhausted, which is what makes opaque
regions cheap. Block sizes follow a memory budget (``block_elems`` elements per temporary) and the
temporaries live in reused buffers, so memory stays bounded whatever the scene.

The backward pass is a custom :class:`torch.autograd.Function`: it keeps only the transmittance
entering every block (not per-Gaussian values), replays the blocks back to front, recomputes alpha,
and carries the colour behind each block from the back (within a block, from a cumulative sum), so
no large cancellation appears. Gradients flow to means2d, conics, opacities, colours and the
backgrounds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .tiles import TileIntersections

ALPHA_THRESHOLD = 1.0 / 255.0
ALPHA_MAX = 0.999
T_MIN = 1e-4
LOG_ALPHA_FLOOR = -20.0
DEFAULT_BLOCK_ELEMS = 1 << 18
MIN_BLOCK = 32


@dataclass
class _Step:
    tiles: Tensor  # [nt] full tile indices (image * n_tiles + tile)
    count: Tensor  # [nt] number of Gaussians of each tile
    start: Tensor  # [nt] first pair index of each tile
    k0: int
    B: int
    T0: Tensor  # [nt, P] transmittance before the block, 0 where the pixel is already done


class _Workspace:
    """Reusable flat buffers: big temporaries are allocated once per call, not once per block."""

    def __init__(self, dtype: torch.dtype, device: torch.device):
        self.dtype, self.device = dtype, device
        self._bufs: dict[str, Tensor] = {}

    def get(self, name: str, *shape: int) -> Tensor:
        n = math.prod(shape)
        buf = self._bufs.get(name)
        if buf is None or buf.numel() < n:
            buf = torch.empty(n, dtype=self.dtype, device=self.device)
            self._bufs[name] = buf
        return buf[:n].view(shape)


class _Layout:
    """Tile geometry shared by forward and backward."""

    def __init__(self, isect: TileIntersections, width: int, height: int, dtype, device):
        ts = isect.tile_size
        self.ts, self.P = ts, ts * ts
        self.width, self.height = width, height
        self.n_tiles = isect.n_tiles
        self.n_all = isect.n_images * isect.n_tiles
        self.tiles_x, self.tiles_y = isect.tiles_x, isect.tiles_y
        u = torch.arange(ts, dtype=dtype, device=device) + 0.5 - 0.5 * ts
        vv, uu = torch.meshgrid(u, u, indexing="ij")  # row-major pixels (v = rows)
        uu, vv = uu.reshape(-1), vv.reshape(-1)
        # Monomials of the pixel offset from the tile centre: [6, P] and its transpose [P, 6].
        self.feat = torch.stack([uu * uu, vv * vv, uu * vv, uu, vv, torch.ones_like(uu)])
        self.featT = self.feat.t().contiguous()
        local = torch.arange(self.n_all, device=device) % self.n_tiles
        tx, ty = local % self.tiles_x, local // self.tiles_x
        self.center = torch.stack([tx * ts + 0.5 * ts, ty * ts + 0.5 * ts], -1).to(dtype)  # [T, 2]
        j = torch.arange(ts, device=device)
        px = tx[:, None, None] * ts + j[None, None, :]  # [T, 1, ts]
        py = ty[:, None, None] * ts + j[None, :, None]  # [T, ts, 1]
        self.outside = ((px >= width) | (py >= height)).reshape(self.n_all, self.P)
        counts = isect.counts()
        nz = torch.nonzero(counts).squeeze(1)
        order = torch.sort(counts[nz], descending=True, stable=True).indices
        self.tiles = nz[order]  # non-empty tiles, longest list first
        self.count = counts[self.tiles]
        self.start = isect.offsets[:-1][self.tiles]
        self.one = torch.ones((), dtype=dtype, device=device)
        # alpha >= 1/255  <=>  alpha > (the largest float below 1/255)
        self.thr_prev = float(torch.nextafter(torch.tensor(ALPHA_THRESHOLD, dtype=dtype),
                                              torch.tensor(0.0, dtype=dtype)))

    def to_image(self, x: Tensor, n_images: int) -> Tensor:
        """[I * n_tiles, P, D] -> [I, H, W, D]."""
        D = x.shape[-1]
        ts = self.ts
        x = x.reshape(n_images, self.tiles_y, self.tiles_x, ts, ts, D).permute(0, 1, 3, 2, 4, 5)
        x = x.reshape(n_images, self.tiles_y * ts, self.tiles_x * ts, D)
        return x[:, : self.height, : self.width]

    def to_tiles(self, x: Tensor) -> Tensor:
        """[I, H, W, D] -> [I * n_tiles, P, D] (zero padded)."""
        I, H, W, D = x.shape
        ts = self.ts
        Hp, Wp = self.tiles_y * ts, self.tiles_x * ts
        x = torch.nn.functional.pad(x, (0, 0, 0, Wp - W, 0, Hp - H))
        x = x.reshape(I, self.tiles_y, ts, self.tiles_x, ts, D).permute(0, 1, 3, 2, 4, 5)
        return x.reshape(I * self.n_tiles, self.P, D)


def _gather(attrs: Tensor, gauss_ids: Tensor, lay: _Layout, st: _Step):
    """Per-Gaussian block data: ids [nt, B], attributes [nt, B, F], offsets, log-alpha coefs."""
    ks = torch.arange(st.k0, st.k0 + st.B, device=attrs.device)
    kvalid = ks[None, :] < st.count[:, None]  # [nt, B]
    pair = torch.where(kvalid, st.start[:, None] + ks[None, :], 0).reshape(-1)
    gid = torch.index_select(gauss_ids, 0, pair)  # [nt * B]
    a = torch.index_select(attrs, 0, gid).view(*kvalid.shape, -1)  # [nt, B, F]
    c = torch.index_select(lay.center, 0, st.tiles)  # [nt, 2]
    mx = a[..., 0] - c[:, None, 0]
    my = a[..., 1] - c[:, None, 1]
    A, Bq, Cq = a[..., 2], a[..., 3], a[..., 4]
    o = torch.where(kvalid, a[..., 5], 1.0)
    log_o = torch.where(kvalid, torch.log(o), -200.0)
    # log(alpha_raw) = log(o) - sigma, as a linear form in the pixel monomials.
    coef = torch.stack(
        [
            -0.5 * A,
            -0.5 * Cq,
            -Bq,
            A * mx + Bq * my,
            Cq * my + Bq * mx,
            log_o - (0.5 * A * mx * mx + 0.5 * Cq * my * my + Bq * mx * my),
        ],
        dim=1,
    )  # [nt, 6, B]
    return gid, a, mx, my, o, coef


def _alpha_and_T(ws: _Workspace, lay: _Layout, coef: Tensor, st: _Step):
    """alpha [nt, P, B] (clamped, 0 where skipped), 1 - alpha and the cumulative products.

    Returns (alpha, om, cp) where ``cp[..., k]`` is T before entry k and ``cp[..., k + 1]`` after.
    ``st.T0`` is the transmittance entering the block (0 for finished pixels).
    """
    nt, B = coef.shape[0], coef.shape[2]
    P = lay.P
    al = torch.matmul(lay.featT, coef, out=ws.get("al", nt, P, B))
    # exp of very negative values gives float32 denormals, which are slow on x86; anything
    # below exp(-20) is far under the 1/255 threshold anyway.
    al.clamp_min_(LOG_ALPHA_FLOOR).exp_().clamp_max_(ALPHA_MAX)
    F.threshold_(al, lay.thr_prev, 0.0)
    buf = ws.get("om", nt, P, B + 1)
    buf[..., 0] = st.T0
    om = buf[..., 1:]
    torch.sub(lay.one, al, out=om)
    cp = torch.cumprod(buf, -1, out=ws.get("cp", nt, P, B + 1))
    return al, om, cp


def _forward(attrs: Tensor, isect: TileIntersections, lay: _Layout, D: int, block_elems: int):
    dev, dt = attrs.device, attrs.dtype
    P = lay.P
    ws = _Workspace(dt, dev)
    T = torch.ones(lay.n_all, P, dtype=dt, device=dev)
    done = lay.outside.clone()
    acc = torch.zeros(lay.n_all, P, D, dtype=dt, device=dev)
    steps: list[_Step] = []
    act = torch.arange(lay.tiles.numel(), device=dev)
    k0 = 0
    counts_host = lay.count.tolist()
    while act.numel() > 0:
        nt = act.numel()
        remaining = counts_host[int(act[0])] - k0
        B = min(remaining, max(MIN_BLOCK, block_elems // (nt * P)))
        chunk = max(1, block_elems // (B * P))
        for sub in act.split(chunk):
            tiles = torch.index_select(lay.tiles, 0, sub)
            T_in = torch.index_select(T, 0, tiles)
            done0 = torch.index_select(done, 0, tiles)
            st = _Step(tiles, torch.index_select(lay.count, 0, sub),
                       torch.index_select(lay.start, 0, sub), k0, B, T_in.masked_fill(done0, 0.0))
            _, a, _, _, _, coef = _gather(attrs, isect.gauss_ids, lay, st)
            al, om, cp = _alpha_and_T(ws, lay, coef, st)
            incl = cp[..., 1:]
            w = ws.get("w", *al.shape)
            w.copy_(incl)
            F.threshold_(w, T_MIN, 0.0)  # T after the entry, 0 where the pixel has stopped
            w.mul_(al).div_(om)  # alpha * T before the entry, for kept entries
            colT = a[..., 6:].transpose(1, 2).contiguous()  # [nt, D, B]
            acc.index_add_(0, tiles, torch.bmm(colT, w.transpose(1, 2)).transpose(1, 2))
            T_last = incl[..., -1].clone()
            stopped = (T_last <= T_MIN) & ~done0
            if bool(stopped.any()):
                rows = incl[stopped]  # [n, B]
                last_kept = torch.where(rows > T_MIN, rows, math.inf).amin(dim=-1)
                T_last[stopped] = torch.minimum(last_kept, T_in[stopped])
            T.index_copy_(0, tiles, torch.where(done0, T_in, T_last))
            done.index_copy_(0, tiles, done0 | stopped)
            steps.append(st)
        k0 += B
        alive = (torch.index_select(lay.count, 0, act) > k0)
        alive &= ~torch.index_select(done, 0, torch.index_select(lay.tiles, 0, act)).all(dim=1)
        act = act[alive]
    return acc, T, steps


def _backward_step(ws, attrs, isect, lay, st, g, Sg, h, v_attrs):
    gid, a, mx, my, o, coef = _gather(attrs, isect.gauss_ids, lay, st)
    al, om, cp = _alpha_and_T(ws, lay, coef, st)
    shape = al.shape
    incl, T_excl = cp[..., 1:], cp[..., :-1]
    w = ws.get("w", *shape)
    w.copy_(incl)
    F.threshold_(w, T_MIN, 0.0)
    kept = torch.sign(w, out=ws.get("kept", *shape))  # 1 where the entry is before the stop
    w.mul_(al).div_(om)
    gt = torch.index_select(g, 0, st.tiles)  # [nt, P, D]
    col = a[..., 6:]  # [nt, B, D]
    gc = torch.bmm(gt, col.transpose(1, 2), out=ws.get("gc", *shape))  # dL/dC . c_k
    q = torch.mul(w, gc, out=ws.get("q", *shape))
    cs = torch.cumsum(q, -1, out=ws.get("cs", *shape))  # colour in front, up to and incl. k
    tot = cs[..., -1].clone()  # [nt, P]
    Sg_t = torch.index_select(Sg, 0, st.tiles)
    Sg.index_add_(0, st.tiles, tot)
    X = tot + Sg_t - torch.index_select(h, 0, st.tiles)  # behind the block, minus alpha term
    # v_alpha_k = T_k gc_k - (colour behind k) / (1 - alpha_k), with behind k = X - cs_k.
    v = cs.sub_(X[..., None]).div_(om).addcmul_(T_excl, gc)
    # dL/dsigma = -alpha v_alpha where alpha is neither clamped nor skipped and before the stop.
    torch.neg(al, out=al)
    F.threshold_(al, -ALPHA_MAX, 0.0)
    u = v.mul_(al).mul_(kept)  # [nt, P, B] dL/dsigma
    vs = torch.matmul(lay.feat, u)  # [nt, 6, B]: dL/d(sigma coefficients)
    v0, v1, v2, v3, v4, v5 = vs.unbind(1)
    v_o = -v5 / o
    A, Bq, Cq = a[..., 2], a[..., 3], a[..., 4]
    gx = A * mx + Bq * my
    gy = Cq * my + Bq * mx
    v_mx = -A * v3 - Bq * v4 + gx * v5
    v_my = -Bq * v3 - Cq * v4 + gy * v5
    v_A = 0.5 * v0 - mx * v3 + 0.5 * mx * mx * v5
    v_B = v2 - my * v3 - mx * v4 + mx * my * v5
    v_C = 0.5 * v1 - my * v4 + 0.5 * my * my * v5
    v_col = torch.bmm(gt.transpose(1, 2).contiguous(), w).transpose(1, 2)  # [nt, B, D]
    vals = torch.cat([torch.stack([v_mx, v_my, v_A, v_B, v_C, v_o], -1), v_col], dim=-1)
    v_attrs.index_add_(0, gid, vals.reshape(-1, vals.shape[-1]))


class _CompositeFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, attrs, backgrounds, isect, lay, D, block_elems):
        acc, T, steps = _forward(attrs, isect, lay, D, block_elems)
        I = isect.n_images
        if backgrounds is not None:
            bg_tiles = backgrounds.repeat_interleave(lay.n_tiles, dim=0)  # [I * n_tiles, D]
            color = acc + T[..., None] * bg_tiles[:, None, :]
        else:
            color = acc
        ctx.save_for_backward(attrs, backgrounds, T)
        ctx.isect, ctx.lay, ctx.steps, ctx.D = isect, lay, steps, D
        out_c = lay.to_image(color, I)
        out_a = lay.to_image((1.0 - T)[..., None], I)
        return out_c.contiguous(), out_a.contiguous()

    @staticmethod
    def backward(ctx, g_color, g_alpha):
        attrs, backgrounds, T = ctx.saved_tensors
        isect, lay, steps, D = ctx.isect, ctx.lay, ctx.steps, ctx.D
        I = isect.n_images
        dev, dt = attrs.device, attrs.dtype
        if g_color is None:
            g_color = torch.zeros(I, lay.height, lay.width, D, dtype=dt, device=dev)
        if g_alpha is None:
            g_alpha = torch.zeros(I, lay.height, lay.width, 1, dtype=dt, device=dev)
        g = lay.to_tiles(g_color.to(dt)).contiguous()  # [T, P, D]
        gA = lay.to_tiles(g_alpha.to(dt))[..., 0]  # [T, P]
        h = gA * T  # d alpha_out / d alpha_k = T_final / (1 - alpha_k)
        v_bg = None
        if backgrounds is not None:
            bg_tiles = backgrounds.repeat_interleave(lay.n_tiles, dim=0)
            Sg = (g * bg_tiles[:, None, :]).sum(-1) * T  # g . (T_final * bg) per pixel
            if ctx.needs_input_grad[1]:
                v_bg = (g * T[..., None]).sum(dim=1).reshape(I, lay.n_tiles, D).sum(dim=1)
        else:
            Sg = torch.zeros_like(T)
        v_attrs = torch.zeros_like(attrs)
        ws = _Workspace(dt, dev)
        for st in reversed(steps):
            _backward_step(ws, attrs, isect, lay, st, g, Sg, h, v_attrs)
        return v_attrs, v_bg, None, None, None, None


def composite(
    means2d: Tensor,
    conics: Tensor,
    opacities: Tensor,
    colors: Tensor,
    isect: TileIntersections,
    width: int,
    height: int,
    backgrounds: Tensor | None = None,
    block_elems: int = DEFAULT_BLOCK_ELEMS,
) -> tuple[Tensor, Tensor]:
    """Composite I images.

    Args:
        means2d: [I, N, 2] pixel coordinates.
        conics: [I, N, 3] inverse 2D covariance (a, b, c).
        opacities: [I, N].
        colors: [I, N, D] any number of channels (RGB, RGB + depth, features).
        isect: tile pairs from :func:`~backend.render.tiles.intersect_tiles` (same I, N).
        width, height: image size.
        backgrounds: [I, D] or None (black).
        block_elems: memory budget per temporary block, in elements.

    Returns:
        colours [I, H, W, D] and alphas [I, H, W, 1].
    """
    I, N = means2d.shape[:2]
    D = colors.shape[-1]
    if isect.n_images != I:
        raise ValueError(f"tile intersections are for {isect.n_images} images, got {I}")
    attrs = torch.cat([means2d, conics, opacities[..., None], colors], dim=-1)
    attrs = attrs.reshape(I * N, attrs.shape[-1])
    lay = _Layout(isect, width, height, attrs.dtype, attrs.device)
    if backgrounds is not None:
        backgrounds = backgrounds.to(attrs.dtype).reshape(I, D)
    return _CompositeFn.apply(attrs, backgrounds, isect, lay, D, int(block_elems))
