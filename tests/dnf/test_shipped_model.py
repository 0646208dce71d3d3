"""The shipped ``tiny`` model: listed with its real hash, offering only the stages it holds,
verified on load, and decoding a creature that really moves."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest

from backend.jobs.api import JobContext
from backend.jobs.registry import builtin_kinds
from backend.methods.dnf.checkpoint import load_checkpoint
from backend.methods.dnf.jobs import run_reconstruct
from backend.methods.dnf.model_files import SHIPPED_DIR, held_stages
from backend.models import discover_models
from shared.errors import FormatError, ParamError
from shared.meshseq import load_npz

TINY = SHIPPED_DIR / "tiny"
# creature_2|gallop decoded at 32^3 and 20 fps: mean vertex distance from frame 0 over the
# other 16 frames, in the creature's own units; measured 0.1256 (normalised units, where the
# canonical frame's largest side is 1.8; the creature's scale is 1.009) and at least 0.0083 for
# every frame. The ground truth moves by 0.166 (its mesh vertices are not the decoded ones).
MEAN_DISPLACEMENT_FLOOR = 0.11
FRAME_DISPLACEMENT_FLOOR = 0.007


def test_the_shipped_model_is_listed_with_the_hash_of_its_weights(tmp_path):
    reg = discover_models(tmp_path / "no-models-here")
    (tiny,) = reg.for_method("dnf")
    assert (tiny.name, tiny.method, tiny.shipped) == ("tiny", "dnf", True)
    assert tiny.sha256 == hashlib.sha256((TINY / "model.safetensors").read_bytes()).hexdigest()
    assert tiny.size >= (TINY / "model.safetensors").stat().st_size
    assert reg.to_json() == [{"name": "tiny", "method": "dnf", "sha256": tiny.sha256,
                              "size": tiny.size, "shipped": True}]
    assert load_checkpoint(TINY, label="tiny").sha256 == tiny.sha256


def test_the_kinds_offer_only_what_the_shipped_model_holds(tmp_path):
    """stages.safetensors (b, c) is not shipped: the stage choices are a and d."""
    held = held_stages(TINY)
    assert held == load_checkpoint(TINY).stages == ["a", "d"]
    kinds = builtin_kinds(models=discover_models(tmp_path))
    for name in ("dnf.reconstruct", "dnf.fit_shape"):
        model = kinds[name].spec.param("model")
        assert (model.type, model.choices, model.default) == ("enum", ("tiny",), "tiny")
        assert kinds[name].model_folders == {"tiny": str(TINY.resolve())}
        assert "checkpoint" not in [p.name for p in kinds[name].spec.params]
    stage = kinds["dnf.reconstruct"].spec.param("stage")
    assert stage.choices == tuple(held) and stage.default == "d"
    with pytest.raises(ParamError, match=r"'b' is not accepted; expected one of a, d"):
        kinds["dnf.reconstruct"].spec.validate_params({"stage": "b"})
    with pytest.raises(ParamError, match=r"expected one of tiny"):
        kinds["dnf.reconstruct"].spec.validate_params({"model": str(TINY)})


def _damaged_copy(tmp_path, name="broken"):
    folder = tmp_path / "models" / "dnf" / name
    shutil.copytree(TINY, folder)
    data = bytearray((folder / "model.safetensors").read_bytes())
    data[-100] ^= 0x01  # one bit of one weight
    (folder / "model.safetensors").write_bytes(bytes(data))
    return folder


def test_a_damaged_model_is_refused_on_load_naming_the_model(tmp_path):
    folder = _damaged_copy(tmp_path)
    with pytest.raises(FormatError) as info:
        load_checkpoint(folder, label="broken")
    msg = str(info.value)
    assert info.value.code == "bad_checkpoint"
    assert "model 'broken': model.safetensors" in msg and "SHA-256" in msg
    assert str(tmp_path) not in msg
    with pytest.raises(FormatError, match=str(folder)):  # a local command names the path
        load_checkpoint(folder)
    cfg = json.loads((folder / "config.json").read_text())
    del cfg["model_sha256"]
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(FormatError, match="no model_sha256 recorded"):
        load_checkpoint(folder, label="broken")


def _ctx(tmp_path, models):
    out = tmp_path / "out"
    out.mkdir()
    return JobContext("job", out, tmp_path, models=models)


def test_a_stage_the_model_lacks_is_a_clear_error(tmp_path):
    ctx = _ctx(tmp_path, {"tiny": str(TINY)})
    with pytest.raises(ParamError, match=r"model 'tiny' has no stage 'b'; it holds a, d"):
        run_reconstruct(ctx, {"model": "tiny", "stage": "b", "resolution": 16}, [])
    with pytest.raises(ParamError, match=r"'model' = 'big' is not accepted; expected one of tiny"):
        run_reconstruct(ctx, {"model": "big", "resolution": 16}, [])


def test_decoded_frames_really_move(tmp_path):
    ctx = _ctx(tmp_path, {"tiny": str(TINY)})
    man = run_reconstruct(ctx, {"model": "tiny", "instance": "creature_2|gallop", "stage": "d",
                                "fps": 20.0, "resolution": 32}, [])
    seq = load_npz(ctx.out_dir / man.files["sequence"])
    assert seq.frame_count == 17
    (inst,) = [i for i in json.loads((TINY / "config.json").read_text())["instances"]
               if i["name"] == "creature_2|gallop"]
    moved = np.linalg.norm(seq.vertices[1:] - seq.vertices[:1], axis=-1) * inst["scale"]
    print(f"mean displacement {moved.mean():.4f}, smallest frame mean "
          f"{moved.mean(axis=1).min():.4f} (normalised units)")
    assert moved.mean() > MEAN_DISPLACEMENT_FLOOR
    assert moved.mean(axis=1).min() > FRAME_DISPLACEMENT_FLOOR
