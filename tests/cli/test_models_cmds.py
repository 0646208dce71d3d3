"""``anim4d models list|verify|fetch`` on fake model folders; fetch only offline (no network)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest

from backend.cli.main import main
from backend.models import pretrained as pm


@pytest.fixture
def fresh(tmp_path, monkeypatch):
    """No model anywhere: empty models folder, HF cache and torch hub cache."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    return tmp_path


def _fake_dinov2(root, payload=b"weights-v1"):
    folder = root / "ds4d" / "dinov2-small"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"model_type": "dinov2"}')
    (folder / "model.safetensors").write_bytes(payload)
    files = {n: {"sha256": hashlib.sha256((folder / n).read_bytes()).hexdigest()}
             for n in ("config.json", "model.safetensors")}
    (folder / pm.CHECKSUMS_FILE).write_text(json.dumps({"files": files}))
    return folder


def test_list_on_a_fresh_machine_names_every_model_none_present(fresh, capsys):
    assert main(["models", "list", "--models-dir", str(fresh / "models")]) == 0
    out = capsys.readouterr().out
    for p in pm.CATALOG:
        assert f"{p.name}  (" in out and f"`anim4d models fetch {p.name}`" in out
        assert str(fresh / "models" / "ds4d" / p.folder) in out  # the models folder, first
    assert out.count("present:  no") == len(pm.CATALOG) and "present:  yes" not in out
    assert f"0 of {len(pm.CATALOG)} pretrained models present" in out
    assert "Hugging Face cache" in out and "torch hub cache" in out
    assert "sha256:   unknown" in out and "7be5be79" in out  # honest where nothing is recorded
    assert "cpu, paper" in out  # which presets use it
    # the default models folder is the server's: <data dir>/models
    assert main(["models", "list"]) == 0
    assert str(fresh / "data" / "anim4d" / "models" / "ds4d") in capsys.readouterr().out


def test_list_finds_the_models_folder_then_the_hf_cache(fresh, capsys):
    _fake_dinov2(fresh / "models")
    snap = fresh / "hf" / "hub" / "models--sudo-ai--zero123plus-v1.1"
    (snap / "refs").mkdir(parents=True)
    (snap / "refs" / "main").write_text("abc123\n")
    folder = snap / "snapshots" / "abc123"
    for r in pm.by_name("zero123pp").required:
        target = folder / r
        target.parent.mkdir(parents=True, exist_ok=True)
        target.mkdir() if r == "tokenizer" else target.write_text("{}")
    assert main(["models", "list", "--models-dir", str(fresh / "models")]) == 0
    out = capsys.readouterr().out
    assert f"in the models folder: {fresh / 'models' / 'ds4d' / 'dinov2-small'}" in out
    assert f"in the Hugging Face cache: {folder}" in out
    assert "2 file(s) recorded" in out and "2 of 3 pretrained models present" in out
    locs = {loc.model.name: loc for loc in pm.locate_all(fresh / "models")}
    assert locs["zero123pp"].present and not locs["lpips-alex"].present
    assert dict(pm.present_folders(fresh / "models", "ds4d")) == {
        "dinov2-small": str(fresh / "models" / "ds4d" / "dinov2-small"),
        "zero123pp": str(folder)}
    hello = {e["name"]: e["present"] for e in pm.hello_entries(fresh / "models")}
    assert hello == {"dinov2-small": True, "zero123pp": True, "lpips-alex": False}


def test_verify_passes_then_names_the_corrupted_file(fresh, capsys):
    folder = _fake_dinov2(fresh / "models")
    args = ["models", "verify", "--models-dir", str(fresh / "models")]
    assert main(args) == 0
    assert "dinov2-small: OK (2 file(s) match)" in capsys.readouterr().out
    (folder / "model.safetensors").write_bytes(b"weights-v2")  # same size, other bytes
    assert main(args) == 1
    out = capsys.readouterr().out
    assert f"CORRUPT {folder / 'model.safetensors'}" in out and "config.json:" not in out
    (folder / "model.safetensors").unlink()
    assert not pm.locate(pm.by_name("dinov2-small"), fresh / "models").present  # weights needed
    assert main([*args[:2], "dinov2-small", *args[2:]]) == 1  # no weights: not present at all
    (folder / "model.safetensors").write_bytes(b"weights-v1")
    (folder / "config.json").unlink()
    assert main(args) == 0  # incomplete folder: not present, nothing to verify
    assert "nothing to verify" in capsys.readouterr().out


def test_verify_checks_a_recorded_prefix(fresh, capsys):
    folder = fresh / "models" / "ds4d" / "lpips-alex"
    folder.mkdir(parents=True)
    (folder / pm.ALEXNET_FILE).write_bytes(b"not alexnet")
    assert main(["models", "verify", "lpips-alex", "--models-dir", str(fresh / "models")]) == 1
    assert f"CORRUPT {folder / pm.ALEXNET_FILE}" in capsys.readouterr().out


def test_verify_of_a_missing_model_names_the_fetch_command(fresh, capsys):
    rc = main(["models", "verify", "zero123pp", "--models-dir", str(fresh / "models")])
    assert rc == 1
    err = capsys.readouterr().err
    assert "zero123pp is not present" in err and "anim4d models fetch zero123pp" in err


def test_fetch_arguments_and_offline_error(fresh, capsys):
    assert main(["models", "fetch", "nope"]) == 1
    assert "no pretrained model 'nope'; known: dinov2-small, zero123pp, lpips-alex" in \
        capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["models", "fetch"])  # NAME is required
    # offline (HF_HUB_OFFLINE=1: huggingface_hub makes no request): one clear line, exit 1,
    # no empty folder left behind
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=os.getcwd())
    dest = fresh / "dest"
    done = subprocess.run([sys.executable, "-m", "backend.cli.main", "models", "fetch",
                           "dinov2-small", "--to", str(dest)], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 1, done.stderr
    assert "could not fetch dinov2-small from huggingface.co/facebook/dinov2-small" in \
        done.stderr and "needs internet" in done.stderr and str(dest) in done.stderr
    assert "Traceback" not in done.stderr and not dest.exists()


def test_present_models_reach_the_ds4d_workers(fresh):
    from backend.jobs.registry import builtin_kinds
    from backend.models import discover_models

    kinds = builtin_kinds(models=discover_models(fresh / "models"))
    assert kinds["video.to4d"].model_folders == {}
    folder = _fake_dinov2(fresh / "models")
    kinds = builtin_kinds(models=discover_models(fresh / "models"))
    assert kinds["video.to4d"].model_folders == {"dinov2-small": str(folder)}


def test_hello_announces_the_pretrained_models_and_the_addon_shows_them(fresh):
    from backend.server.embedded import EmbeddedServer
    from blender_addon.core.client import Client
    from blender_addon.core.jobs_state import JobsState
    from blender_addon.core.worker import Event

    _fake_dinov2(fresh / "models")
    srv = EmbeddedServer(fresh / "srv", kinds={}, models_dir=fresh / "models")
    try:
        with Client(srv.address, timeout=30) as c:
            info = c.hello()
    finally:
        srv.stop()
    assert [(e["name"], e["present"]) for e in info.pretrained] == [
        ("dinov2-small", True), ("zero123pp", False), ("lpips-alex", False)]
    assert all(str(fresh) not in str(e) for e in info.pretrained)  # never a path
    state = JobsState()
    state.apply(Event("hello", data=info))
    assert state.pretrained_text == "Pretrained: dinov2-small yes, zero123pp no, lpips-alex no"
