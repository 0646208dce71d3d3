"""Upload size limits: per input of a kind (``InputSpec.max_bytes``) and per server
(``--max-input-mb``). A refused file is named with its size and the limit, an upload refused at
submit is discarded, and the server serves on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backend.jobs.registry import builtin_kinds, debug_kinds
from backend.server.embedded import EmbeddedServer
from blender_addon.core.client import Client
from blender_addon.core.client_types import ServerError
from shared.params import InputSpec

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def test_a_kind_declares_the_largest_file_an_input_takes(tmp_path):
    kinds = {k: v for k, v in builtin_kinds().items() if k == "video.to4d"}
    assert kinds["video.to4d"].spec.inputs[-1].max_bytes == 16_000_000
    big = tmp_path / "cams.json"
    big.write_text(json.dumps([{"name": "input", "pad": "x" * 17_000_000}]))
    clip = DATA / "videos" / "cat_king_fg.mp4"
    if not clip.is_file():
        pytest.skip(f"needs {clip}")
    with EmbeddedServer(tmp_path / "data", kinds=kinds) as srv, \
            Client(srv.address, timeout=60) as c:
        with pytest.raises(ServerError) as err:
            c.submit("video.to4d", {"preset": "tiny"}, {"video": [clip], "cameras": [big]})
        assert err.value.code == "too_large"
        assert ("'cams.json' is 17.0 MB; the 'cameras' input of video.to4d takes at most "
                "16.0 MB") in str(err.value)
        assert srv.server.uploads.active == {}  # the refused upload's bytes are gone
        assert not any(srv.server.store.uploads_dir.iterdir())
        assert c.ping() >= 0 and c.jobs() == []


def test_a_server_limit_caps_every_input(tmp_path):
    small, large = tmp_path / "small.bin", tmp_path / "large.bin"
    small.write_bytes(b"s" * 900)
    large.write_bytes(b"L" * 1100)
    with EmbeddedServer(tmp_path / "data", kinds=debug_kinds(), max_input_bytes=1000) as srv, \
            Client(srv.address, timeout=60) as c:
        with pytest.raises(ServerError) as err:
            c.submit("debug.echo", {}, [large])
        assert err.value.code == "too_large" and "this server (--max-input-mb)" in str(err.value)
        job = c.submit("debug.echo", {}, [small])
        assert c.wait(job).state == "done"


def test_an_upload_over_the_server_limit_is_refused_before_its_bytes_arrive(tmp_path):
    import os

    from shared.protocol import INLINE_INPUT_LIMIT

    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(INLINE_INPUT_LIMIT + 10))  # too big to go inline: uploaded
    with EmbeddedServer(tmp_path / "data", kinds=debug_kinds(),
                        max_input_bytes=INLINE_INPUT_LIMIT) as srv, \
            Client(srv.address, timeout=60) as c:
        with pytest.raises(ServerError) as err:
            c.submit("debug.echo", {}, [big])
        assert err.value.code == "too_large" and "this server takes files of at most" in str(
            err.value)
        assert not any(srv.server.store.uploads_dir.iterdir())


def test_max_bytes_travels_in_hello_only_when_set():
    assert "max_bytes" not in InputSpec("f", (".glb",)).to_json()
    spec = InputSpec("f", (".json",), max_bytes=5)
    assert InputSpec.from_json(spec.to_json()) == spec
