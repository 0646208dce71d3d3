"""Exact retiming ("Resample from backend"): the source times the current retime curve needs.

An imported object shows, at scene frame ``f``, the fractional sample ``curve(f) / step`` of its
stored frames (``retime_plan.evaluate`` on its time curve: ease, speed, reverse, offset as keys;
loop and ping-pong as the curve's extrapolation). Sample ``s`` is at source second
``source_times[s]`` (the result's frame times, or ``manifest.resample.times`` for a result that
was itself resampled), so frame ``f`` shows source second ``interp(curve(f) / step)``. Keyframe
retiming blends the two stored frames around it; resampling asks the backend for that second
exactly and puts the frame on ``f``.

:func:`plan_resample` computes, for every whole scene frame the curve's keys span, that source
second; the request holds each distinct second once, increasing (what a resample kind accepts),
and ``index`` maps each scene frame to its entry. No ``bpy`` here.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import retime_plan
from ._shared import resample

#: Source seconds closer than this are one request (far below any frame spacing).
TIME_DECIMALS = 9


@dataclass(frozen=True)
class ResamplePlan:
    """``scene_frames`` ``[F]`` whole scene frames (float64, increasing); ``source_times``
    ``[F]`` the source second each shows; ``request`` ``[U]`` distinct seconds, increasing;
    ``index`` ``[F]`` int: ``source_times[i] == request[index[i]]``."""

    scene_frames: np.ndarray
    source_times: np.ndarray
    request: np.ndarray
    index: np.ndarray

    def to_json(self) -> dict[str, list]:
        return {k: getattr(self, k).tolist() for k in ("scene_frames", "source_times",
                                                        "request", "index")}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ResamplePlan:
        return cls(np.asarray(d["scene_frames"], np.float64),
                   np.asarray(d["source_times"], np.float64),
                   np.asarray(d["request"], np.float64), np.asarray(d["index"], np.int64))


def resample_info(props: dict[str, Any]) -> resample.ResampleInfo | None:
    """The :class:`~shared.resample.ResampleInfo` of an imported object's custom properties
    (``anim4d_resample``, ``anim4d_job_id``), or None when its result cannot be resampled."""
    raw = props.get("anim4d_resample") or ""
    try:
        field = json.loads(raw) if raw else {}
    except ValueError:
        return None
    return resample.ResampleInfo.from_manifest(
        {"resample": field, "job_id": str(props.get("anim4d_job_id") or "")})


def source_times_at(frames: np.ndarray, values: np.ndarray, step: float, repeat: str,
                    sample_times: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Source second shown at scene frames ``at`` by the time curve ``(frames, values)``
    (``step`` curve units per sample; ``sample_times`` ``[N]`` the source second of each stored
    sample)."""
    idx = retime_plan.evaluate(frames, values, at, repeat) / float(step)
    samples = np.asarray(sample_times, dtype=np.float64)
    return np.interp(idx, np.arange(len(samples), dtype=np.float64), samples)


def plan_resample(frames: np.ndarray, values: np.ndarray, step: float, repeat: str,
                  sample_times: np.ndarray, end: float | None = None) -> ResamplePlan:
    """The plan for the whole scene frames from the curve's first key to its last (at least
    one): loop and ping-pong keep repeating the resampled keys, as they did the old ones.

    ``end``: the last source second the resample kind accepts (None: no bound); times are
    clipped to ``[0, end]``.
    """
    f = np.asarray(frames, dtype=np.float64)
    if f.ndim != 1 or f.size == 0:
        raise ValueError("the time curve has no keys")
    first, last = math.ceil(f.min() - 1e-6), math.floor(f.max() + 1e-6)
    scene = np.arange(first, max(first, last) + 1, dtype=np.float64)
    t = source_times_at(f, values, step, repeat, sample_times, scene)
    t = np.maximum(t, 0.0) if end is None else np.clip(t, 0.0, end)
    _, first_of, index = np.unique(np.round(t, TIME_DECIMALS), return_index=True,
                                   return_inverse=True)
    request = t[first_of]  # the times themselves, not their rounding
    index = index.astype(np.int64).reshape(-1)
    return ResamplePlan(scene, request[index], request, index)


def request_params(plan: ResamplePlan, info: resample.ResampleInfo, spec: Any,
                   object_params: dict[str, Any]) -> dict[str, Any]:
    """Parameters of the resample job (``spec``: its ``KindSpec``): ``source``, ``times`` and
    any parameter the kind shares with the object's own result (e.g. a DNF ``model``)."""
    params: dict[str, Any] = {"source": info.source,
                              "times": [float(x) for x in plan.request]}
    names = {p.name for p in spec.params}
    if "fps" in names:
        params["fps"] = 0.0  # the frames go on scene frames here, not on their frame times
    for name in names - set(params):
        if name in object_params:
            params[name] = object_params[name]
    return spec.validate_params(params)


def resampled_field(info: resample.ResampleInfo, plan: ResamplePlan) -> dict[str, Any]:
    """``anim4d_resample`` of the object once it shows the plan's frames: the same source, and
    the source second of each new sample (so resampling again starts from the source)."""
    return resample.manifest_field(info.kind, info.end, source=info.source,
                                   times=plan.source_times)
