"""``render.video`` through a real server: a finished job goes in (protocol 1.1's ``job``
parameter), a ``video`` result comes out, with progress per frame; a cancel stops the render."""

from __future__ import annotations

import re
import time
from pathlib import Path

import av
import pytest
from blender_render_helpers import render_processes, requires_bpy

from backend.blender_render.job import RENDER_KIND
from backend.jobs.registry import JobKind, builtin_kinds, debug_kinds
from backend.server.embedded import EmbeddedServer
from blender_addon.core.client import Client
from shared.results import open_result

pytestmark = [requires_bpy, pytest.mark.blender]
CEILING = 300.0  # catches a hang only


@pytest.fixture
def client(tmp_path):
    kinds = {**debug_kinds(),
             RENDER_KIND.name: JobKind(RENDER_KIND, "backend.blender_render.job:run_render_video")}
    # a long cancel grace: the render must stop because the job saw the cancel, not because
    # the server killed its worker
    with EmbeddedServer(tmp_path / "data", kinds=kinds, cancel_grace_s=120.0,
                        heartbeat_s=0.3) as server, Client(server.address, timeout=60) as c:
        yield c


def source_job(client: Client, frames: int) -> str:
    job = client.submit("debug.sleep", {"seconds": 0, "steps": 1, "frames": frames,
                                        "vertices": 30})
    assert client.wait(job, timeout=CEILING).state == "done"
    return job


def test_render_video_is_offered_where_bpy_is():
    assert builtin_kinds()["render.video"].spec.representation == "video"


def test_render_a_finished_job_to_a_video_result(client, tmp_path):
    source = source_job(client, frames=6)
    job = client.submit("render.video", {"source": source[:8], "resolution": 32, "samples": 1})
    seen = []
    info = client.wait(job, on_progress=lambda p: seen.append(p.message), timeout=CEILING)
    assert info.state == "done", info.error
    # progress comes per frame (the server may merge updates a slow client has not read yet)
    frames = [int(m.split()[1]) for m in seen if re.fullmatch(r"frame \d+ of 6", m)]
    assert frames and frames == sorted(frames) and set(frames) <= set(range(1, 7))
    res = open_result(client.fetch(job, tmp_path / "video"))
    m = res.manifest
    assert m.representation == "video" and m.params["source"] == source
    assert m.counts == {"frames": 6, "width": 32, "height": 32}
    assert m.frame_times == pytest.approx([i / 24.0 for i in range(6)])  # debug.sleep: 24 fps
    with av.open(str(res.video)) as container:
        assert container.streams.video[0].codec_context.width == 32
        assert sum(1 for _ in container.decode(video=0)) == 6
    assert (res.folder / m.files["still"]).stat().st_size > 0
    # a video is no source for another render: the job fails saying so, naming no server path
    again = client.wait(client.submit("render.video", {"source": job}), timeout=CEILING)
    assert again.state == "failed"
    assert again.error["message"].startswith(f"the result of job {job}: is already a video")
    assert "/jobs/" not in again.error["message"]


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs /proc")
def test_cancel_stops_the_render(client, tmp_path):
    source = source_job(client, frames=48)
    before = set(render_processes())
    job = client.submit("render.video", {"source": source, "resolution": 96, "samples": 64})
    pngs = tmp_path / "data" / "jobs" / job / "work" / "render"
    end = time.monotonic() + CEILING
    while not (client.job(job).message or "").startswith("frame"):  # a frame is out
        assert time.monotonic() < end and client.job(job).state in ("queued", "running")
        time.sleep(0.05)
    assert set(render_processes()) - before, "no render subprocess found while rendering"
    client.cancel(job)
    most = 0  # frames on disk while the job winds down (its work folder goes when it ends)
    while client.job(job).state == "running":
        assert time.monotonic() < end
        most = max(most, len(list(pngs.glob("*/frame_*.png"))))
        time.sleep(0.05)
    assert client.job(job).state == "cancelled"
    assert most < 48, "the render went on to the last frame after the cancel"
    assert set(render_processes()) - before == set()

