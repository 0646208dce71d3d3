"""Retime an imported object by rewriting its one time curve (see ``core.retime_plan``).

The curve is rebuilt from the keys recorded at import, so settings are absolute (speed 2 twice is
still speed 2). The result is ordinary LINEAR keys plus, for loop and ping-pong, one Cycles
F-modifier: the artist can keep editing it by hand in the Graph Editor.
"""

from __future__ import annotations

import json
from dataclasses import asdict

import bpy
import numpy as np

from ..core import retime_plan
from ..core.retime_plan import RetimeSettings
from . import meshdata, timecurve


def is_imported(obj: bpy.types.Object | None) -> bool:
    """True for an object made by an Anim4D import (it has a time curve)."""
    return obj is not None and bool(obj.get("anim4d_time_kind")) and bool(
        obj.get("anim4d_base_frames"))


def apply_retime(obj: bpy.types.Object, settings: RetimeSettings) -> tuple[np.ndarray, np.ndarray]:
    """Rewrite ``obj``'s time curve for ``settings``; returns the new ``(frames, values)``."""
    if not is_imported(obj):
        raise LookupError(f"{obj.name if obj else 'nothing'}: not an object imported by Anim4D")
    base_frames, values, start = meshdata.base_keys(obj)
    frames, vals = retime_plan.retime_keys(base_frames, values, settings, default_start=start)
    timecurve.write_time_curve(obj, frames, vals, settings.repeat)
    obj["anim4d_retime"] = json.dumps(asdict(settings))
    return frames, vals


def current_settings(obj: bpy.types.Object) -> RetimeSettings:
    """The settings last applied to ``obj`` (defaults if never retimed)."""
    raw = obj.get("anim4d_retime")
    if not raw:
        return RetimeSettings()
    try:
        return RetimeSettings(**json.loads(raw))
    except (TypeError, ValueError):
        return RetimeSettings()


def shown_sample(obj: bpy.types.Object, frame: float) -> float:
    """Fractional sample index that ``obj`` shows at scene ``frame`` (evaluates the F-curve)."""
    fc = timecurve.find_fcurve(obj)
    if fc is None:
        raise LookupError(f"{obj.name}: no time curve")
    _, _, step = timecurve.time_target(obj)
    return float(fc.evaluate(frame)) / step
