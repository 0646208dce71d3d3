"""Render a ``video.to4d`` result with our CPU rasterizer from any camera, and score it.

Cameras are the protocol's (``shared/cameras.py``): ``world_to_camera`` with OpenCV axes in the
result's Y-up frame and K in pixels, exactly what the rasterizer takes as ``viewmat`` and ``K``
(:mod:`backend.render.cameras`), so a ground-truth camera written by the add-on's exporter is used
as it is. Renders are RGBA with straight alpha (rendered over black, colour divided by alpha).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from backend.render.gaussians import Gaussians
from shared.gaussians import read_gaussian_result

from .metrics import Scores, blank_score, score


def load_frames(folder: Path) -> list[Gaussians]:
    """The result's frames as torch Gaussians (float32, CPU)."""
    seq = read_gaussian_result(folder)
    out = []
    for f in seq.frames:
        rest = f.sh_rest if f.sh_rest is not None else np.zeros((f.count, 0, 3), np.float32)
        t = {k: torch.from_numpy(np.ascontiguousarray(getattr(f, k), dtype=np.float32))
             for k in ("means", "quats", "log_scales", "opacity_logits", "sh_dc")}
        out.append(Gaussians(t["means"], t["quats"], t["log_scales"], t["opacity_logits"],
                             t["sh_dc"][:, None, :],
                             torch.from_numpy(np.asarray(rest, np.float32).reshape(f.count, -1,
                                                                                   3))))
    return out


@torch.no_grad()
def render_rgba(g: Gaussians, world_to_camera: np.ndarray, K: np.ndarray, width: int,
                height: int) -> np.ndarray:
    """[H, W, 4] float32 straight-alpha render of ``g`` through one camera."""
    vm = torch.as_tensor(np.asarray(world_to_camera), dtype=torch.float32)[None]
    Ks = torch.as_tensor(np.asarray(K), dtype=torch.float32)[None]
    rgb, alpha, _ = g.render(vm, Ks, int(width), int(height),
                             backgrounds=torch.zeros(1, 3), backend="torch")
    a = alpha[0].clamp(0, 1).numpy()
    c = rgb[0].numpy() / np.maximum(a, 1e-6)
    return np.concatenate([np.clip(c, 0, 1), a], -1).astype(np.float32)


def read_rgba(path: Path) -> np.ndarray:
    """[H, W, 4] float32 in [0, 1] of a PNG (RGB gets alpha 1)."""
    return np.asarray(Image.open(path).convert("RGBA"), dtype=np.float32) / 255.0


def score_view(frames: list[Gaussians], cam, gt: list[np.ndarray]
               ) -> tuple[list[Scores], list[Scores], list[np.ndarray]]:
    """(ours per frame, blank floor per frame, our renders) of one camera against its ground
    truth frames."""
    if len(frames) != len(gt):
        raise ValueError(f"the result has {len(frames)} frames, the ground truth {len(gt)}")
    ours = [render_rgba(g, cam.world_to_camera, cam.K, cam.width, cam.height) for g in frames]
    return ([score(o, t) for o, t in zip(ours, gt, strict=True)],
            [blank_score(t) for t in gt], ours)
