"""Retime maths: pure functions on keyframe arrays (no ``bpy``).

An imported object has one time curve: keys at scene frames ``frames`` with values ``values``
(shape-key ``eval_time``, Mesh Cache frame or Geometry Nodes Time), LINEAR between keys. A retime
is rebuilt from the *import-time* keys (``base_frames``, relative to the original start) and a
:class:`RetimeSettings`, so applying the same settings twice gives the same curve:

1. ease: key ``i`` moves from offset ``u`` to ``D * ease_inverse(u / D)`` (``D`` the duration),
   so the shapes keep landing exactly on keys while the pace follows the preset;
2. speed: offsets are divided by ``speed`` (speed 2 plays twice as fast);
3. reverse: the order of values is mirrored in time;
4. placement: the first key lands on ``start + offset``.

Loop, ping-pong and hold are the curve's extrapolation (a Cycles F-modifier or none), which the
artist still sees and can edit in the Graph Editor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

EASE_PRESETS = ("LINEAR", "EASE_IN", "EASE_OUT", "EASE_IN_OUT")
REPEAT_MODES = ("HOLD", "LOOP", "PINGPONG")


@dataclass
class RetimeSettings:
    """What the Retime panel edits. ``start`` None keeps the import's start frame."""

    speed: float = 1.0
    start: float | None = None
    offset: float = 0.0
    repeat: str = "HOLD"
    reverse: bool = False
    ease: str = "LINEAR"

    def validate(self) -> None:
        if not (math.isfinite(self.speed) and self.speed > 0):
            raise ValueError(f"speed must be a positive number, got {self.speed}")
        if self.repeat not in REPEAT_MODES:
            raise ValueError(f"repeat {self.repeat!r} is not one of {REPEAT_MODES}")
        if self.ease not in EASE_PRESETS:
            raise ValueError(f"ease {self.ease!r} is not one of {EASE_PRESETS}")


def ease(preset: str, u: np.ndarray) -> np.ndarray:
    """The ease curve ``g`` on [0, 1]: played progress at time fraction ``u``."""
    u = np.clip(np.asarray(u, dtype=np.float64), 0.0, 1.0)
    if preset == "LINEAR":
        return u
    if preset == "EASE_IN":
        return u * u
    if preset == "EASE_OUT":
        return 1.0 - (1.0 - u) ** 2
    if preset == "EASE_IN_OUT":
        return u * u * (3.0 - 2.0 * u)
    raise ValueError(f"ease {preset!r} is not one of {EASE_PRESETS}")


def ease_inverse(preset: str, y: np.ndarray) -> np.ndarray:
    """Inverse of :func:`ease`: the time fraction at which progress ``y`` is reached."""
    y = np.clip(np.asarray(y, dtype=np.float64), 0.0, 1.0)
    if preset == "LINEAR":
        return y
    if preset == "EASE_IN":
        return np.sqrt(y)
    if preset == "EASE_OUT":
        return 1.0 - np.sqrt(1.0 - y)
    if preset == "EASE_IN_OUT":  # inverse of smoothstep
        return 0.5 - np.sin(np.arcsin(np.clip(1.0 - 2.0 * y, -1.0, 1.0)) / 3.0)
    raise ValueError(f"ease {preset!r} is not one of {EASE_PRESETS}")


def retime_keys(base_frames: np.ndarray, values: np.ndarray, settings: RetimeSettings,
                default_start: float) -> tuple[np.ndarray, np.ndarray]:
    """New ``(frames, values)`` for the time curve (see the module docstring for the steps).

    ``base_frames`` are the import-time key frames (any origin: only offsets from the first key
    matter); ``default_start`` is used when ``settings.start`` is None.
    """
    settings.validate()
    f = np.asarray(base_frames, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64).copy()
    if f.shape != v.shape or f.ndim != 1 or f.size == 0:
        raise ValueError("base_frames and values must be equal-length, non-empty 1-D arrays")
    u = f - f[0]
    duration = float(u[-1])
    if duration > 0 and settings.ease != "LINEAR":
        u = duration * ease_inverse(settings.ease, u / duration)
    u = u / settings.speed
    if settings.reverse:
        u = u[-1] - u[::-1]
        v = v[::-1].copy()
    start = default_start if settings.start is None else float(settings.start)
    return start + settings.offset + u, v


def cycle_modes(repeat: str) -> tuple[str, str] | None:
    """Cycles F-modifier ``(mode_before, mode_after)`` for a repeat mode (None: hold)."""
    if repeat == "HOLD":
        return None
    if repeat == "LOOP":
        return "NONE", "REPEAT"
    if repeat == "PINGPONG":
        return "NONE", "MIRROR"
    raise ValueError(f"repeat {repeat!r} is not one of {REPEAT_MODES}")


def evaluate(frames: np.ndarray, values: np.ndarray, at: np.ndarray | float,
             repeat: str = "HOLD") -> np.ndarray:
    """The curve's value at scene frame(s) ``at``: LINEAR keys, held or cycled after the last.

    This is what Blender computes for the curve written by ``bl.retime``; tests and previews use
    it as the reference.
    """
    f = np.asarray(frames, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    x = np.atleast_1d(np.asarray(at, dtype=np.float64)).copy()
    period = float(f[-1] - f[0])
    if repeat != "HOLD" and period > 0:
        after = x > f[-1]
        rel = x[after] - f[0]
        if repeat == "LOOP":
            x[after] = f[0] + np.mod(rel, period)
        else:  # PINGPONG
            m = np.mod(rel, 2 * period)
            x[after] = f[0] + np.where(m <= period, m, 2 * period - m)
    return np.interp(x, f, v)


def sample_at_frame(frames: np.ndarray, values: np.ndarray, frame: float,
                    step: float = 1.0, repeat: str = "HOLD") -> float:
    """Fractional sample index shown at ``frame`` (``values`` divided by the curve's ``step``)."""
    return float(evaluate(frames, values, frame, repeat)[0] / step)
