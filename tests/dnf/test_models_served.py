"""Models over the wire: hello lists them by name, kinds offer them as choices, the CLI names
them, and nothing a client receives holds a path of the server's disk."""

from __future__ import annotations

import shutil

import pytest

from backend.cli.main import main
from backend.methods.dnf.model_files import SHIPPED_DIR
from backend.server.embedded import EmbeddedServer
from blender_addon.core.client import Client
from blender_addon.core.client_types import ServerError
from shared.results import open_result

TINY = SHIPPED_DIR / "tiny"


def _models_dir(tmp_path):
    """``dnf/broken`` (tiny with one flipped bit), ``dnf/empty`` (not a model), ``dnf/tiny`` (a
    name the shipped model holds), ``dnf/bad name`` (not a model name)."""
    root = tmp_path / "models"
    broken = root / "dnf" / "broken"
    shutil.copytree(TINY, broken)
    data = bytearray((broken / "model.safetensors").read_bytes())
    data[-100] ^= 0x01
    (broken / "model.safetensors").write_bytes(bytes(data))
    (root / "dnf" / "empty").mkdir()
    shutil.copytree(TINY, root / "dnf" / "tiny")
    shutil.copytree(TINY, root / "dnf" / "bad name")
    return root


def _no_paths(text: str, *paths) -> None:
    for p in paths:
        assert str(p) not in text, f"a server path ({p}) reached the client: {text}"


def test_clients_name_models_and_never_see_server_paths(tmp_path, capsys):
    models = _models_dir(tmp_path)
    paths = (tmp_path, SHIPPED_DIR, SHIPPED_DIR.resolve())
    with EmbeddedServer(tmp_path / "data", models_dir=models) as srv:
        with Client(srv.address, timeout=30) as client:
            hello = client.hello()
            assert [(m["method"], m["name"], m["shipped"]) for m in hello.models] == [
                ("dnf", "tiny", True), ("dnf", "broken", False)]
            _no_paths(repr(hello), *paths)
            for kind in ("dnf.reconstruct", "dnf.fit_shape"):
                assert hello.kind(kind).param("model").choices == ("tiny", "broken")
            with pytest.raises(ServerError) as info:
                client.submit("dnf.reconstruct", {"model": str(TINY)})
            assert info.value.code == "bad_param"
            assert "expected one of tiny, broken" in str(info.value)
            job = client.submit("dnf.reconstruct", {"model": "broken", "stage": "a",
                                                    "resolution": 16})
            failed = client.wait(job)
            assert failed.state == "failed" and failed.error["code"] == "bad_checkpoint"
            assert "model 'broken'" in failed.error["message"]
            assert "SHA-256" in failed.error["message"]
            _no_paths(repr(failed), *paths)

        assert main(["kinds", "--server", srv.address]) == 0
        out = capsys.readouterr().out
        assert "--param model=...  one of tiny, broken, default 'tiny'" in out
        assert "--param stage=...  one of a, d, default 'd'" in out
        assert "dnf/tiny" in out and "dnf/broken" in out
        _no_paths(out, *paths)

        rc = main(["submit", "dnf.reconstruct", "--server", srv.address, "--param", "model=tiny",
                   "instance=creature_2|gallop", "stage=a", "resolution=16", "fps=5", "--wait",
                   "--out", str(tmp_path / "result")])
        assert rc == 0, capsys.readouterr().err
        result = open_result(tmp_path / "result")
        assert result.manifest.params["model"] == "tiny"
        assert result.manifest.checkpoint_sha256 == hello.models[0]["sha256"]
        _no_paths((tmp_path / "result" / "manifest.json").read_text(), SHIPPED_DIR,
                  SHIPPED_DIR.resolve())
