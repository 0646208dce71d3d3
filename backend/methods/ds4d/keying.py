"""Keying: masks for RGB frames filmed or rendered on a uniform background.

The background colour is estimated from a band along the image border over all frames (the
median), the band must be uniform (most of its pixels close to that colour, else the clip cannot
be keyed and :class:`~shared.errors.FormatError` says so), and each pixel's alpha ramps from 0 to
1 as its distance to the background colour (largest channel difference, 0-255) rises from the
border's noise level plus ``margin`` over ``soft`` more levels. The binary mask is then cleaned:
an opening removes specks, components much smaller than the largest are dropped, and holes are
filled (white teeth on a white background stay). A narrow band along the mask's edge is
matted (:func:`matte_edges`): alpha from the blend of the background and the nearest opaque
colour, and colours decontaminated (the background's share removed), so no fringe is kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from shared.errors import FormatError, ParamError

NAMED_BACKGROUNDS = {
    "white": (255.0, 255.0, 255.0),
    "black": (0.0, 0.0, 0.0),
    "green": (0.0, 177.0, 64.0),  # chroma-key green; any uniform green is accepted
}


@dataclass
class KeyConfig:
    background: str | tuple[float, float, float] = "auto"  # "auto", a name above, or (r, g, b)
    border: float = 0.02  # width of the border band, as a fraction of the shorter side (>= 1 px)
    tolerance: float = 30.0  # a border pixel is background when within this of the colour
    uniform_fraction: float = 0.85  # share of border pixels that must be background
    margin: float = 12.0  # alpha starts this far above the border's noise level
    soft: float = 24.0  # ... and reaches 1 this much further
    min_component: float = 0.02  # components smaller than this x the largest are dropped
    fill_holes: bool = True
    edge: int = 2  # width in pixels of the band inside and outside the mask that is matted
    named_tolerance: float = 80.0  # a named background must be within this of its colour


@dataclass
class KeyResult:
    """rgba: [T, H, W, 4] float32 in [0, 1]; background: the estimated colour (0-255)."""

    rgba: np.ndarray
    background: tuple[float, float, float]
    noise: float


def border_pixels(frames: np.ndarray, border: float) -> np.ndarray:
    """Pixels [M, 3] of a band of ``border`` x the shorter side along the edges of [T, H, W, 3]."""
    T, H, W, _ = frames.shape
    b = max(1, int(round(border * min(H, W))))
    parts = [frames[:, :b], frames[:, -b:], frames[:, b:-b, :b], frames[:, b:-b, -b:]]
    return np.concatenate([p.reshape(-1, 3) for p in parts]).astype(np.float32)


def estimate_background(frames: np.ndarray, cfg: KeyConfig) -> tuple[np.ndarray, float]:
    """Background colour [3] (0-255) and the border's noise level, or a FormatError.

    Args:
        frames: [T, H, W, 3] uint8 RGB.
    """
    px = border_pixels(frames, cfg.border)
    colour = np.median(px, axis=0)
    if isinstance(cfg.background, str) and cfg.background != "auto":
        if cfg.background not in NAMED_BACKGROUNDS:
            raise ParamError(f"background {cfg.background!r} is unknown; accepted: 'auto', "
                             f"{', '.join(map(repr, NAMED_BACKGROUNDS))} or an (r, g, b) triple")
        ref = np.array(NAMED_BACKGROUNDS[cfg.background], dtype=np.float32)
        off = np.abs(colour - ref).max()
        if cfg.background != "green" and off > cfg.named_tolerance or (
                cfg.background == "green" and not (colour[1] > colour[0] + 40
                                                   and colour[1] > colour[2] + 40)):
            raise FormatError(f"the background was given as {cfg.background} but the frame "
                              f"border is {_rgb(colour)}; pass background='auto' or the "
                              "right colour")
    elif not isinstance(cfg.background, str):
        try:
            colour = np.asarray(cfg.background, dtype=np.float32).reshape(3)
        except (TypeError, ValueError):
            raise ParamError(f"background {cfg.background!r}: expected a name or (r, g, b) "
                             "in 0-255") from None
    dist = np.abs(px - colour).max(axis=1)
    close = dist <= cfg.tolerance
    share = float(close.mean())
    if share < cfg.uniform_fraction:
        raise FormatError(
            f"the background cannot be keyed: only {100 * share:.0f} % of the frame border is "
            f"close to one colour ({_rgb(colour)}), {100 * cfg.uniform_fraction:.0f} % needed. "
            "Accepted: RGBA frames (alpha = mask), a uniform background (white, black, green) "
            "or a mask sequence")
    noise = float(np.percentile(dist[close], 99)) if close.any() else 0.0
    return colour, noise


def key_frames(frames: np.ndarray, cfg: KeyConfig | None = None) -> KeyResult:
    """Key out the background of [T, H, W, 3] uint8 frames; see the module docstring."""
    cfg = cfg or KeyConfig()
    colour, noise = estimate_background(frames, cfg)
    lo = noise + cfg.margin
    out = np.empty(frames.shape[:3] + (4,), dtype=np.float32)
    for t in range(frames.shape[0]):
        rgb = frames[t].astype(np.float32)
        dist = np.abs(rgb - colour).max(axis=-1)
        ramp = np.clip((dist - lo) / max(cfg.soft, 1e-6), 0.0, 1.0)
        keep = clean_mask(ramp > 0.5, cfg)
        alpha, fg = matte_edges(rgb, colour, keep, ramp, cfg)
        out[t, ..., :3] = fg / 255.0
        out[t, ..., 3] = alpha
    return KeyResult(out, tuple(float(c) for c in colour), noise)


def matte_edges(rgb: np.ndarray, colour: np.ndarray, keep: np.ndarray, ramp: np.ndarray,
                cfg: KeyConfig) -> tuple[np.ndarray, np.ndarray]:
    """Alpha [H, W] and decontaminated colour [H, W, 3] (0-255) around a kept mask [H, W].

    Pixels ``edge`` steps inside the mask are opaque, pixels farther than ``edge`` outside are
    transparent; in the band between, each pixel is a blend of the background and the colour f
    of the nearest opaque pixel: alpha = (c - b) . (f - b) / |f - b|^2, clipped to [0, 1] (the
    distance ramp where f is too close to the background to tell), and the colour is
    decontaminated, (c - (1 - alpha) b) / alpha.
    """
    core = ndimage.binary_erosion(keep, iterations=cfg.edge, border_value=1)
    if not core.any():
        core = keep
    band = ndimage.binary_dilation(keep, iterations=cfg.edge) & ~core
    if not core.any():  # nothing kept at all
        return np.zeros(keep.shape, np.float32), np.zeros(rgb.shape, np.float32)
    _, (iy, ix) = ndimage.distance_transform_edt(~core, return_indices=True)
    f = rgb[iy, ix]
    d = f - colour
    n2 = (d * d).sum(-1)
    proj = np.clip(((rgb - colour) * d).sum(-1) / np.maximum(n2, 1e-6), 0.0, 1.0)
    a_band = np.where(n2 > (2 * cfg.margin) ** 2, proj, ramp)
    alpha = np.where(core, 1.0, np.where(band, a_band, 0.0)).astype(np.float32)
    a = alpha[..., None]
    fg = np.where(a > 0.05, (rgb - (1.0 - a) * colour) / np.maximum(a, 0.05), f)
    fg = np.where(a > 0, np.clip(fg, 0, 255), 0).astype(np.float32)
    return alpha, fg


def clean_mask(mask: np.ndarray, cfg: KeyConfig) -> np.ndarray:
    """Opening, small-component removal and hole filling of a [H, W] bool mask."""
    m = ndimage.binary_opening(mask, structure=np.ones((3, 3), bool))
    labels, n = ndimage.label(m)
    if n > 1:
        sizes = ndimage.sum(m, labels, index=np.arange(1, n + 1))
        keep = np.flatnonzero(sizes >= cfg.min_component * sizes.max()) + 1
        m = np.isin(labels, keep)
    if cfg.fill_holes:
        m = ndimage.binary_fill_holes(m)
    return m


def _rgb(c: np.ndarray) -> str:
    return "RGB(" + ", ".join(str(int(round(float(v)))) for v in c) + ")"
