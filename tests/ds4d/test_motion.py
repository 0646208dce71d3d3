"""DS4D learns the clip's motion: a disc that slides across the frames moves in the result.

The motion of a frame sequence is the mean over frames t of 1 - IoU(silhouette at frame 0,
silhouette at t) (``bench/ds4d_motion.py`` measures the same on real clips). With the paper's
deformation learning rates squeezed into a short schedule the field learnt almost none of it
(here 0.034 of the clip's, on the cpu preset 26-28 % of a real clip's): see the learning rates
in ``backend/methods/ds4d/presets.py``.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import torch

from backend.methods.ds4d.clip import InputConfig, load_clip
from backend.methods.ds4d.presets import preset
from backend.methods.ds4d.train import Scene, train
from backend.methods.ds4d.video_io import RawFrames
from backend.methods.ds4d.views import InputViewOnly


def sliding_disc(frames: int = 4, size: int = 48, radius: float = 8.0,
                 shift: float = 8.0) -> RawFrames:
    """RGBA frames [T, size, size, 4] of a shaded disc whose centre slides ``shift`` px to the
    right over the clip (anti-aliased edge; colour ramps so the features see structure)."""
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    out = []
    for k in range(frames):
        cx, cy = size / 2 - shift / 2 + shift * k / (frames - 1), size / 2
        alpha = np.clip(radius + 0.5 - np.hypot(xx - cx, yy - cy), 0, 1)
        rgb = np.stack([np.full_like(xx, 0.9), 0.3 + 0.5 * (xx - cx + radius) / (2 * radius),
                        0.2 + 0.6 * (yy - cy + radius) / (2 * radius)], -1).clip(0, 1)
        out.append(np.concatenate([rgb, alpha[..., None]], -1))
    return RawFrames((np.stack(out) * 255).round().astype(np.uint8),
                     [f"disc {k}" for k in range(frames)])


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ma, mb = a > 0.5, b > 0.5
    return float((ma & mb).sum()) / max(1, int((ma | mb).sum()))


def test_the_deformation_learns_most_of_a_sliding_disc():
    # tiny's fields and sizes; 40 static + 120 dynamic steps, enough to fit the disc
    cfg = dataclasses.replace(preset("tiny"), static_steps=40, dynamic_steps=120,
                              preview_every=0)
    clip = load_clip(sliding_disc(cfg.frames), InputConfig(size=cfg.size, frames=cfg.frames))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the one-view warning
        scene = Scene.from_source(InputViewOnly(clip))
    res = train(scene, cfg)
    frames = res.model.frames(None, [float(t) for t in scene.times])
    ours = []
    for g in frames:
        _, alpha, _ = g.render(scene.viewmats[:1], scene.Ks[:1], cfg.size, cfg.size,
                               backgrounds=torch.zeros(1, 3))
        ours.append(alpha[0, ..., 0].numpy())
    masks = [np.asarray(f[..., 3]) for f in clip.rgba]
    change_masks = [1 - _iou(masks[0], m) for m in masks[1:]]
    change_ours = [1 - _iou(ours[0], o) for o in ours[1:]]
    fit = [_iou(o, m) for o, m in zip(ours, masks, strict=True)]
    ratio = float(np.mean(change_ours) / np.mean(change_masks))
    print(f"motion masks {np.round(change_masks, 3)} ours {np.round(change_ours, 3)} "
          f"ratio {ratio:.3f}; fit IoU per frame {np.round(fit, 3)}")
    # measured: ratio 0.553, per frame ours 0.142 / 0.385 / 0.432 against the clip's 0.364 /
    # 0.595 / 0.774 (the paper's rates on this schedule: ratio 0.034); the last frame, where the
    # disc has slid furthest, must have moved most in ours as in the clip
    assert ratio > 0.45
    assert change_ours[-1] == max(change_ours) and change_ours[-1] > 0.35
    # the motion is not bought with a broken fit: measured IoU per frame 0.753 / 0.891 / 0.889
    # / 0.630 (the last frame is the furthest from the canonical, middle, one)
    assert min(fit) > 0.55
