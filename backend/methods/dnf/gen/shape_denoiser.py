"""Unconditional denoiser over the shape tokens of one instance.

``x_t`` ``[B, n, W]`` (standardised, padded tokens, :mod:`.tokens`) -> per-token linear input
projection + learned token positions -> ``depth`` pre-norm transformer blocks (self-attention
over the n tokens, adaptive norm from the timestep embedding) -> modulated final norm ->
per-token linear output projection ``[B, n, W]`` (what :class:`~.noise.NoiseConfig` says the
network predicts: x0 by default).
"""

from __future__ import annotations

import torch
from torch import nn

from .blocks import FinalLayer, SelfBlock, TimestepEmbedder, TokenIn, TokenOut
from .config import DenoiserConfig


class ShapeDenoiser(nn.Module):
    def __init__(self, cfg: DenoiserConfig, mask: torch.Tensor):
        """``mask`` ``[n, W]``: the real entries of each token (:attr:`Tokenizer.mask`)."""
        super().__init__()
        self.cfg = cfg
        n = mask.shape[0]
        d = cfg.width
        self.inp = TokenIn(mask, d)
        self.pos = nn.Parameter(torch.randn(n, d) * 0.02)
        self.time = TimestepEmbedder(d)
        self.blocks = nn.ModuleList(SelfBlock(d, cfg.heads, cfg.mlp_ratio)
                                    for _ in range(cfg.depth))
        self.final = FinalLayer(d)
        self.out = TokenOut(mask, d)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``x`` ``[B, n, W]``, timesteps ``t`` ``[B]`` -> ``[B, n, W]``."""
        c = self.time(t)
        h = self.inp(x) + self.pos
        for blk in self.blocks:
            h = blk(h, c)
        return self.out(self.final(h, c))
