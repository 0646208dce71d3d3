"""Exact retiming (protocol 1.1): which results can be re-evaluated at new times, and the times.

A kind whose results can be re-evaluated exactly (a procedural gait, a glTF animation, a DNF
creature's coefficients, a DS4D deformation field) names in ``hello`` the kind that does it
(:attr:`shared.params.KindSpec.resample_kind`), and each of its results says so in its manifest
(``manifest.resample``, built by :func:`manifest_field`)::

    {"kind": "sequence.resample", "source": "", "end": 1.25}

- ``kind``: the resample kind; it takes ``source`` (a ``job`` parameter) and ``times``
  (``floats``, seconds of the source) and returns the source evaluated at those times, with the
  source's topology and vertex order;
- ``source``: the job to pass as ``source`` ("" = this result's own job; a resample result names
  the job it was resampled from, so resampling it again goes back to the source);
- ``end``: the last source second accepted (null: any ``t >= 0``, e.g. a periodic gait);
- ``times`` (optional): the source second of each frame of this result when they are not its
  ``frame_times`` (a resample result played at a new rate, or slowed down).

Standard library and numpy only: the CLI, the add-on and the backend share it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import ParamError

#: Slack on the range check (a float32 round trip of a time, far below a frame).
TIME_EPS = 1e-6


@dataclass(frozen=True)
class ResampleInfo:
    """``manifest.resample`` of a result, read (see the module docstring)."""

    kind: str
    source: str
    end: float | None = None
    times: tuple[float, ...] | None = None

    @classmethod
    def from_manifest(cls, manifest: Any) -> ResampleInfo | None:
        """The info of a :class:`~shared.manifest.Manifest` (or its JSON dict); None when its
        result cannot be re-evaluated."""
        m = manifest if isinstance(manifest, dict) else manifest.to_json()
        r = m.get("resample") or {}
        if not isinstance(r, dict) or not r.get("kind"):
            return None
        end = r.get("end")
        times = r.get("times")
        return cls(kind=str(r["kind"]), source=str(r.get("source") or m.get("job_id") or ""),
                   end=None if end is None else float(end),
                   times=None if times is None else tuple(float(t) for t in times))

    def source_times(self, frame_times: Sequence[float]) -> np.ndarray:
        """The source second of each frame of the result (float64 ``[T]``)."""
        if self.times is not None:
            if len(self.times) != len(frame_times):
                raise ParamError(f"resample.times holds {len(self.times)} times for "
                                 f"{len(frame_times)} frames")
            return np.asarray(self.times, dtype=np.float64)
        return np.asarray(frame_times, dtype=np.float64)


def manifest_field(kind: str, end: float | None, source: str = "",
                   times: Sequence[float] | None = None) -> dict[str, Any]:
    """``manifest.resample`` for a writer (``end`` None: any ``t >= 0``)."""
    out: dict[str, Any] = {"kind": kind, "source": source,
                           "end": None if end is None else float(end)}
    if times is not None:
        out["times"] = [float(t) for t in times]
    return out


def describe_range(end: float | None) -> str:
    return "any time >= 0 s" if end is None else f"0 to {end:g} s"


def check_times(times: Sequence[float], end: float | None, kind: str) -> np.ndarray:
    """``times`` as float64, or :class:`ParamError` naming the accepted range: increasing, at
    least 0, at most ``end`` (None: no upper bound)."""
    t = np.asarray(times, dtype=np.float64).reshape(-1)
    if t.size == 0 or not np.all(np.isfinite(t)):
        raise ParamError(f"{kind}: times must be finite numbers, at least one")
    if np.any(np.diff(t) <= 0):
        bad = int(np.argmax(np.diff(t) <= 0))
        raise ParamError(f"{kind}: times must increase; element {bad + 1} = {t[bad + 1]:g} "
                         f"follows {t[bad]:g}")
    if t[0] < 0 or (end is not None and t[-1] > end + TIME_EPS):
        worst = t[0] if t[0] < 0 else t[-1]
        raise ParamError(f"{kind}: time {worst:g} s is outside the source; accepted: "
                         f"{describe_range(end)}")
    if end is not None:
        t = np.minimum(t, end)
    return np.maximum(t, 0.0)


def times_for_fps(start: float, stop: float, fps: float) -> np.ndarray:
    """``[start, stop]`` sampled at ``fps``: ``start + i / fps`` up to ``stop`` (float64)."""
    if not (math.isfinite(fps) and fps > 0):
        raise ParamError(f"fps must be a positive number, got {fps}")
    n = int(math.floor((stop - start) * fps + 1e-6)) + 1
    return start + np.arange(max(n, 1), dtype=np.float64) / fps


def times_for_speed(start: float, stop: float, fps: float, speed: float) -> np.ndarray:
    """The source times of ``[start, stop]`` played at ``speed`` (0.25: a quarter) and shown at
    ``fps``: ``start + i * speed / fps`` up to ``stop``."""
    if not (math.isfinite(speed) and speed > 0):
        raise ParamError(f"speed must be a positive number, got {speed}")
    return times_for_fps(start, stop, fps / speed)


def output_frame_times(times: np.ndarray, fps: float) -> np.ndarray:
    """Frame times of a resample result: ``i / fps`` (played at ``fps``), or with ``fps`` 0 the
    source times from the first (as they are)."""
    t = np.asarray(times, dtype=np.float64)
    if fps > 0:
        return np.arange(len(t), dtype=np.float64) / fps
    return t - t[0]
