"""Denoiser over a window of frames of motion tokens, conditioned on the shape's tokens.

``x_t`` ``[B, F, n, W]`` (F <= ``window`` frames of n standardised motion tokens) -> per-token
linear input projection + learned token positions + learned frame positions -> ``depth``
factorised blocks -> per-token linear output projection ``[B, F, n, W]``.

Each :class:`MotionBlock` runs, pre-norm and modulated by the timestep embedding (adaLN-Zero):

1. spatial self-attention: within each frame, over its n tokens;
2. cross-attention: every motion token (query) over the shape's S tokens (keys and values),
   so what a motion token reads depends on which shape token matches it. The shape tokens are
   encoded once (:class:`ShapeEncoder`: per-token projection, positions, self-attention). The
   paper's public code instead repeats one shape vector as every key, which makes the softmax
   uniform and its cross-attention a constant bias;
3. temporal self-attention: per token, across the F frames;
4. feed-forward.

``at_start`` ``[B]`` says whether the window starts at frame 0 (the rest pose, in which the
shape is given): the first window of a sample is generated with it, continuations without.
"""

from __future__ import annotations

import torch
from torch import nn

from .blocks import (
    Attention,
    FeedForward,
    FinalLayer,
    Modulation,
    SelfBlock,
    TimestepEmbedder,
    TokenIn,
    TokenOut,
    gated,
    modulate,
)
from .config import MotionDenoiserConfig


class ShapeEncoder(nn.Module):
    """Clean standardised shape tokens ``[B, S, Ws]`` -> cross-attention context ``[B, S, d]``."""

    def __init__(self, cfg: MotionDenoiserConfig, shape_mask: torch.Tensor):
        super().__init__()
        d = cfg.width
        self.inp = TokenIn(shape_mask, d)
        self.pos = nn.Parameter(torch.randn(shape_mask.shape[0], d) * 0.02)
        self.blocks = nn.ModuleList(SelfBlock(d, cfg.heads, cfg.mlp_ratio, modulated=False)
                                    for _ in range(cfg.shape_depth))
        self.norm = nn.LayerNorm(d)

    def forward(self, shape_tokens: torch.Tensor) -> torch.Tensor:
        h = self.inp(shape_tokens) + self.pos
        for blk in self.blocks:
            h = blk(h)
        return self.norm(h)


class MotionBlock(nn.Module):
    """Spatial, cross and temporal attention + feed-forward on ``h`` ``[B, F, n, d]``."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.norms = nn.ModuleList(nn.LayerNorm(dim, elementwise_affine=False) for _ in range(4))
        self.spatial = Attention(dim, heads)
        self.cross = Attention(dim, heads)
        self.temporal = Attention(dim, heads)
        self.mlp = FeedForward(dim, mlp_ratio)
        self.mod = Modulation(dim, 4)

    def forward(self, h: torch.Tensor, c: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        """``h`` ``[B, F, n, d]``, condition ``c`` ``[B, d]``, shape context ``ctx``
        ``[B, S, d]`` -> ``[B, F, n, d]``."""
        b, f, n, d = h.shape
        (s1, k1, g1), (s2, k2, g2), (s3, k3, g3), (s4, k4, g4) = self.mod(c)
        y = modulate(self.norms[0](h), s1, k1).reshape(b * f, n, d)
        h = h + gated(g1, self.spatial(y).reshape(b, f, n, d))
        y = modulate(self.norms[1](h), s2, k2).reshape(b, f * n, d)
        h = h + gated(g2, self.cross(y, ctx).reshape(b, f, n, d))
        y = modulate(self.norms[2](h), s3, k3).transpose(1, 2).reshape(b * n, f, d)
        h = h + gated(g3, self.temporal(y).reshape(b, n, f, d).transpose(1, 2))
        return h + gated(g4, self.mlp(modulate(self.norms[3](h), s4, k4)))


class MotionDenoiser(nn.Module):
    def __init__(self, cfg: MotionDenoiserConfig, mask: torch.Tensor, shape_mask: torch.Tensor):
        """``mask`` ``[n, W]`` motion token entries; ``shape_mask`` ``[S, Ws]`` shape ones."""
        super().__init__()
        self.cfg = cfg
        d = cfg.width
        self.inp = TokenIn(mask, d)
        self.token_pos = nn.Parameter(torch.randn(mask.shape[0], d) * 0.02)
        self.frame_pos = nn.Parameter(torch.randn(cfg.window, d) * 0.02)
        self.time = TimestepEmbedder(d)
        self.start = nn.Embedding(2, d)
        nn.init.zeros_(self.start.weight)
        self.shape = ShapeEncoder(cfg, shape_mask)
        self.blocks = nn.ModuleList(MotionBlock(d, cfg.heads, cfg.mlp_ratio)
                                    for _ in range(cfg.depth))
        self.final = FinalLayer(d)
        self.out = TokenOut(mask, d)

    def forward(self, x: torch.Tensor, t: torch.Tensor, shape_tokens: torch.Tensor,
                at_start: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` ``[B, F, n, W]``, ``t`` ``[B]``, ``shape_tokens`` ``[B, S, Ws]``, ``at_start``
        ``[B]`` bool (None = False) -> ``[B, F, n, W]``."""
        b, f = x.shape[:2]
        if f > self.cfg.window:
            raise ValueError(f"{f} frames in a window; this denoiser takes at most "
                             f"{self.cfg.window}")
        if shape_tokens.shape[0] != b:
            raise ValueError(f"{shape_tokens.shape[0]} shapes for {b} motion windows")
        start = torch.zeros(b, dtype=torch.long, device=x.device) if at_start is None \
            else at_start.long()
        c = self.time(t) + self.start(start)
        ctx = self.shape(shape_tokens)
        h = self.inp(x) + self.token_pos + self.frame_pos[:f, None]
        for blk in self.blocks:
            h = blk(h, c, ctx)
        return self.out(self.final(h, c))
