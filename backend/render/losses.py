"""Image losses for fitting: L1, SSIM with a Gaussian window, masks, PSNR.

Images are channel-last float tensors ``[B, H, W, C]`` in [0, 1], as the rasterizer returns them.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import Tensor

SSIM_C1 = 0.01**2
SSIM_C2 = 0.03**2


@functools.cache
def _gauss_window(size: int, sigma: float, dtype: torch.dtype, device: str) -> Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return torch.outer(g, g).to(dtype=dtype, device=device)[None, None]  # [1, 1, k, k]


def ssim(a: Tensor, b: Tensor, window: int = 11, sigma: float = 1.5) -> Tensor:
    """Mean structural similarity of two image batches ``[B, H, W, C]`` (same shapes).

    Gaussian-weighted local statistics (window 11, sigma 1.5, zero padding as in the 3DGS code),
    averaged over pixels, channels and the batch.
    """
    if a.shape != b.shape or a.dim() != 4:
        raise ValueError(f"ssim needs two [B, H, W, C] tensors, got {a.shape} and {b.shape}")
    C = a.shape[-1]
    x = a.permute(0, 3, 1, 2)
    y = b.permute(0, 3, 1, 2)
    w = _gauss_window(window, sigma, a.dtype, str(a.device)).expand(C, 1, window, window)
    pad = window // 2
    # One conv over the five statistics (x, y, xx, yy, xy) stacked along channels.
    stats = torch.cat([x, y, x * x, y * y, x * y], dim=1)
    m = F.conv2d(stats, w.repeat(5, 1, 1, 1), padding=pad, groups=5 * C)
    mx, my, exx, eyy, exy = m.split(C, dim=1)
    vx = exx - mx * mx
    vy = eyy - my * my
    cxy = exy - mx * my
    num = (2 * mx * my + SSIM_C1) * (2 * cxy + SSIM_C2)
    den = (mx * mx + my * my + SSIM_C1) * (vx + vy + SSIM_C2)
    return (num / den).mean()


def dssim(a: Tensor, b: Tensor) -> Tensor:
    """Structural dissimilarity ``1 - SSIM`` (the 3DGS loss term)."""
    return 1.0 - ssim(a, b)


def l1(a: Tensor, b: Tensor) -> Tensor:
    return (a - b).abs().mean()


def mask_loss(alpha: Tensor, mask: Tensor) -> Tensor:
    """L1 between rendered alpha ``[B, H, W, 1]`` and the target mask (same shape, in [0, 1])."""
    return (alpha - mask).abs().mean()


def psnr(a: Tensor, b: Tensor) -> float:
    """Peak signal-to-noise ratio in dB for images in [0, 1] (over all given pixels)."""
    mse = float(((a.detach().double() - b.detach().double()) ** 2).mean())
    return math.inf if mse == 0 else -10.0 * math.log10(mse)


def composite(rgba: Tensor, background: Tensor | float) -> Tensor:
    """Straight-alpha RGBA ``[..., 4]`` over a background colour ``[..., 3]`` or scalar -> RGB."""
    a = rgba[..., 3:]
    return rgba[..., :3] * a + background * (1 - a)
