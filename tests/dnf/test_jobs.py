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


def test_stage_choices_come_from_the_stages_each_model_holds(micro_trained, tmp_path):
    """A model saved with ``stages.safetensors`` holds a-d, one without it a and d; the kind
    offers their union and each job checks its own model. The stages file's hash is checked."""
    from backend.jobs.registry import builtin_kinds
    from backend.methods.dnf.checkpoint import load_checkpoint
    from backend.models import discover_models
    from shared.errors import FormatError, ParamError

    model = micro_trained[0]
    full = save_checkpoint(model, tmp_path / "models" / "dnf" / "full")
    lean = save_checkpoint(model, tmp_path / "models" / "dnf" / "lean", with_stages=False)
    reg = discover_models(tmp_path / "models")
    assert [(m.name, m.details["stages"]) for m in reg.for_method("dnf")] == [
        ("tiny", ["a", "d"]), ("full", ["a", "b", "c", "d"]), ("lean", ["a", "d"])]
    stage = builtin_kinds(models=reg)["dnf.reconstruct"].spec.param("stage")
    assert stage.choices == ("a", "b", "c", "d")
    assert "full: a, b, c, d" in stage.help and "lean: a, d" in stage.help
    ctx, _ = _ctx(tmp_path, full)
    ctx.models["lean"] = str(lean)
    with pytest.raises(ParamError, match=r"model 'lean' has no stage 'c'; it holds a, d"):
        run_reconstruct(ctx, {"model": "lean", "stage": "c", "resolution": 16}, [])
    man = run_reconstruct(ctx, {"model": "micro", "stage": "c", "resolution": 16}, [])
    assert man.params["stage"] == "c"
    data = bytearray((full / "stages.safetensors").read_bytes())
    data[-4] ^= 0x01
    (full / "stages.safetensors").write_bytes(bytes(data))
    with pytest.raises(FormatError, match=r"model 'full': stages\.safetensors: SHA-256"):
        load_checkpoint(full, label="full")
