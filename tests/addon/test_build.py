"""``python -m blender_addon.build`` (``make addon``) fails, naming the wheel, when it cannot
bundle pyzmq: an add-on without it cannot talk to any backend, so there is no quiet fallback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from blender_addon import build

ROOT = Path(__file__).resolve().parents[2]
WHEELS = build.manifest_wheels(build.read_manifest())


def _build(tmp_path: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "blender_addon.build", "--dist", str(tmp_path / "dist"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300,
                          env=dict(os.environ, **(env or {})))


def _assert_failed(run: subprocess.CompletedProcess, tmp_path: Path, *words: str) -> None:
    assert run.returncode == 1, run.stdout + run.stderr
    assert run.stderr.startswith("anim4d add-on build failed: "), run.stderr
    assert "Traceback" not in run.stderr
    for word in words:
        assert word in run.stderr, (word, run.stderr)
    assert not list((tmp_path / "dist").glob("*.zip"))


def test_empty_wheel_source_offline_fails_naming_every_wheel(tmp_path: Path) -> None:
    empty = tmp_path / "no_wheels"
    run = _build(tmp_path, "--wheel-cache", str(empty), "--offline")
    _assert_failed(run, tmp_path, str(empty), "--fetch-wheels", *WHEELS)


def test_pip_that_cannot_reach_an_index_fails_the_build(tmp_path: Path) -> None:
    empty = tmp_path / "no_wheels"
    # pip without any index (nor a config file) to find pyzmq in: the first download fails
    run = _build(tmp_path, "--wheel-cache", str(empty),
                 env={"PIP_NO_INDEX": "1", "PIP_CONFIG_FILE": os.devnull})
    _assert_failed(run, tmp_path, f"could not download {WHEELS[0]}", "pyzmq")


def test_a_broken_wheel_in_the_cache_fails_the_build(tmp_path: Path) -> None:
    cache = tmp_path / "wheels"
    cache.mkdir()
    for name in WHEELS:
        (cache / name).write_bytes(b"<html>proxy error</html>")
    run = _build(tmp_path, "--wheel-cache", str(cache), "--offline")
    _assert_failed(run, tmp_path, "not wheel (zip) files", WHEELS[0])


def test_the_manifest_must_name_wheels(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(build, "read_manifest", lambda: {"id": "anim4d", "version": "0"})
    with pytest.raises(build.BuildError, match="lists no wheels"):
        build.build(tmp_path / "dist", work=tmp_path / "stage", wheel_cache=tmp_path)
