"""Training windows of motion tokens, with time-reversal augmentation.

A batch draws instances with replacement, a window of ``window`` consecutive frames from each
(starting at frame 0, the rest pose, with probability ``start_prob``, else anywhere), and plays
each window backwards with probability ``reverse_prob``: a creature's motion played in reverse is
still a plausible motion of the same creature, which doubles the motions seen.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class WindowBatch:
    """``frames`` ``[B, F, n, W]`` clean motion tokens (reversed where ``reversed``);
    ``shapes`` ``[B, S, Ws]``; ``index`` ``[B]`` instances; ``start`` ``[B]`` first source frame
    of each window (before reversal); ``reversed`` ``[B]`` bool; ``at_start`` ``[B]`` bool: the
    window begins at frame 0 in forward time."""

    frames: torch.Tensor
    shapes: torch.Tensor
    index: torch.Tensor
    start: torch.Tensor
    reversed: torch.Tensor
    at_start: torch.Tensor


def reverse_time(frames: torch.Tensor, flags: torch.Tensor) -> torch.Tensor:
    """``frames`` ``[B, F, ...]`` with the frame order of rows where ``flags`` ``[B]`` is True
    reversed (a new tensor)."""
    out = frames.clone()
    out[flags] = frames[flags].flip(1)
    return out


def sample_windows(motion: torch.Tensor, shapes: torch.Tensor, batch: int, window: int,
                   reverse_prob: float, start_prob: float,
                   generator: torch.Generator) -> WindowBatch:
    """A :class:`WindowBatch` from ``motion`` ``[N, T, n, W]`` and ``shapes`` ``[N, S, Ws]``."""
    n, t = motion.shape[:2]
    if shapes.shape[0] != n:
        raise ValueError(f"{shapes.shape[0]} shapes for {n} motion sequences")
    if t < window:
        raise ValueError(f"sequences have {t} frames, fewer than the window of {window}")
    index = torch.randint(n, (batch,), generator=generator)
    start = torch.randint(t - window + 1, (batch,), generator=generator)
    start = torch.where(torch.rand(batch, generator=generator) < start_prob, 0, start)
    rev = torch.rand(batch, generator=generator) < reverse_prob
    frames_idx = start[:, None] + torch.arange(window)[None]  # [B, F]
    frames = motion[index[:, None], frames_idx]  # [B, F, n, W]
    return WindowBatch(reverse_time(frames, rev), shapes[index], index, start, rev,
                       (start == 0) & ~rev)
