"""Zero123++ pseudo-views as a multi-view source (``video.to4d``'s ``views_source=zero123pp``).

Each working frame of the clip (composited over Zero123++'s grey) goes through
:class:`.zero123pp.Zero123ppPipeline` (STAG4D's temporal anchor on by default); the six views of
each frame are keyed against that known grey (alpha ramps with the largest channel distance to
it, specks removed, holes filled, edges matted: :mod:`.keying`), resized to the clip's size, and
given their fixed v1.1 cameras (:func:`.zero123pp.zero123pp_views_cameras`). The input view keeps
STAG4D's front camera (azimuth 0, elevation 0, radius 2, vertical FoV 49.1), the frame of
reference the six cameras are relative to. Pseudo-views are marked ``real=False``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .clip import Clip
from .keying import KeyConfig, clean_mask, matte_edges
from .views import View, ViewSource, default_input_camera
from .zero123pp import GREY, NUM_VIEWS, Zero123ppConfig, load_zero123pp, zero123pp_views_cameras

VIEW_NAMES = tuple(f"zero123pp_{k}" for k in range(NUM_VIEWS))


def key_grey(rgb: np.ndarray, noise: float = 6.0, cfg: KeyConfig | None = None) -> np.ndarray:
    """RGBA [T, H, W, 4] float32 from RGB [T, H, W, 3] uint8 on Zero123++'s known grey."""
    cfg = cfg or KeyConfig()
    colour = np.full(3, GREY * 255.0, dtype=np.float32)
    out = np.empty(rgb.shape[:3] + (4,), dtype=np.float32)
    for t in range(rgb.shape[0]):
        x = rgb[t].astype(np.float32)
        dist = np.abs(x - colour).max(axis=-1)
        ramp = np.clip((dist - noise - cfg.margin) / max(cfg.soft, 1e-6), 0.0, 1.0)
        keep = clean_mask(ramp > 0.5, cfg)
        alpha, fg = matte_edges(x, colour, keep, ramp, cfg)
        out[t, ..., :3] = fg / 255.0
        out[t, ..., 3] = alpha
    return out


class Zero123ppViews(ViewSource):
    """The input view plus Zero123++'s six views of every frame.

    Args:
        clip: the working clip (square frames, :func:`.clip.load_clip`).
        cfg: the pipeline settings (``model``: a folder or an id in the local HF cache).
        pipeline: an already loaded pipeline (else loaded from ``cfg``; a missing model raises
            :class:`~.features.ModelMissingError` naming it and the fetch command).
        progress: ``progress(done_frames, total_frames)``; cancelled: polled every step.
    """

    def __init__(self, clip: Clip, cfg: Zero123ppConfig | None = None, pipeline=None,
                 progress: Callable[[int, int], None] | None = None,
                 cancelled: Callable[[], bool] | None = None):
        self.clip = clip
        self.cfg = cfg or Zero123ppConfig()
        pipe = pipeline if pipeline is not None else load_zero123pp(self.cfg)
        rgba = torch.from_numpy(clip.rgba).float()
        rgb = rgba[..., :3] * rgba[..., 3:] + GREY * (1 - rgba[..., 3:])
        views = pipe(rgb, progress, cancelled)  # [T, 6, tile, tile, 3]
        S = clip.size
        vm0, K0 = default_input_camera(S)
        self._views = [View("input", clip.rgba, vm0, K0)]
        vms, Ks = zero123pp_views_cameras(S)
        for k in range(NUM_VIEWS):
            x = views[:, k].permute(0, 3, 1, 2)
            x = F.interpolate(x, size=(S, S), mode="bilinear", antialias=True,
                              align_corners=False).clamp(0, 1)
            u8 = (x.permute(0, 2, 3, 1).numpy() * 255.0 + 0.5).astype(np.uint8)
            self._views.append(View(VIEW_NAMES[k], key_grey(u8), vms[k], Ks[k], real=False))

    def views(self) -> list[View]:
        return list(self._views)

    @property
    def times(self) -> np.ndarray:
        return self.clip.times
