"""Pure import and retime maths (no bpy): axis map, frame numbers, storage choice, retime."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import numpy as np
import pytest
from addon_helpers import y_up_to_z_up

from blender_addon.core import import_plan as plan
from blender_addon.core import retime_plan as rt

CORE = Path(__file__).resolve().parents[2] / "blender_addon" / "core"


def test_core_never_imports_bpy() -> None:
    offenders = []
    for path in sorted(CORE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names
                          if n.split(".")[0] in ("bpy", "bpy_extras", "mathutils", "bmesh")]
    assert not offenders


def test_axis_map_points_and_rotations(rng) -> None:
    p = rng.normal(size=(20, 3))
    assert np.allclose(plan.to_blender_points(p), y_up_to_z_up(p), atol=1e-6)
    assert plan.to_blender_points(p).dtype == np.float32
    # a rotation maps as M R: rotating a local vector then mapping equals the mapped rotation
    q = rng.normal(size=(20, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    qb = plan.to_blender_quats(q)

    def rotate(quat, v):
        w, xyz = quat[:, :1], quat[:, 1:]
        t = 2 * np.cross(xyz, v)
        return v + w * t + np.cross(xyz, t)

    v = rng.normal(size=(20, 3))
    assert np.allclose(rotate(qb.astype(np.float64), v), y_up_to_z_up(rotate(q, v)), atol=1e-5)


def test_scene_frames_are_unrounded() -> None:
    f = plan.scene_frames(np.array([0.0, 0.5, 1 / 3]), 30000, 1001, start=5)
    assert np.allclose(f, 5 + np.array([0.0, 0.5, 1 / 3]) * 30000 / 1001)
    with pytest.raises(ValueError):
        plan.scene_frames(np.array([0.0]), 0, 1)


def test_storage_choice_by_shape_key_bytes() -> None:
    assert plan.choose_storage(120, 20_000) == ("SHAPE_KEYS", None)
    choice, notice = plan.choose_storage(1000, 20_000)  # 240 MB
    assert choice == "PC2" and "240 MB" in notice
    assert plan.choose_storage(1000, 20_000, "SHAPE_KEYS") == ("SHAPE_KEYS", None)
    assert plan.choose_storage(2, 2, "PC2") == ("PC2", None)
    with pytest.raises(ValueError):
        plan.choose_storage(1, 1, "ALEMBIC")


def test_time_values_per_curve_kind() -> None:
    assert list(plan.time_values(plan.TIME_SHAPE_KEYS, 3)) == [0, 10, 20]
    assert list(plan.time_values(plan.TIME_MESH_CACHE, 3)) == [0, 1, 2]
    assert list(plan.time_values(plan.TIME_GEOMETRY_NODES, 2)) == [0, 1]


def test_meta_from_manifest_and_correspondence() -> None:
    m = {"job_id": "j", "kind": "video.ds4d", "representation": "gaussian_sequence",
         "params": {"a": 1}, "seed": None, "frame_times": [0, 0.5], "fps": 2.0,
         "counts": {"gaussians": [5, 5]}, "extra": {"gaussians_correspond": True}}
    meta = plan.meta_from_manifest(m, "here")
    assert meta.to_props()["anim4d_seed"] == -1 and meta.times == [0.0, 0.5]
    assert plan.gaussians_correspond(m)
    m["counts"]["gaussians"] = [5, 6]
    assert not plan.gaussians_correspond(m)


@pytest.mark.parametrize("preset", rt.EASE_PRESETS)
def test_ease_inverse_inverts(preset) -> None:
    u = np.linspace(0, 1, 11)
    assert np.allclose(rt.ease(preset, rt.ease_inverse(preset, u)), u, atol=1e-9)


def test_retime_speed_start_offset_reverse() -> None:
    frames = np.array([1.0, 3.0, 5.0, 9.0])
    values = np.array([0.0, 10.0, 20.0, 30.0])
    f, v = rt.retime_keys(frames, values, rt.RetimeSettings(speed=2.0), default_start=1.0)
    assert list(f) == [1, 2, 3, 5] and list(v) == [0, 10, 20, 30]
    f, v = rt.retime_keys(frames, values, rt.RetimeSettings(start=10, offset=2), 1.0)
    assert list(f) == [12, 14, 16, 20]
    f, v = rt.retime_keys(frames, values, rt.RetimeSettings(reverse=True), 1.0)
    assert list(f) == [1, 5, 7, 9] and list(v) == [30, 20, 10, 0]
    # reversing keeps each gap with its pair of samples: 20 -> 30 took 4 frames, still does
    assert rt.evaluate(f, v, 3.0)[0] == pytest.approx(25.0)
    with pytest.raises(ValueError):
        rt.retime_keys(frames, values, rt.RetimeSettings(speed=0), 1.0)


def test_retime_ease_keeps_every_sample_on_a_key() -> None:
    frames = np.arange(11, dtype=float)
    values = np.arange(11, dtype=float) * 10
    f, v = rt.retime_keys(frames, values, rt.RetimeSettings(ease="EASE_IN"), 0.0)
    assert f[0] == 0 and f[-1] == pytest.approx(10) and list(v) == list(values)
    assert np.all(np.diff(f) > 0) and np.diff(f)[0] > np.diff(f)[-1]  # slow start
    assert f[1] == pytest.approx(10 * math.sqrt(0.1))


def test_evaluate_hold_loop_pingpong() -> None:
    f, v = np.array([0.0, 10.0]), np.array([0.0, 1.0])
    assert rt.evaluate(f, v, [-5, 5, 15])[2] == 1.0
    assert rt.evaluate(f, v, 15, "LOOP")[0] == pytest.approx(0.5)
    assert rt.evaluate(f, v, 12, "PINGPONG")[0] == pytest.approx(0.8)
    assert rt.cycle_modes("HOLD") is None and rt.cycle_modes("PINGPONG") == ("NONE", "MIRROR")
