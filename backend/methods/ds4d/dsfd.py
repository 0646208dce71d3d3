"""DSFD: dynamic-static feature decoupling (DS4D, Yang et al. 2025), parameter-free.

For a token ``f`` of a frame and the same token ``r`` of a reference (same view):
``static = (f . r / |r|^2) r`` (the projection of f on r) and ``dynamic = f - static``. Two
references per view: the middle frame (index ``T // 2``) and the mean over all frames. For each
reference the dynamic part is appended to the feature, ``[f, dynamic]``; the two results are
averaged: ``[f, (dynamic_mid + dynamic_mean) / 2]``.

A reference token with ``|r|^2 <= eps`` carries no direction: its static part is zero (the token
is all dynamic).
"""

from __future__ import annotations

import torch
from torch import Tensor


def decouple(f: Tensor, r: Tensor, eps: float = 1e-12) -> tuple[Tensor, Tensor]:
    """Static and dynamic parts of tokens ``f`` [..., N, C] against references ``r`` (broadcast
    to f's shape, e.g. [N, C]). Returns (static, dynamic), each shaped like f."""
    r = r.expand_as(f)
    rr = (r * r).sum(-1, keepdim=True)
    coef = (f * r).sum(-1, keepdim=True) / rr.clamp_min(eps)
    static = torch.where(rr > eps, coef * r, torch.zeros_like(f))
    return static, f - static


def references(f: Tensor) -> tuple[Tensor, Tensor]:
    """The middle frame and the mean over frames of ``f`` [..., T, N, C]: each [..., 1, N, C]."""
    T = f.shape[-3]
    return f[..., T // 2: T // 2 + 1, :, :], f.mean(dim=-3, keepdim=True)


def dsfd(f: Tensor, eps: float = 1e-12) -> Tensor:
    """DSFD features [..., T, N, 2C] of one view's frame features ``f`` [..., T, N, C]
    (leading dimensions, e.g. views, are batched; time is dimension -3)."""
    if f.dim() < 3:
        raise ValueError(f"dsfd needs [..., T, N, C] features, got shape {list(f.shape)}")
    mid, mean = references(f)
    _, dyn_mid = decouple(f, mid, eps)
    _, dyn_mean = decouple(f, mean, eps)
    return 0.5 * (torch.cat([f, dyn_mid], -1) + torch.cat([f, dyn_mean], -1))


def dsfd_grid(maps: Tensor, eps: float = 1e-12) -> Tensor:
    """DSFD on patch grids: [..., T, gh, gw, C] -> [..., T, gh, gw, 2C]."""
    *lead, T, gh, gw, C = maps.shape
    out = dsfd(maps.reshape(*lead, T, gh * gw, C), eps)
    return out.reshape(*lead, T, gh, gw, 2 * C)
