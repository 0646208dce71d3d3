"""The input clip: frames + masks -> a cropped, centred, resampled RGBA clip.

Steps (:func:`load_clip`): read (:mod:`.video_io`); masks from the alpha channel (RGBA), from a
mask sequence, or by keying a uniform background (:mod:`.keying`), as ``InputConfig.background``
says (:data:`BACKGROUNDS`: ``auto`` = the alpha of RGBA frames, else the mask sequence when given,
else a keyed background of any uniform colour; ``alpha``; ``mask``; ``white`` / ``black`` /
``green``: that colour keyed out of the RGB channels); pick ``frames`` frames evenly
over the clip; check every picked frame has a mask; one square crop box over all picked frames
(centred on the union of the masks' bounding boxes, the object filling ``fill`` of the side, so
that the motion is kept and nothing moves out of frame); resample to ``size`` x ``size`` (area
filter on premultiplied colour, so edges do not fringe).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np
import torch

from shared.errors import FormatError, ParamError

from .keying import NAMED_BACKGROUNDS, KeyConfig, key_frames
from .video_io import RawFrames, Source, read_frames

#: Where the object's mask comes from (the ``background`` parameter of ``video.to4d``).
BACKGROUNDS = ("auto", "alpha", "mask", *NAMED_BACKGROUNDS)


@dataclass
class InputConfig:
    size: int = 256  # working size (square), pixels
    background: str = "auto"  # one of BACKGROUNDS (see the module docstring)
    frames: int | None = 16  # frames kept, evenly spaced (None: all)
    fill: float = 0.8  # the object's larger side over the crop side
    key: KeyConfig = field(default_factory=KeyConfig)
    mask_threshold: float = 0.5  # alpha above this is the object (bounding box, emptiness)
    min_mask_pixels: int = 16  # fewer object pixels in a frame is an empty mask

    def validate(self) -> None:
        if not 16 <= int(self.size) <= 4096:
            raise ParamError(f"input size {self.size}: accepted 16 to 4096 pixels")
        if self.frames is not None and not 1 <= int(self.frames) <= 10_000:
            raise ParamError(f"frames {self.frames}: accepted 1 to 10000, or None for all")
        if not 0.05 <= self.fill <= 1.0:
            raise ParamError(f"fill {self.fill}: accepted 0.05 to 1")
        if self.background not in BACKGROUNDS:
            raise ParamError(f"background {self.background!r}: accepted "
                             f"{', '.join(BACKGROUNDS)}")


@dataclass
class CropBox:
    """Square crop in source pixels: left, top, side (the box may extend past the image)."""

    x0: float
    y0: float
    side: float

    def intrinsics(self, K: np.ndarray, size: int) -> np.ndarray:
        """K [3, 3] of a source camera after this crop and a resample to ``size`` pixels."""
        s = size / self.side
        out = np.array(K, dtype=np.float64).copy()
        out[0, 0] *= s
        out[1, 1] *= s
        out[0, 2] = (out[0, 2] - self.x0) * s
        out[1, 2] = (out[1, 2] - self.y0) * s
        return out


@dataclass
class Clip:
    """A working clip.

    Attributes:
        rgba: [T, S, S, 4] float32 in [0, 1], straight alpha (alpha = mask).
        times: [T] float32 in [0, 1] (source frame index over the last index).
        source_indices: [T] int, the source frame of each working frame.
        names: [T] labels of the source frames.
        box: the crop box in source pixels; source_size: (width, height).
        fps: the video's frame rate (None for image sequences).
        mask_source: "alpha", "masks" or "keyed RGB(r, g, b)".
        source_frames: the frame count of the source (before picking ``frames``).
    """

    rgba: np.ndarray
    times: np.ndarray
    source_indices: np.ndarray
    names: list[str]
    box: CropBox
    source_size: tuple[int, int]
    fps: float | None
    mask_source: str
    source_frames: int = 0

    @property
    def num_frames(self) -> int:
        return int(self.rgba.shape[0])

    @property
    def size(self) -> int:
        return int(self.rgba.shape[1])


def load_clip(
    source: Source | RawFrames,
    config: InputConfig | None = None,
    masks: Source | np.ndarray | None = None,
) -> Clip:
    """Read, mask, crop and resample an input clip (see the module docstring).

    Args:
        source: a video path, a folder of images, a list of image paths, or :class:`RawFrames`.
        masks: optional mask sequence (same forms, or an array [T, H, W] in [0, 1] or uint8)
            for RGB frames; white (or opaque) is the object.
    """
    cfg = config or InputConfig()
    cfg.validate()
    raw = source if isinstance(source, RawFrames) else read_frames(source)
    T, H, W, C = raw.pixels.shape
    if T == 0:
        raise FormatError("input has zero frames")
    bg = cfg.background
    if masks is not None and bg not in ("auto", "mask"):
        raise ParamError(f"a mask sequence was given with background {bg!r}: masks go with "
                         "background 'mask' (or 'auto'); leave the masks out to use "
                         f"{bg!r}")
    if masks is None and bg == "mask":
        raise ParamError("background 'mask' needs a mask sequence (the 'masks' input: a video "
                         f"or images, one mask per frame, white = object); got none for {T} "
                         "frames")
    if bg == "alpha" and not raw.has_alpha:
        raise ParamError(f"background 'alpha' but {raw.names[0]} has no alpha channel; "
                         "accepted: RGBA frames (PNG/WebP with alpha, QuickTime PNG/ProRes "
                         "4444, WebM VP8/VP9 with alpha), or background auto, white, black, "
                         "green or mask")
    idx = pick_frames(T, cfg.frames)
    pixels = raw.pixels[idx]
    names = [raw.names[i] for i in idx]
    if masks is not None:
        alpha = _read_masks(masks, T, H, W)[idx]
        rgba = np.concatenate([pixels[..., :3].astype(np.float32) / 255.0, alpha[..., None]], -1)
        mask_source = "masks"
    elif raw.has_alpha and bg in ("auto", "alpha"):
        rgba = pixels.astype(np.float32) / 255.0
        mask_source = "alpha"
    else:
        key = cfg.key if bg == "auto" else dataclasses.replace(cfg.key, background=bg)
        keyed = key_frames(np.ascontiguousarray(pixels[..., :3]), key)
        rgba = keyed.rgba
        mask_source = "keyed RGB(" + ", ".join(f"{c:.0f}" for c in keyed.background) + ")"
    obj = rgba[..., 3] > cfg.mask_threshold
    counts = obj.reshape(len(idx), -1).sum(1)
    for k in np.flatnonzero(counts < cfg.min_mask_pixels):
        raise FormatError(
            f"{names[k]}: the object mask is empty ({int(counts[k])} pixels above alpha "
            f"{cfg.mask_threshold}, mask from {mask_source}); every frame must show the object")
    box = crop_box(obj, cfg.fill)
    out = crop_resample(rgba, box, cfg.size)
    times = idx / max(1, T - 1)
    return Clip(out, times.astype(np.float32), idx, names, box, (W, H), raw.fps, mask_source, T)


def pick_frames(total: int, wanted: int | None) -> np.ndarray:
    """Indices [n] of ``wanted`` frames evenly spread over ``total`` (all if fewer)."""
    if wanted is None or wanted >= total:
        return np.arange(total)
    return np.round(np.linspace(0, total - 1, wanted)).astype(np.int64)


def crop_box(masks: np.ndarray, fill: float) -> CropBox:
    """One square box over all frames: masks [T, H, W] bool -> :class:`CropBox`."""
    any_t = masks.any(0)
    ys, xs = np.flatnonzero(any_t.any(1)), np.flatnonzero(any_t.any(0))
    x0, x1, y0, y1 = xs[0], xs[-1] + 1, ys[0], ys[-1] + 1
    side = max(x1 - x0, y1 - y0) / fill
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return CropBox(cx - side / 2, cy - side / 2, side)


def crop_resample(rgba: np.ndarray, box: CropBox, size: int) -> np.ndarray:
    """Crop [T, H, W, 4] straight RGBA to ``box`` (transparent outside the image) and resample.

    Returns [T, size, size, 4] float32 straight RGBA. The integer crop is the box rounded
    outwards; the sub-pixel rest is folded into a bilinear resample of premultiplied colour.
    """
    T, H, W, _ = rgba.shape
    x0, y0 = math.floor(box.x0), math.floor(box.y0)
    x1, y1 = math.ceil(box.x0 + box.side), math.ceil(box.y0 + box.side)
    pad = (max(0, -x0), max(0, x1 - W), max(0, -y0), max(0, y1 - H))
    t = torch.from_numpy(np.ascontiguousarray(rgba)).permute(0, 3, 1, 2)  # [T, 4, H, W]
    t = torch.cat([t[:, :3] * t[:, 3:], t[:, 3:]], 1)  # premultiply
    t = torch.nn.functional.pad(t, pad)
    t = t[:, :, y0 + pad[2]: y1 + pad[2], x0 + pad[0]: x1 + pad[0]]
    # Sample the exact box inside the integer crop: pixel centres of the output grid.
    u = (torch.arange(size) + 0.5) / size * box.side + box.x0 - x0  # crop pixel coords
    v = (torch.arange(size) + 0.5) / size * box.side + box.y0 - y0
    if box.side > 2 * size:  # shrink with an area filter first to avoid aliasing
        f = int(box.side // size)
        t = torch.nn.functional.avg_pool2d(t, f, f, ceil_mode=True)
        u, v = u / f, v / f
    h, w = t.shape[-2:]
    gx = (2 * u / w - 1)[None, :].expand(size, size)
    gy = (2 * v / h - 1)[:, None].expand(size, size)
    grid = torch.stack([gx, gy], -1)[None].expand(T, size, size, 2).float()
    out = torch.nn.functional.grid_sample(t, grid, mode="bilinear", align_corners=False,
                                          padding_mode="zeros")
    a = out[:, 3:].clamp(0, 1)
    rgb = torch.where(a > 1e-4, out[:, :3] / a.clamp_min(1e-4), torch.zeros_like(out[:, :3]))
    return torch.cat([rgb.clamp(0, 1), a], 1).permute(0, 2, 3, 1).contiguous().numpy()


def _read_masks(masks: Source | np.ndarray, T: int, H: int, W: int) -> np.ndarray:
    """Mask sequence -> [T, H, W] float32 in [0, 1]."""
    if isinstance(masks, np.ndarray):
        arr = masks.astype(np.float32) / (255.0 if masks.dtype == np.uint8 else 1.0)
        if arr.ndim == 4:
            arr = arr[..., -1] if arr.shape[-1] in (2, 4) else arr[..., :3].mean(-1)
        names = [f"mask {i}" for i in range(arr.shape[0])]
    else:
        raw = read_frames(masks)
        px = raw.pixels.astype(np.float32) / 255.0
        arr = px[..., 3] if raw.has_alpha and (px[..., 3] < 1).any() else px[..., :3].mean(-1)
        names = raw.names
    if arr.ndim != 3:
        raise FormatError(f"masks must be [T, H, W], got shape {list(arr.shape)}")
    if arr.shape[0] != T:
        raise FormatError(f"the mask sequence has {arr.shape[0]} frames but the input has {T}: "
                          "one mask per frame is needed")
    if arr.shape[1:] != (H, W):
        raise FormatError(f"{names[0]} is {arr.shape[2]}x{arr.shape[1]} but the frames are "
                          f"{W}x{H}: masks must have the frames' size")
    return arr
