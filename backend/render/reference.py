"""Dense reference renderer: every Gaussian at every pixel, no tiles, written for clarity.

It follows the same rules as the fast path (gsplat's) but shares no code with it: its own
quaternion and covariance algebra, full 2x2 matrix inverse, and a plain front-to-back compositing
over depth-sorted Gaussians with an explicit transmittance and "done" mask per pixel. Meant to be
run in float64 and differentiated with autograd, as the ground truth in tests and benchmarks.
Pixels are processed in chunks so that memory stays bounded (``pixel_chunk`` pixels x N).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


def _rotation(q: Tensor) -> Tensor:
    q = q / q.norm(dim=-1, keepdim=True)
    w, x, y, z = q[:, 0], q[:, 1], q[:, 2], q[:, 3]
    ww, xx, yy, zz = w * w, x * x, y * y, z * z
    R = torch.stack(
        [
            torch.stack([ww + xx - yy - zz, 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
            torch.stack([2 * (x * y + w * z), ww - xx + yy - zz, 2 * (y * z - w * x)], -1),
            torch.stack([2 * (x * z - w * y), 2 * (y * z + w * x), ww - xx - yy + zz], -1),
        ],
        dim=-2,
    )
    return R


def project_dense(means, quats, scales, viewmat, K, width, height, eps2d, near, far):
    """One camera: (mean2d [N, 2], conic [N, 2, 2], depth [N], in_range [N], compensation [N])."""
    R_w, t_w = viewmat[:3, :3], viewmat[:3, 3]
    p = means @ R_w.T + t_w  # [N, 3]
    Rq = _rotation(quats)
    S2 = torch.diag_embed(scales * scales)
    cov3 = Rq @ S2 @ Rq.transpose(1, 2)  # [N, 3, 3]
    cov_c = R_w @ cov3 @ R_w.T
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    in_range = (z >= near) & (z <= far)
    z = torch.where(in_range, z, torch.ones_like(z))
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    # gsplat clamps the point used in the Jacobian to 1.3x the field of view.
    lim_x = (-(cx / fx + 0.15 * width / fx), (width - cx) / fx + 0.15 * width / fx)
    lim_y = (-(cy / fy + 0.15 * height / fy), (height - cy) / fy + 0.15 * height / fy)
    u = torch.clamp(x / z, lim_x[0], lim_x[1])
    v = torch.clamp(y / z, lim_y[0], lim_y[1])
    zeros = torch.zeros_like(z)
    row_x = torch.stack([fx / z, zeros, -fx * u / z], -1)
    row_y = torch.stack([zeros, fy / z, -fy * v / z], -1)
    J = torch.stack([row_x, row_y], dim=-2)  # [N, 2, 3]
    cov2_sharp = J @ cov_c @ J.transpose(1, 2)
    cov2 = cov2_sharp + eps2d * torch.eye(2, dtype=means.dtype)
    conic = torch.linalg.inv(cov2)
    comp = torch.sqrt(torch.clamp(torch.linalg.det(cov2_sharp) / torch.linalg.det(cov2), min=0))
    mean2d = torch.stack([fx * x / z + cx, fy * y / z + cy], -1)
    return mean2d, conic, p[:, 2], in_range, comp


ALPHA_THRESHOLD = 1.0 / 255.0
ALPHA_MAX = 0.999
T_MIN = 1e-4


@dataclass(frozen=True)
class EdgeBands:
    """Half-widths of the bands around the rasterizer's discontinuities, in log units.

    A float32 renderer computes every alpha and transmittance with a small relative error, so a
    contribution whose float64 value lies within that error of an edge may land on the other side
    of it: ``alpha`` (``o exp(-sigma)`` before the clamp) against the 1/255 cut-off and the 0.999
    clamp, and the transmittance after a Gaussian against the 1e-4 stop. ``sigma`` is the band
    above 0 of gsplat's ``sigma < 0`` skip (only reached through rounding at a Gaussian's centre).

    Sizes: float32 sigma (a sum of terms up to ~10 at ~6e-8 relative, plus a 1e-5 px error in
    the projected mean) is off by a few 1e-6, which is the error in log alpha: ``log_alpha`` =
    1e-4 leaves ~30x. ``log T`` sums ``alpha / (1 - alpha)`` times that per Gaussian, up to
    ~1e-4 per opaque (alpha 0.99) Gaussian: ``log_T`` = 5e-3.
    """

    log_alpha: float = 1e-4
    log_T: float = 5e-3
    sigma: float = 1e-9


def _sorted_camera(means, quats, scales, opacities, colors_c, viewmat, K, width, height, eps2d,
                   near_plane, far_plane, antialiased):
    """Projected Gaussians of one camera, in range and sorted front to back.

    Returns means2d [n, 2], conics [n, 2, 2], opacities [n], colours [n, D], original ids [n].
    """
    m2, conic, depth, ok, comp = project_dense(
        means, quats, scales, viewmat, K, width, height, eps2d, near_plane, far_plane
    )
    op = opacities * comp if antialiased else opacities
    order = torch.sort(depth.detach(), stable=True).indices
    order = order[ok[order]]
    return m2[order], conic[order], op[order], colors_c[order], order


def _pixel_terms(m2, conic, op, p):
    """The compositing terms of pixel centres p [Pc, 2] and n sorted Gaussians, all [Pc, n].

    Returns sigma; the raw alpha ``o exp(-sigma)`` before the clamp; ``after``, the
    transmittance after each Gaussian if no stop applied; ``used`` (not skipped by the cut-off);
    ``stop`` (the Gaussian the pixel stops at); ``take`` (composited) and ``a``, the clamped
    alpha of every composited Gaussian (0 elsewhere).
    """
    d = m2[None, :, :] - p[:, None, :]  # [Pc, n, 2]
    sigma = 0.5 * torch.einsum("pni,nij,pnj->pn", d, conic, d)
    raw = op[None, :] * torch.exp(-sigma)
    alpha = torch.clamp(raw, max=ALPHA_MAX)
    used = (sigma >= 0) & (alpha >= ALPHA_THRESHOLD)
    a = torch.where(used, alpha, torch.zeros_like(alpha))
    # Transmittance after each Gaussian if every used one were composited.
    after = torch.cumprod(1.0 - a, dim=1)
    # A pixel stops at the first used Gaussian that would bring T to <= 1e-4.
    stop = used & (after <= T_MIN)
    stopped_before = torch.cumsum(stop.to(torch.int64), dim=1) > 0  # includes itself
    take = used & ~stopped_before
    a = torch.where(take, a, torch.zeros_like(a))
    return sigma, raw, after, used, stop, take, a


def render_dense(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    opacities: Tensor,
    colors: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    backgrounds: Tensor | None = None,
    eps2d: float = 0.3,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    antialiased: bool = False,
    pixel_chunk: int = 4096,
    grads: tuple[Tensor, Tensor] | None = None,
) -> tuple[Tensor, Tensor]:
    """Render C images densely.

    Args:
        means [N, 3], quats [N, 4], scales [N, 3], opacities [N]: the Gaussians.
        colors: [N, D] or [C, N, D] post-activation colours (any channels).
        viewmats [C, 4, 4], Ks [C, 3, 3]: cameras (OpenCV, world-to-camera).
        backgrounds: [C, D] or None.
        antialiased: scale opacities by sqrt(det(cov) / det(cov + eps2d I)) per camera.
        grads: optional (dL/dcolours [C, H, W, D], dL/dalphas [C, H, W, 1]): backpropagate them
            chunk by chunk into the inputs' ``.grad`` (memory stays at one chunk's graph) and
            return detached images.

    Returns:
        colours [C, H, W, D] and alphas [C, H, W, 1].
    """
    C = viewmats.shape[0]
    N = means.shape[0]
    if colors.dim() == 2:
        colors = colors.expand(C, N, colors.shape[-1])
    D = colors.shape[-1]
    pix = _pixel_centres(width, height, means.dtype)
    out_c, out_a = [], []
    for ci in range(C):
        m2, conic, op, col, _ = _sorted_camera(
            means, quats, scales, opacities, colors[ci], viewmats[ci], Ks[ci], width, height,
            eps2d, near_plane, far_plane, antialiased,
        )
        cols, alphas = [], []
        for p0 in range(0, pix.shape[0], pixel_chunk):
            p = pix[p0 : p0 + pixel_chunk]  # [Pc, 2]
            a = _pixel_terms(m2, conic, op, p)[-1]
            T = torch.cumprod(1.0 - a, dim=1)
            T_before = torch.cat([torch.ones_like(T[:, :1]), T[:, :-1]], dim=1)
            w = a * T_before
            c = w @ col  # [Pc, D]
            T_final = T[:, -1] if T.shape[1] > 0 else torch.ones(p.shape[0], dtype=means.dtype)
            if backgrounds is not None:
                c = c + T_final[:, None] * backgrounds[ci][None, :]
            a_out = 1.0 - T_final
            if grads is not None:
                gc = grads[0][ci].reshape(-1, D)[p0 : p0 + pixel_chunk]
                ga = grads[1][ci].reshape(-1)[p0 : p0 + pixel_chunk]
                ((c * gc).sum() + (a_out * ga).sum()).backward(retain_graph=True)
                c, a_out = c.detach(), a_out.detach()
            cols.append(c)
            alphas.append(a_out)
        out_c.append(torch.cat(cols).reshape(height, width, D))
        out_a.append(torch.cat(alphas).reshape(height, width, 1))
    return torch.stack(out_c), torch.stack(out_a)


def _pixel_centres(width: int, height: int, dtype) -> Tensor:
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=dtype), torch.arange(width, dtype=dtype), indexing="ij"
    )
    return torch.stack([xs.reshape(-1), ys.reshape(-1)], -1) + 0.5  # [HW, 2]


@torch.no_grad()
def near_edges(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    opacities: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    bands: EdgeBands = EdgeBands(),
    eps2d: float = 0.3,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    antialiased: bool = False,
    pixel_chunk: int = 4096,
) -> Tensor:
    """Pixels whose result a float32 renderer may legitimately flip: [C, H, W] bool.

    A pixel is near an edge when, among the Gaussians it reaches before its stop (the stopping
    one included), a raw alpha lies within ``bands.log_alpha`` (in log) of 1/255 or of the 0.999
    clamp, a sigma lies in [0, ``bands.sigma``) or below 0 with alpha over the cut-off, or the
    transmittance after a used Gaussian lies within ``bands.log_T`` (in log) of 1e-4. Run it on
    the float64 inputs of the reference. Away from these pixels the image is a smooth function
    of the inputs, so a float32 result must match it closely, and so must the gradient of any
    loss that ignores them.
    """
    C, N = viewmats.shape[0], means.shape[0]
    dummy = torch.zeros(N, 1, dtype=means.dtype)
    pix = _pixel_centres(width, height, means.dtype)
    px_out = torch.zeros(C, height * width, dtype=torch.bool)
    log_thr, log_max, log_tmin = math.log(ALPHA_THRESHOLD), math.log(ALPHA_MAX), math.log(T_MIN)
    for ci in range(C):
        m2, conic, op, _, _ = _sorted_camera(
            means, quats, scales, opacities, dummy, viewmats[ci], Ks[ci], width, height, eps2d,
            near_plane, far_plane, antialiased,
        )
        for p0 in range(0, pix.shape[0], pixel_chunk):
            p = pix[p0 : p0 + pixel_chunk]
            sigma, raw, after, used, stop, _, _ = _pixel_terms(m2, conic, op, p)
            before_stop = (torch.cumsum(stop.to(torch.int64), dim=1) - stop.to(torch.int64)) == 0
            log_raw = torch.log(raw.clamp_min(1e-300))
            near_cut = (log_raw - log_thr).abs() < bands.log_alpha
            near_clamp = (log_raw - log_max).abs() < bands.log_alpha
            near_zero = (sigma < bands.sigma) & (log_raw > log_thr - bands.log_alpha)
            near_stop = used & ((torch.log(after.clamp_min(1e-300)) - log_tmin).abs() < bands.log_T)
            edge = before_stop & (near_cut | near_clamp | near_zero | near_stop)
            px_out[ci, p0 : p0 + pixel_chunk] = edge.any(dim=1)
    return px_out.reshape(C, height, width)


def composite_literal(
    means2d: list[list[float]],
    conics: list[list[float]],
    opacities: list[float],
    colors: list[list[float]],
    px: float,
    py: float,
) -> tuple[list[float], float]:
    """One pixel, plain Python, a line-by-line transcription of gsplat's forward kernel loop.

    Gaussians must already be sorted front to back. Used to check :func:`render_dense` itself.
    """
    T = 1.0
    out = [0.0] * len(colors[0]) if colors else []
    for (mx, my), (a, b, c), o, col in zip(means2d, conics, opacities, colors, strict=True):
        dx, dy = mx - px, my - py
        sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
        alpha = min(0.999, o * math.exp(-sigma))
        if sigma < 0 or alpha < 1.0 / 255.0:
            continue
        next_T = T * (1.0 - alpha)
        if next_T <= 1e-4:
            break
        for k in range(len(out)):
            out[k] += col[k] * alpha * T
        T = next_T
    return out, 1.0 - T
