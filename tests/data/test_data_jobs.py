"""The two job kinds: specs, manifests, files, progress, cancellation and errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from backend.data.anime import write_anime
from backend.data.jobs import BAKE_KIND, PROCEDURAL_KIND, run_bake, run_procedural
from backend.data.procedural import make_creature_sequence
from backend.jobs.api import JobCancelled, JobContext
from shared.errors import FormatError, ParamError
from shared.manifest import read_manifest, write_manifest
from shared.meshseq import load_npz
from shared.params import KindSpec

from .builders import box_sequence


def context(tmp_path: Path, cancel: bool = False) -> tuple[JobContext, list]:
    events: list = []
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    ctx = JobContext(job_id="job1", out_dir=out, work_dir=tmp_path,
                     sink=lambda s, f, m: events.append((s, f, m)),
                     cancelled=lambda: cancel, min_interval=0.0)
    return ctx, events


def test_kind_specs():
    assert BAKE_KIND.name == "sequence.bake" and BAKE_KIND.section == "Bake sequence"
    assert PROCEDURAL_KIND.name == "creature.procedural"
    assert PROCEDURAL_KIND.section == "Procedural creature"
    assert BAKE_KIND.validate_params({}) == {"clip": "", "fps": 30.0, "weld": False}
    assert PROCEDURAL_KIND.validate_params({}) == {
        "seed": 0, "gait": "walk", "frames": 48, "fps": 24.0, "legs": 0}
    assert PROCEDURAL_KIND.param("gait").choices == ("walk", "trot", "gallop", "idle")
    assert PROCEDURAL_KIND.param("seed").max == 2**31 - 1
    for kind in (BAKE_KIND, PROCEDURAL_KIND):
        assert KindSpec.from_json(kind.to_json()) == kind
    with pytest.raises(ParamError):
        BAKE_KIND.validate_params({"fps": 0})
    with pytest.raises(ParamError):
        PROCEDURAL_KIND.validate_params({"gait": "fly"})


def test_procedural_job(tmp_path):
    ctx, events = context(tmp_path)
    m = run_procedural(ctx, {"seed": "5", "gait": "trot", "frames": 10, "fps": 20}, [])
    assert m.kind == "creature.procedural" and m.seed == 5
    assert m.params == {"seed": 5, "gait": "trot", "frames": 10, "fps": 20.0, "legs": 0}
    assert m.files == {"sequence": "sequence.npz"}  # exports are made from results, not here
    assert m.counts["frames"] == 10 and m.fps == pytest.approx(20.0)
    assert m.extra["gait"] == "trot" and m.extra["legs"] in (2, 4, 6, 8)
    seq = load_npz(ctx.out_dir / "sequence.npz")
    ref = make_creature_sequence(5, "trot", 10, 20)
    np.testing.assert_array_equal(seq.vertices, ref.vertices)
    stages = [e[0] for e in events]
    assert stages[0] == "build" and "animate" in stages and stages[-1] == "done"
    fractions = [e[1] for e in events]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    write_manifest(ctx.out_dir, m)
    assert read_manifest(ctx.out_dir).seed == 5


def test_procedural_job_errors_and_cancel(tmp_path):
    ctx, _ = context(tmp_path)
    with pytest.raises(ParamError, match="even number"):
        run_procedural(ctx, {"legs": 3}, [])
    with pytest.raises(ParamError, match="no input"):
        run_procedural(ctx, {}, [tmp_path / "x.glb"])
    ctx, _ = context(tmp_path, cancel=True)
    with pytest.raises(JobCancelled):
        run_procedural(ctx, {"frames": 5}, [])


def test_bake_job_anime(tmp_path):
    src = write_anime(box_sequence(frames=6), tmp_path / "box.anime")
    ctx, events = context(tmp_path)
    m = run_bake(ctx, {"fps": 10}, [src])
    assert m.kind == "sequence.bake" and m.seed is None
    assert m.frame_times == pytest.approx([0, 0.1, 0.2, 0.3, 0.4, 0.5])
    assert m.extra["source"] == "box.anime"
    assert sorted(p.name for p in ctx.out_dir.iterdir()) == ["sequence.npz"]
    assert events[-1][0] == "done" and events[-1][1] == 1.0


def test_bake_job_gltf_clip_and_weld(tmp_path, gltf_files):
    src = gltf_files.box()
    ctx, events = context(tmp_path)
    m = run_bake(ctx, {"clip": "move", "fps": 8, "weld": True}, [src])
    assert m.counts["frames"] == 9 and m.counts["vertices"] == 11
    assert m.extra["clip"] == "move" and m.extra["clips"] == ["move", "late"]
    assert "weld" in [e[0] for e in events]
    ctx, _ = context(tmp_path)
    with pytest.raises(FormatError, match="no clip named 'walk'"):
        run_bake(ctx, {"clip": "walk"}, [src])


def test_bake_job_input_errors(tmp_path):
    ctx, _ = context(tmp_path)
    with pytest.raises(ParamError, match="exactly one input"):
        run_bake(ctx, {}, [])
    bad = tmp_path / "mesh.fbx"
    bad.write_bytes(b"x")
    with pytest.raises(FormatError) as err:
        run_bake(ctx, {}, [bad])
    assert str(bad) in str(err.value) and ".glb, .gltf, .anime" in str(err.value)


def test_bake_job_horse_weld(tmp_path, horse_glb):
    ctx, _ = context(tmp_path)
    m = run_bake(ctx, {"clip": "AnimalArmature|Gallop", "fps": 24, "weld": True}, [horse_glb])
    assert m.counts["frames"] == 15 and m.counts["vertices"] < 4400
    assert m.extra["source_vertices"] == 4400
