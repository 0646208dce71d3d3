"""The bpy-free time mapping of "Resample from backend": scene frames -> source seconds through the
same curve the keyframe retime writes (speed, ease, reverse, loop), the request it makes, and
the shared helpers for --fps / --speed."""

from __future__ import annotations

import json

import numpy as np
import pytest

from blender_addon.core import import_plan, resample_plan, retime_plan
from blender_addon.core.retime_plan import RetimeSettings
from shared.errors import ParamError
from shared.params import KindSpec, ParamSpec
from shared.resample import ResampleInfo, check_times, times_for_fps, times_for_speed

FPS = 24.0
TIMES = np.arange(12) / 12.0  # a result's 12 samples at 12 fps: scene frames 1, 3, ..., 23


def curve(settings: RetimeSettings, kind: str = import_plan.TIME_SHAPE_KEYS):
    base = import_plan.scene_frames(TIMES, FPS, 1.0, 1.0)
    values = import_plan.time_values(kind, len(TIMES))
    return retime_plan.retime_keys(base, values, settings, default_start=1.0)


def plan(settings: RetimeSettings, end=None, kind=import_plan.TIME_SHAPE_KEYS):
    step = import_plan.SHAPE_KEY_STEP if kind == import_plan.TIME_SHAPE_KEYS else 1.0
    f, v = curve(settings, kind)
    return resample_plan.plan_resample(f, v, step, settings.repeat, TIMES, end)


def test_identity_and_speed():
    p = plan(RetimeSettings())
    assert p.scene_frames.tolist() == list(range(1, 24))
    assert p.source_times == pytest.approx((p.scene_frames - 1) / FPS)  # every frame, exact
    q = plan(RetimeSettings(speed=0.25), kind=import_plan.TIME_MESH_CACHE)
    assert q.scene_frames.tolist() == list(range(1, 90))
    assert q.source_times == pytest.approx((q.scene_frames - 1) / FPS * 0.25)
    assert np.array_equal(q.request, q.source_times) and q.index.tolist() == list(range(89))
    fast = plan(RetimeSettings(speed=2.0, start=10.0, offset=0.5))  # keys on 10.5 .. 21.5
    assert fast.scene_frames.tolist() == list(range(11, 22))
    assert fast.source_times == pytest.approx((fast.scene_frames - 10.5) / FPS * 2)


@pytest.mark.parametrize("ease", ["EASE_IN", "EASE_OUT", "EASE_IN_OUT"])
def test_ease_follows_the_curve_the_retime_wrote(ease):
    p = plan(RetimeSettings(ease=ease))
    # the keys sit at D * ease_inverse(k / D), LINEAR between them: each key shows its own
    # sample exactly, and a frame between keys shows the time on the curve's chord, which is
    # what the keyframe retime shows (the Graph Editor's curve), not a blend of two shapes
    f, v = curve(RetimeSettings(ease=ease))
    at_keys = resample_plan.source_times_at(f, v, 10.0, "HOLD", TIMES, f)
    assert at_keys == pytest.approx(TIMES)
    assert p.source_times == pytest.approx(np.interp(p.scene_frames, f, TIMES))
    first, last = np.diff(p.source_times)[[0, -1]] * FPS  # source seconds per scene second
    slow_start, slow_end = ease in ("EASE_IN", "EASE_IN_OUT"), ease in ("EASE_OUT",
                                                                         "EASE_IN_OUT")
    assert (first < 1.0) == slow_start and (last < 1.0) == slow_end
    assert np.all(np.diff(p.request) > 0) and p.source_times[0] == 0.0


def test_reverse_and_repeats_request_each_time_once():
    p = plan(RetimeSettings(reverse=True, repeat="PINGPONG"))
    assert p.source_times == pytest.approx((23 - p.scene_frames) / FPS)
    assert np.all(np.diff(p.request) > 0)  # increasing, as a resample kind accepts
    assert np.allclose(p.request[p.index], p.source_times)
    hold = plan(RetimeSettings(speed=4.0))  # 23 scene frames of source -> 6.5 frames
    assert hold.scene_frames.tolist() == list(range(1, 7))
    clipped = plan(RetimeSettings(), end=0.5)
    assert clipped.source_times.max() == 0.5 and len(clipped.request) == 13
    assert len(clipped.index) == 23  # frames past the end show the last time


def test_plan_json_and_resample_props():
    p = plan(RetimeSettings(speed=0.5))
    assert resample_plan.ResamplePlan.from_json(json.loads(json.dumps(p.to_json()))).to_json() \
        == p.to_json()
    props = {"anim4d_resample": json.dumps({"kind": "k.resample", "source": "", "end": 1.0}),
             "anim4d_job_id": "ab" * 8}
    info = resample_plan.resample_info(props)
    assert info == ResampleInfo("k.resample", "ab" * 8, 1.0, None)
    assert resample_plan.resample_info({"anim4d_resample": ""}) is None
    assert resample_plan.resample_info({"anim4d_resample": "{bad"}) is None
    field = resample_plan.resampled_field(info, p)
    again = ResampleInfo.from_manifest({"resample": field, "job_id": "cd" * 8})
    assert again.source == "ab" * 8  # resampling again goes back to the source job
    assert again.source_times([0.0] * len(p.scene_frames)) == pytest.approx(p.source_times)
    with pytest.raises(ParamError, match="holds 45 times for 2 frames"):
        again.source_times([0.0, 1.0])


def test_request_params_take_shared_params_from_the_object():
    spec = KindSpec("x.resample", "x", "", "mesh_sequence", params=(
        ParamSpec("model", "enum", "a", choices=("a", "b")), ParamSpec("source", "job", ""),
        ParamSpec("times", "floats", (0.0,), min=0.0), ParamSpec("fps", "float", 0.0)))
    p = plan(RetimeSettings(speed=0.5))
    params = resample_plan.request_params(p, ResampleInfo("x.resample", "ab" * 8), spec,
                                          {"model": "b", "seed": 3})
    assert params == {"model": "b", "source": "ab" * 8, "fps": 0.0,
                      "times": p.request.tolist()}


def test_fps_speed_and_range_helpers():
    assert times_for_fps(0.0, 1.0, 4.0).tolist() == [0, 0.25, 0.5, 0.75, 1.0]
    assert times_for_fps(0.0, 0.99, 4.0).tolist() == [0, 0.25, 0.5, 0.75]
    assert times_for_speed(0.0, 11 / 24, 24.0, 0.25) == pytest.approx(np.arange(45) / 96)
    assert times_for_speed(0.0, 1.0, 10.0, 2.0).tolist() == [0, 0.2, 0.4, 0.6, 0.8, 1.0]
    with pytest.raises(ParamError, match="speed must be a positive number"):
        times_for_speed(0.0, 1.0, 24.0, 0.0)
    assert check_times([0.0, 1.0 + 1e-9], 1.0, "k").tolist() == [0.0, 1.0]
    assert check_times([5.0, 500.0], None, "k").tolist() == [5.0, 500.0]
    with pytest.raises(ParamError, match="k: time 1.2 s is outside the source; accepted: 0 "
                                         "to 1 s"):
        check_times([0.0, 1.2], 1.0, "k")
    with pytest.raises(ParamError, match="accepted: any time >= 0 s"):
        check_times([-0.5], None, "k")
