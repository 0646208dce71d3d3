"""Exact retiming (issue 12): a procedural creature and a baked glTF clip re-evaluated at quarter
speed match the source evaluated directly at those times, where keyframe interpolation of the
stored frames does not; manifests and hello say who can be resampled; bad inputs are refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from backend.data.gltf_reader import GltfAnimation
from backend.data.jobs import BAKE_KIND, PROCEDURAL_KIND, run_bake, run_procedural
from backend.data.procedural import animate, make_creature
from backend.data.resample_jobs import (
    PROCEDURAL_RESAMPLE_KIND,
    SEQUENCE_RESAMPLE_KIND,
    run_procedural_resample,
    run_sequence_resample,
)
from backend.jobs.api import JobContext
from blender_addon.core import retime_plan
from shared.errors import JobError, ParamError
from shared.manifest import read_manifest, write_manifest
from shared.params import KindSpec
from shared.resample import ResampleInfo, times_for_speed
from shared.results import open_result

SRC, OUT = "a0" * 8, "b1" * 8
CLIP = "Armature|Velociraptor_Run"  # 0.542 s: 14 frames at 24 fps, 2576 vertices
#: The issue's bound for exact re-evaluation (the same code on the same times: measured 0.0).
EXACT = 1e-5


def job(tmp_path: Path, job_id: str) -> JobContext:
    """A context whose result folder sits where the server keeps it (``jobs/<id>/result``)."""
    out = tmp_path / "jobs" / job_id / "result"
    out.mkdir(parents=True)
    return JobContext(job_id=job_id, out_dir=out, work_dir=tmp_path, min_interval=0.0)


def finished(tmp_path, run, params, inputs=()) -> JobContext:
    ctx = job(tmp_path, SRC)
    m = run(ctx, params, list(inputs))
    m.job_id = SRC
    write_manifest(ctx.out_dir, m)
    return ctx


def keyframe_retime(frames_seen: np.ndarray, times: np.ndarray, fps: float, speed: float,
                    at: np.ndarray) -> np.ndarray:
    """What today's keyframe retime shows at scene frames ``at``: the stored frames linearly
    interpolated along the retimed curve (``retime_plan``, as ``bl.retime`` writes it)."""
    base = 1.0 + times * fps
    values = np.arange(len(times), dtype=np.float64)
    f, v = retime_plan.retime_keys(base, values, retime_plan.RetimeSettings(speed=speed), 1.0)
    idx = retime_plan.evaluate(f, v, at)
    lo = np.clip(np.floor(idx).astype(int), 0, len(times) - 2)
    w = (idx - lo)[:, None, None]
    v64 = frames_seen.astype(np.float64)
    return (1 - w) * v64[lo] + w * v64[lo + 1]


def test_specs_and_manifests_say_who_resamples():
    assert PROCEDURAL_KIND.resample_kind == PROCEDURAL_RESAMPLE_KIND.name
    assert BAKE_KIND.resample_kind == SEQUENCE_RESAMPLE_KIND.name
    for spec in (PROCEDURAL_KIND, BAKE_KIND, PROCEDURAL_RESAMPLE_KIND, SEQUENCE_RESAMPLE_KIND):
        back = KindSpec.from_json(spec.to_json())
        assert back.to_json() == spec.to_json() and back.resample_kind == spec.resample_kind
        assert spec.to_json()["resample_kind"] == spec.resample_kind != ""
    assert "any t >= 0" in PROCEDURAL_RESAMPLE_KIND.description
    assert "clip's duration" in SEQUENCE_RESAMPLE_KIND.description


def test_procedural_quarter_speed_is_exact(tmp_path):
    fps, speed = 24.0, 0.25
    src = finished(tmp_path, run_procedural, {"seed": 3, "gait": "trot", "frames": 12,
                                              "fps": fps})
    m = read_manifest(src.out_dir)
    info = ResampleInfo.from_manifest(m)
    assert info == ResampleInfo(PROCEDURAL_RESAMPLE_KIND.name, SRC, None, None)
    times = times_for_speed(0.0, m.frame_times[-1], fps, speed)
    assert len(times) == 45 and times[1] == pytest.approx(speed / fps)
    ctx = job(tmp_path, OUT)
    out = run_procedural_resample(ctx, {"source": SRC, "times": times.tolist(), "fps": fps}, [])
    write_manifest(ctx.out_dir, out)
    res = open_result(ctx.out_dir)
    direct = animate(make_creature(3, 0), "trot", times)
    got = res.mesh.vertices
    assert got.shape == direct.shape
    assert np.abs(got - direct).max() <= EXACT
    source = open_result(src.out_dir).mesh
    assert np.array_equal(res.mesh.faces, source.faces)
    assert np.array_equal(res.mesh.colors, source.colors)
    assert out.frame_times == pytest.approx(np.arange(45) / fps)  # played slowed, at 24 fps
    assert out.resample["source"] == SRC and out.resample["times"] == pytest.approx(times)
    # keyframes: the 12 stored frames interpolated at the same 45 scene frames
    scene = 1.0 + np.arange(45, dtype=np.float64)
    key = keyframe_retime(source.vertices, np.asarray(m.frame_times), fps, speed, scene)
    assert np.abs(key - direct).max() > 0.01  # measured 0.0118 m (exact: 0.0)
    # the gait is defined at any t >= 0, past the source's last frame too
    later = run_procedural_resample(job(tmp_path, "c2" * 8), {"source": SRC, "times": "2,7.5"},
                                    [])
    assert later.frame_times == [0.0, 5.5] and later.resample["times"] == [2.0, 7.5]


def test_baked_gltf_quarter_speed_is_exact(tmp_path, animals_dir):
    glb = animals_dir / "Velociraptor.glb"
    fps, speed = 24.0, 0.25
    src = finished(tmp_path, run_bake, {"clip": CLIP, "fps": fps}, [glb])
    m = read_manifest(src.out_dir)
    assert m.resample == {"kind": "sequence.resample", "source": "",
                          "end": pytest.approx(0.5417, abs=1e-3)}
    assert "bake_source" not in m.files  # kept on the server, never sent
    times = times_for_speed(0.0, m.frame_times[-1], fps, speed)
    ctx = job(tmp_path, OUT)
    out = run_sequence_resample(ctx, {"source": SRC, "times": times.tolist()}, [])
    write_manifest(ctx.out_dir, out)
    got = open_result(ctx.out_dir).mesh
    anim = GltfAnimation(glb)
    direct = anim.sample(anim.clip(CLIP), times)
    assert got.vertices.shape == direct.shape == (len(times), 2576, 3)
    assert np.abs(got.vertices - direct).max() <= EXACT
    source = open_result(src.out_dir).mesh
    assert np.array_equal(got.faces, source.faces) and np.array_equal(got.uvs, source.uvs)
    scene = 1.0 + np.arange(len(times), dtype=np.float64)
    key = keyframe_retime(source.vertices, np.asarray(m.frame_times), fps, speed, scene)
    assert np.abs(key - direct).max() > 0.1  # measured 0.126 (exact: 0.0)
    # frame_times are the times given (from the first) when no fps is asked for
    assert out.frame_times == pytest.approx(times - times[0])


def test_bad_inputs_are_named(tmp_path, animals_dir):
    src = finished(tmp_path, run_bake, {"clip": CLIP, "fps": 12.0},
                   [animals_dir / "Velociraptor.glb"])
    with pytest.raises(ParamError, match=r"time 0.9 s is outside the source; accepted: 0 to "
                                         r"0.54"):
        run_sequence_resample(job(tmp_path, OUT), {"source": SRC, "times": "0,0.9"}, [])
    with pytest.raises(ParamError, match="times must increase; element 1 = 0.1 follows 0.2"):
        run_sequence_resample(job(tmp_path, "c3" * 8), {"source": SRC, "times": "0.2,0.1"}, [])
    with pytest.raises(JobError, match="is a sequence.bake result; it takes a finished "
                                       "creature.procedural job"):
        run_procedural_resample(job(tmp_path, "c4" * 8), {"source": SRC, "times": "0"}, [])
    # a welded bake changes the topology: not resamplable, and says so
    (src.out_dir / "manifest.json").unlink()
    weld = job(tmp_path, "c5" * 8)
    m = run_bake(weld, {"clip": CLIP, "fps": 12.0, "weld": True},
                 [animals_dir / "Velociraptor.glb"])
    assert m.resample == {} and "bake_source" not in m.extra
    m.job_id = "c5" * 8
    write_manifest(weld.out_dir, m)
    with pytest.raises(JobError, match="only a glTF bake without weld"):
        run_sequence_resample(job(tmp_path, "c6" * 8), {"source": "c5" * 8, "times": "0"}, [])
