"""Transformer parts shared by the shape and motion denoisers.

- :class:`TokenIn` / :class:`TokenOut`: one linear map per token (tokens have different widths,
  :mod:`.tokens`), done for all tokens at once with a batched einsum over padded weights;
- :class:`TimestepEmbedder`: sinusoidal features of the diffusion timestep -> MLP;
- :class:`Attention`: multi-head attention, self (``ctx=None``) or cross (keys and values from
  ``ctx``), with :meth:`Attention.weights` to inspect who attends to what;
- :class:`Modulation`: pre-norm with adaptive shift / scale / gate from the timestep embedding
  (DiT's adaLN-Zero: gates start at 0, so every block starts as the identity).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class TokenIn(nn.Module):
    """Per-token linear maps ``[..., n, W]`` -> ``[..., n, d]``; entries outside ``mask``
    ``[n, W]`` are ignored (each token's map only sees its own ``w_i`` real entries)."""

    def __init__(self, mask: torch.Tensor, dim: int):
        super().__init__()
        n, w = mask.shape
        self.register_buffer("mask", mask.clone().bool(), persistent=False)
        bound = 1.0 / torch.sqrt(mask.sum(1).clamp_min(1).float())  # nn.Linear's init per token
        self.weight = nn.Parameter((torch.rand(n, w, dim) * 2 - 1) * bound[:, None, None])
        self.bias = nn.Parameter((torch.rand(n, dim) * 2 - 1) * bound[:, None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * self.mask.to(x.dtype)
        return torch.einsum("...nw,nwd->...nd", x, self.weight) + self.bias


class TokenOut(nn.Module):
    """Per-token linear maps ``[..., n, d]`` -> ``[..., n, W]``, zero outside ``mask``."""

    def __init__(self, mask: torch.Tensor, dim: int, zero_init: bool = True):
        super().__init__()
        n, w = mask.shape
        self.register_buffer("mask", mask.clone().bool(), persistent=False)
        std = 0.0 if zero_init else 1.0 / math.sqrt(dim)
        self.weight = nn.Parameter(torch.randn(n, dim, w) * std)
        self.bias = nn.Parameter(torch.zeros(n, w))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        y = torch.einsum("...nd,ndw->...nw", h, self.weight) + self.bias
        return y * self.mask.to(y.dtype)


def timestep_features(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal features ``[B, dim]`` of timesteps ``t`` ``[B]`` (integers or floats)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32,
                                                           device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    feat = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return F.pad(feat, (0, dim - 2 * half))


class TimestepEmbedder(nn.Module):
    """Timesteps ``[B]`` -> ``[B, dim]``."""

    def __init__(self, dim: int, features: int = 128):
        super().__init__()
        self.features = features
        self.mlp = nn.Sequential(nn.Linear(features, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(timestep_features(t, self.features))


class Attention(nn.Module):
    """Multi-head attention of queries ``x`` ``[B, L, d]`` over ``ctx`` ``[B, S, d]`` (or over
    ``x`` itself) -> ``[B, L, d]``."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        return x.reshape(b, n, self.heads, d // self.heads).transpose(1, 2)  # [B, h, n, dh]

    def _qkv(self, x: torch.Tensor, ctx: torch.Tensor | None):
        k, v = self.kv(x if ctx is None else ctx).chunk(2, dim=-1)
        return self._split(self.q(x)), self._split(k), self._split(v)

    def forward(self, x: torch.Tensor, ctx: torch.Tensor | None = None) -> torch.Tensor:
        q, k, v = self._qkv(x, ctx)
        y = F.scaled_dot_product_attention(q, k, v)
        return self.out(y.transpose(1, 2).reshape(x.shape))

    def weights(self, x: torch.Tensor, ctx: torch.Tensor | None = None) -> torch.Tensor:
        """Attention weights ``[B, heads, L, S]`` (each row sums to 1)."""
        q, k, _ = self._qkv(x, ctx)
        return torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1)


class FeedForward(nn.Sequential):
    def __init__(self, dim: int, ratio: float = 4.0):
        hidden = int(dim * ratio)
        super().__init__(nn.Linear(dim, hidden), nn.GELU(approximate="tanh"),
                         nn.Linear(hidden, dim))


class Modulation(nn.Module):
    """``parts`` (shift, scale, gate) triples from a condition ``c`` ``[B, d]``; zero at init."""

    def __init__(self, dim: int, parts: int):
        super().__init__()
        self.parts = parts
        self.proj = nn.Linear(dim, 3 * parts * dim)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, c: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        chunks = self.proj(F.silu(c)).chunk(3 * self.parts, dim=-1)
        return [tuple(chunks[3 * i: 3 * i + 3]) for i in range(self.parts)]


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``x`` ``[B, ..., d]`` * (1 + scale) + shift, with ``shift``/``scale`` ``[B, d]``."""
    view = (x.shape[0],) + (1,) * (x.dim() - 2) + (x.shape[-1],)
    return x * (1 + scale.reshape(view)) + shift.reshape(view)


def gated(gate: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``gate`` ``[B, d]`` broadcast over the middle dimensions of ``y`` ``[B, ..., d]``."""
    return y * gate.reshape((y.shape[0],) + (1,) * (y.dim() - 2) + (y.shape[-1],))


class SelfBlock(nn.Module):
    """Pre-norm self-attention + feed-forward over ``[B, L, d]``, modulated by ``c`` ``[B, d]``
    (or plain pre-norm when ``modulated`` is False and ``c`` is None)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, modulated: bool = True):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=not modulated)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=not modulated)
        self.mlp = FeedForward(dim, mlp_ratio)
        self.mod = Modulation(dim, 2) if modulated else None

    def forward(self, h: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        if self.mod is None:
            h = h + self.attn(self.norm1(h))
            return h + self.mlp(self.norm2(h))
        (s1, k1, g1), (s2, k2, g2) = self.mod(c)
        h = h + gated(g1, self.attn(modulate(self.norm1(h), s1, k1)))
        return h + gated(g2, self.mlp(modulate(self.norm2(h), s2, k2)))


class FinalLayer(nn.Module):
    """Modulated LayerNorm before the output projection: ``[B, ..., d]``, ``c`` ``[B, d]``."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=False)
        self.proj = nn.Linear(dim, 2 * dim)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.proj(F.silu(c)).chunk(2, dim=-1)
        return modulate(self.norm(h), shift, scale)
