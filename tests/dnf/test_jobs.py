"""The DNF job kinds run through the job API: progress, cancel, result files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import trimesh

from backend.jobs.api import JobCancelled, JobContext
from backend.methods.dnf.checkpoint import save_checkpoint
from backend.methods.dnf.jobs import run_fit_shape, run_reconstruct
from shared.meshseq import load_npz


@pytest.fixture(scope="module")
def micro_ckpt(micro_trained, tmp_path_factory):
    return save_checkpoint(micro_trained[0], tmp_path_factory.mktemp("ck") / "micro")


def _ctx(tmp_path, micro_ckpt, cancelled=lambda: False):
    out = tmp_path / "out"
    out.mkdir()
    seen = []
    ctx = JobContext("job1", out, tmp_path, sink=lambda s, f, m: seen.append((s, f)),
                     cancelled=cancelled, models={"micro": str(micro_ckpt)})
    return ctx, seen


def test_reconstruct_at_any_fps(micro_ckpt, tmp_path):
    ctx, seen = _ctx(tmp_path, micro_ckpt)
    man = run_reconstruct(ctx, {"model": "micro", "fps": 25.0, "resolution": 24}, [])
    seq = load_npz(ctx.out_dir / man.files["sequence"])
    assert seq.frame_count == len(man.frame_times) >= 10  # 0.4 s at 25 fps
    assert np.isfinite(seq.vertices).all()
    assert seen[-1] == ("done", 1.0)
    assert man.params["model"] == "micro" and str(micro_ckpt) not in str(man.to_json())
    assert man.checkpoint_sha256 == json.loads((micro_ckpt / "config.json").read_text())[
        "model_sha256"]


def test_reconstruct_cancel(micro_ckpt, tmp_path):
    ctx, _ = _ctx(tmp_path, micro_ckpt, cancelled=lambda: True)
    with pytest.raises(JobCancelled):
        run_reconstruct(ctx, {"model": "micro"}, [])


def test_fit_shape_job(micro_ckpt, tmp_path):
    mesh = tmp_path / "blob.obj"
    trimesh.creation.icosphere(subdivisions=2, radius=0.7).export(mesh)
    ctx, _ = _ctx(tmp_path, micro_ckpt)
    man = run_fit_shape(ctx, {"model": "micro", "iters": 40, "resolution": 24}, [mesh])
    assert man.extra["loss_after"] < man.extra["loss_before"]
    assert (ctx.out_dir / "shape_vector.safetensors").is_file()
    assert load_npz(ctx.out_dir / "sequence.npz").frame_count == 1
