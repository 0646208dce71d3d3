"""Protocol 1.1 over the wire: ``job`` and ``floats`` parameters, results with several sequences,
and how a 1.0 client is served."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import zmq

from backend.jobs.debug import _strip
from backend.server.embedded import EmbeddedServer
from backend.server.sources import resolve_job_id
from backend.server.store import JobRecord
from blender_addon.core.client import Client
from blender_addon.core.client_types import ServerError
from shared.errors import ParamError
from shared.manifest import Manifest, write_manifest
from shared.protocol import Message, decode, encode
from shared.results import open_result

VIDEO_JOB = "feedface" * 4


def wait_state(client: Client, job_id: str, states: tuple[str, ...], timeout: float = 60.0) -> str:
    end = time.monotonic() + timeout  # a ceiling that only catches a hang
    while (state := client.job(job_id).state) not in states:
        assert time.monotonic() < end, f"job never reached {states}"
        time.sleep(0.05)
    return state


@pytest.fixture
def source(client) -> str:
    """A finished debug.sleep job: 25 frames at 24 fps (1 s), 10 vertices."""
    job = client.submit("debug.sleep", {"seconds": 0, "steps": 1, "frames": 25, "vertices": 10})
    assert client.wait(job).state == "done"
    return job


def test_resample_a_finished_job_named_by_prefix(client, source, tmp_path):
    job = client.submit("debug.resample", {"source": source[:6].upper(),
                                           "times": "0,0.5,0.52,1", "offset": 2.0})
    info = client.wait(job)
    assert info.state == "done", info.error
    assert info.params["source"] == source  # the prefix was resolved to the full id
    res = open_result(client.fetch(job, tmp_path / "r"))
    m = res.manifest
    assert m.params == {"source": source, "times": [0.0, 0.5, 0.52, 1.0], "offset": 2.0}
    assert m.files["sequences"] == ["sequence.npz", "sequence_1.npz"] and res.sequence_count == 2
    assert m.frame_times == [0.0, 0.5, 0.52, 1.0] and m.extra["source_job"] == source
    src = _strip(25, 10).vertices  # what the source job made, frames at i / 24 s
    first, second = res.mesh_sequence(0), res.mesh_sequence(1)
    assert np.array_equal(first.vertices[[0, 1, 3]], src[[0, 12, 24]])  # exact at source frames
    w = 0.52 * 24 - 12  # 0.52 s lies between frames 12 and 13
    mid = (1 - w) * src[12].astype(np.float64) + w * src[13]
    assert np.abs(first.vertices[2] - mid).max() <= 1e-6
    expect = first.vertices.copy()
    expect[..., 0] += 2.0
    assert np.array_equal(second.vertices, expect)
    assert np.array_equal(second.faces, first.faces)


BAD_PARAMS = [
    ({}, "'source' needs a finished job: give its id"),
    ({"source": "ffffffff0"}, "'source': no job 'ffffffff0' on this server"),
    ({"source": "not-a-job"}, "'source' = 'not-a-job' is not accepted; expected the id"),
    ({"times": "0,soon"}, "'times': element 1 = 'soon' is not a number"),
    ({"times": "-1"}, r"'times': element 0 = '-1' is out of range; expected .* in \[0, 1e\+06\]"),
    ({"times": list(range(10_001))}, "'times' holds 10001 numbers"),
]


def test_bad_job_and_floats_values_are_refused_at_submit(client, source):
    for params, match in BAD_PARAMS:  # one server and one source job for all: a loop
        params = {"source": source, **params} if "source" not in params and params else params
        with pytest.raises(ServerError, match=match) as err:
            client.submit("debug.resample", params)
        assert err.value.code == "bad_param"
    assert len(client.jobs()) == 1  # nothing was queued


def test_unfinished_and_failed_jobs_are_refused_naming_their_state(client):
    failed = client.submit("debug.fail", {"message": "broken on purpose"})
    assert client.wait(failed).state == "failed"
    with pytest.raises(ServerError, match=f"job {failed} is failed \\(broken on purpose\\); "
                                          "only a finished \\(done\\) job can be used"):
        client.submit("debug.resample", {"source": failed})
    busy = client.submit("debug.sleep", {"seconds": 60, "steps": 600})
    wait_state(client, busy, ("running",))
    with pytest.raises(ServerError, match=f"job {busy} is running; only a finished"):
        client.submit("debug.resample", {"source": busy[:10]})
    client.cancel(busy)
    assert client.wait(busy).state == "cancelled"
    with pytest.raises(ServerError, match=f"job {busy} is cancelled"):
        client.submit("debug.resample", {"source": busy})


def test_a_source_in_use_cannot_be_deleted(client, source):
    busy = client.submit("debug.sleep", {"seconds": 60, "steps": 600})
    wait_state(client, busy, ("running",))
    user = client.submit("debug.resample", {"source": source})
    assert client.job(user).state == "queued"  # one worker, busy
    with pytest.raises(ServerError, match=f"is the source of 1 queued or running job.*{user[:12]}"
                       ) as err:
        client.delete(source)
    assert err.value.code == "job_active"
    client.cancel(user)
    client.cancel(busy)
    client.wait(busy)
    client.delete(source)


def test_times_past_the_source_fail_the_job_with_a_clear_message(client, source):
    job = client.submit("debug.resample", {"source": source, "times": "0,2"})
    info = client.wait(job)
    assert info.state == "failed"
    assert "times must lie in [0, 1] s" in info.error["message"]


def test_an_ambiguous_prefix_is_refused():
    records = {i: JobRecord(i, "k", {}) for i in ("ab01", "ab02", "cd03")}
    assert resolve_job_id("cd", records, "p") == "cd03"
    assert resolve_job_id("ab01", records, "p") == "ab01"
    with pytest.raises(ParamError, match="p: 'ab' matches 2 jobs; give more characters"):
        resolve_job_id("ab", records, "p")


def _raw(address: str, version: bytes, msg: Message) -> Message:
    """One request with the version frame ``version`` (a peer of another minor version)."""
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(address)
    try:
        sock.send_multipart([version, *encode(msg)[1:]])
        assert sock.poll(20_000), "no reply"
        return decode(sock.recv_multipart())
    finally:
        sock.close()


def test_hello_offers_1_1_kinds_only_to_1_1_clients(server, client):
    hello = {"client": "old", "protocol": "1.0"}
    old = _raw(server.address, b"A4D/1.0", Message("hello", hello))
    new = _raw(server.address, b"A4D/1.1", Message("hello", hello))
    old_names = [k["name"] for k in old.content["kinds"]]
    new_names = [k["name"] for k in new.content["kinds"]]
    assert "debug.sleep" in old_names and "debug.resample" not in old_names
    assert set(new_names) == set(old_names) | {"debug.resample"}
    assert new.content["protocol"] == "1.1"
    # the 1.1 types round trip through hello: the client's spec is the server's
    spec = client.hello().kind("debug.resample")
    assert spec.to_json() == server.server.kinds["debug.resample"].spec.to_json()
    assert spec.param("times").max_items == 10_000 and spec.param("source").type == "job"


@pytest.fixture
def video_server(tmp_path):
    """A server whose store already holds a finished job with a video result."""
    folder = tmp_path / "data" / "jobs" / VIDEO_JOB
    (folder / "result").mkdir(parents=True)
    (folder / "result" / "render.mp4").write_bytes(b"not really an mp4, but bytes" * 100)
    write_manifest(folder / "result", Manifest(
        kind="render.video", representation="video", frame_times=[0.0, 0.5], fps=2.0,
        files={"video": "render.mp4"}, job_id=VIDEO_JOB))
    rec = JobRecord(VIDEO_JOB, "render.video", {}, state="done", finished=time.time())
    (folder / "job.json").write_text(json.dumps(rec.__dict__))
    from backend.jobs.registry import debug_kinds

    srv = EmbeddedServer(tmp_path / "data", kinds=debug_kinds(), heartbeat_s=0.3)
    yield srv
    srv.stop()


def test_a_video_result_is_fetched_by_1_1_and_refused_to_1_0(video_server, tmp_path):
    with Client(video_server.address, timeout=10) as c:
        res = open_result(c.fetch(VIDEO_JOB, tmp_path / "v"))
    assert res.video.read_bytes() == b"not really an mp4, but bytes" * 100
    reply = _raw(video_server.address, b"A4D/1.0",
                 Message("fetch", {"from_chunk": 0}, job=VIDEO_JOB))
    assert reply.status == "error" and reply.error["code"] == "version_mismatch"
    assert "is a video, which needs protocol 1.1" in reply.error["message"]


def test_the_runner_finds_the_source_folder_and_errors_name_no_server_path(tmp_path):
    from backend.jobs.api import JobContext
    from shared.errors import JobError

    jobs = tmp_path / "data" / "jobs"
    src, me = "ab" * 16, "cd" * 16
    (jobs / src / "result").mkdir(parents=True)
    write_manifest(jobs / src / "result", Manifest(
        kind="k", representation="mesh_sequence", frame_times=[0.0], fps=1.0,
        files={"sequence": "sequence.npz"}))
    ctx = JobContext(me, jobs / me / "result", jobs / me / "work")
    assert ctx.source(src) == jobs / src / "result"
    with pytest.raises(JobError, match="sequence.npz") as err:
        ctx.open_source(src)  # the manifest names a file that is not there
    assert err.value.code == "bad_file" and str(tmp_path) not in str(err.value)
    with pytest.raises(JobError, match=f"job {'ef' * 16} is no longer on the server"):
        ctx.source("ef" * 16)
    with pytest.raises(JobError, match="is not a job id"):
        ctx.source("../" + src)
