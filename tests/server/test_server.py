"""The server over real loopback sockets (and inproc): jobs, cancel, crashes, clients, restarts."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zmq

from backend.jobs.registry import debug_kinds
from backend.server.embedded import EmbeddedServer
from blender_addon.core.client import Client
from blender_addon.core.client_types import ConnectionFailed, ServerError, VersionMismatch
from shared.protocol import PROTOCOL_VERSION, Message, decode, encode
from shared.results import open_result
from shared.stream import ResultAssembler

#: a ceiling for what only has to happen eventually: it catches a hang, never a slow machine.
#: No test here asserts how fast something happens (bench/job_overhead.py measures that).
CEILING = 120.0


def wait_state(client: Client, job_id: str, state: str, timeout: float = CEILING) -> None:
    end = time.monotonic() + timeout
    while client.job(job_id).state != state:
        assert time.monotonic() < end, f"job never reached {state}"
        time.sleep(0.05)


def wait_stage(client: Client, job_id: str, stage: str) -> None:
    """Until the job's method reports ``stage`` (it runs: its process started and took it)."""
    end = time.monotonic() + CEILING
    while client.job(job_id).stage != stage:
        assert time.monotonic() < end, f"job never reached stage {stage}"
        time.sleep(0.05)


def worker_log(server: EmbeddedServer, job_id: str) -> str:
    return (server.server.store.job_dir(job_id) / "worker.log").read_text()


def worker_pid(server: EmbeddedServer, job_id: str) -> int:
    return int(worker_log(server, job_id).split("starting in pid ")[1].split(";")[0])


def wait_gone(pid: int) -> None:
    """Until process ``pid`` has exited (a zombie nobody reaped counts as exited)."""
    def gone() -> bool:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            return True
        return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")

    end = time.monotonic() + CEILING
    while not gone():
        assert time.monotonic() < end, f"process {pid} is still running"
        time.sleep(0.05)


def test_submit_progress_result_done(client, tmp_path):
    hello = client.hello()
    assert "debug.sleep" in [k.name for k in hello.kinds]
    sleep = hello.kind("debug.sleep")
    assert {p.name for p in sleep.params} >= {"seconds", "steps", "frames"}
    seen = []
    job = client.submit("debug.sleep", {"seconds": 0.3, "steps": 4, "frames": 12,
                                        "vertices": 50})
    info = client.wait(job, on_progress=seen.append)
    assert info.state == "done" and info.error is None
    states = [p.state for p in seen]
    assert states[0] in ("queued", "running") and states[-1] == "done"
    fractions = [p.fraction for p in seen if p.stage == "sleeping"]
    assert fractions == sorted(fractions) and len(fractions) == 4
    assert all(p.job_id == job for p in seen)
    result = open_result(client.fetch(job, tmp_path / "r"))
    assert result.manifest.kind == "debug.sleep" and result.manifest.job_id == job
    assert result.mesh.vertices.shape == (12, 50, 3)
    assert result.manifest.frame_times[0] == 0.0


def test_inproc_transport(tmp_path):
    ctx = zmq.Context()
    with EmbeddedServer(tmp_path, bind="inproc://anim4d-test", kinds=debug_kinds(),
                        context=ctx) as srv:
        with Client(srv.address, timeout=CEILING, context=ctx) as c:
            assert c.ping() >= 0
            job = c.submit("debug.sleep", {"seconds": 0.0})
            assert c.wait(job).state == "done"
    ctx.term()


def test_cancel_running_job(client, server, caplog):
    caplog.set_level("INFO", logger="anim4d.engine")
    job = client.submit("debug.sleep", {"seconds": 600, "steps": 6000})
    wait_stage(client, job, "sleeping")
    client.cancel(job)
    info = client.wait(job)
    assert info.state == "cancelled"
    # The method saw the cancel at a progress step and stopped itself: not killed after grace.
    assert f"job {job} cancelled" in worker_log(server, job)
    assert "killing it" not in caplog.text
    wait_gone(worker_pid(server, job))
    assert not any(server.server.store.result_dir(job).iterdir())


def test_cancel_queued_job_and_queue_positions(client):
    first = client.submit("debug.sleep", {"seconds": 2, "steps": 20})
    second = client.submit("debug.sleep", {"seconds": 0})
    assert client.job(second).queue_position == 1
    assert client.cancel(second).state == "cancelled"
    client.cancel(first)
    assert client.wait(first).state == "cancelled"


def test_job_ignoring_cancel_is_killed_after_grace(client, server, caplog, monkeypatch):
    import backend.server.engine

    monkeypatch.setattr(backend.server.engine, "EXIT_GRACE_S", 3600.0)  # only the cancel kills
    caplog.set_level("WARNING", logger="anim4d.engine")
    job = client.submit("debug.sleep", {"seconds": 600, "steps": 600, "ignore_cancel": True})
    wait_stage(client, job, "sleeping")
    client.cancel(job)
    info = client.wait(job)
    assert info.state == "cancelled"
    assert f"job {job} ignored cancel for 1.0s: killing it" in caplog.text
    assert f"job {job} cancelled" not in worker_log(server, job)  # it never stopped by itself
    wait_gone(worker_pid(server, job))
    assert not any(server.server.store.result_dir(job).iterdir())


def test_job_saving_its_latest_state_on_cancel_ends_done_past_the_grace(client, tmp_path):
    # it says "finishing" and spends 2.5 s saving: more than the 1 s cancel grace
    job = client.submit("debug.sleep", {"seconds": 60, "steps": 600, "keep_on_cancel": 2.5})
    wait_state(client, job, "running")
    time.sleep(0.3)
    client.cancel(job)
    info = client.wait(job)
    assert info.state == "done", info
    assert info.result["extra"]["cancelled_at_step"] >= 0
    client.fetch(job, tmp_path / "res")  # the result imports like any other
    assert (tmp_path / "res" / "manifest.json").is_file()


def test_crashing_worker_fails_the_job_and_the_server_serves_on(client):
    job = client.submit("debug.crash", {"after": 0.0})
    info = client.wait(job)
    assert info.state == "failed"
    assert info.error["code"] == "worker_died"
    assert "died" in info.error["message"] and "worker.log" in info.error["message"]
    after = client.submit("debug.sleep", {"seconds": 0})
    assert client.wait(after).state == "done"


def test_method_error_reaches_the_client(client):
    job = client.submit("debug.fail", {"message": "no creature in this video"})
    info = client.wait(job)
    assert info.state == "failed"
    assert info.error == {"code": "job_failed", "message": "no creature in this video"}


def test_two_clients_at_once(server):
    results = {}

    def run(name: str) -> None:
        with Client(server.address, timeout=CEILING) as c:
            job = c.submit("debug.sleep", {"seconds": 0.3, "steps": 3, "frames": 2})
            seen = []
            info = c.wait(job, on_progress=seen.append)
            results[name] = (info.state, {p.job_id for p in seen} == {job})

    threads = [threading.Thread(target=run, args=(n,)) for n in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(CEILING)
    assert results == {"a": ("done", True), "b": ("done", True)}


def test_watch_from_another_client(server, client):
    # One worker: the watched job queues behind a blocker, which is cancelled only once the other
    # client is watching, so the watcher sees every event of the job's run on any machine.
    blocker = client.submit("debug.sleep", {"seconds": 600, "steps": 6000})
    wait_state(client, blocker, "running")
    job = client.submit("debug.sleep", {"seconds": 0.5, "steps": 5})
    seen, released = [], []

    def release() -> bool:  # wait() polls this only once its watch is in place
        if not released:
            released.append(client.cancel(blocker))
        return False

    with Client(server.address, timeout=CEILING) as other:
        queued = other.job(job)
        info = other.wait(job, on_progress=seen.append, cancel=release)
    assert (queued.state, queued.queue_position) == ("queued", 1)
    assert info.state == "done" and info.id == job and info.fraction == 1.0
    assert {p.job_id for p in seen} == {job}
    assert [(p.state, p.stage, p.fraction) for p in seen] == [
        ("running", "starting", 0.0),
        *[("running", "sleeping", f) for f in (0.0, 0.2, 0.4, 0.6, 0.8)],
        ("done", "done", 1.0)]
    assert [p.message for p in seen if p.stage == "sleeping"] == [
        f"step {i} of 5" for i in range(1, 6)]
    assert client.wait(job).state == "done" and client.wait(blocker).state == "cancelled"


def test_reconnect_and_resume_a_partial_fetch(tmp_path):
    with EmbeddedServer(tmp_path / "data", kinds=debug_kinds(), chunk_bytes=4096) as srv:
        with Client(srv.address, timeout=CEILING) as c:
            job = c.submit("debug.sleep", {"seconds": 0, "frames": 40, "vertices": 200})
            assert c.wait(job).state == "done"
            out = tmp_path / "partial"
            assembler = ResultAssembler(out)
            for chunk in c.stream_result(job):
                assembler.add(chunk)
                if chunk.index == 5:
                    break  # the connection drops here
        assert assembler.next_chunk == 6 and not assembler.complete
        with Client(srv.address, timeout=CEILING) as fresh:
            starts = []
            folder = fresh.fetch(job, out, on_chunk=lambda ch: starts.append(ch.index))
            assert starts[0] == 6 and starts[-1] == assembler.count - 1
            whole = fresh.fetch(job, tmp_path / "whole")
        np.testing.assert_array_equal(open_result(folder).mesh.vertices,
                                      open_result(whole).mesh.vertices)
        assert open_result(folder).mesh.vertices.shape == (40, 200, 3)


def test_restart_keeps_finished_results_and_marks_running_jobs_interrupted(tmp_path):
    """A clean stop (tests/cli has the SIGKILL case)."""
    data = tmp_path / "data"
    with EmbeddedServer(data, kinds=debug_kinds()) as srv, \
            Client(srv.address, timeout=CEILING) as c:
        done = c.submit("debug.sleep", {"seconds": 0, "frames": 3})
        assert c.wait(done).state == "done"
        running = c.submit("debug.sleep", {"seconds": 600, "steps": 6000, "write_first": True})
        wait_stage(c, running, "sleeping")
    assert not any((data / "jobs" / running / "result").iterdir())
    with EmbeddedServer(data, kinds=debug_kinds()) as srv, \
            Client(srv.address, timeout=CEILING) as c:
        jobs = {j.id: j for j in c.jobs()}
        assert jobs[done].state == "done"
        assert jobs[running].state == "interrupted"
        assert jobs[running].error == {"code": "interrupted",
                                       "message": "the server was shut down"}
        result = open_result(c.fetch(done, tmp_path / "again"))
        assert result.mesh.frame_count == 3
    assert sorted(p.name for p in (data / "jobs" / running).iterdir()) == [
        "inputs", "job.json", "result", "worker.log"]


def test_delete(client):
    job = client.submit("debug.sleep", {"seconds": 10, "steps": 100})
    wait_state(client, job, "running")
    with pytest.raises(ServerError, match="cancel it before deleting") as err:
        client.delete(job)
    assert err.value.code == "job_active"
    client.cancel(job)
    client.wait(job)
    client.delete(job)
    with pytest.raises(ServerError, match="no job") as err:
        client.job(job)
    assert err.value.code == "unknown_job"


@pytest.mark.parametrize("kind, params, inputs, code, match", [
    ("debug.nope", {}, [], "unknown_kind", "offers: debug.crash"),
    ("debug.sleep", {"seconds": "soon"}, [], "bad_param", "'seconds' = 'soon'.*a number in"),
    ("debug.sleep", {"seconds": -1}, [], "bad_param", r"in \[0, 3600\]"),
    ("debug.sleep", {"speed": 2}, [], "bad_param", "unknown parameter 'speed'; accepted:"),
    ("debug.echo", {}, [], "bad_input", "takes 1 input"),
])
def test_bad_submissions_get_clear_errors(client, kind, params, inputs, code, match):
    with pytest.raises(ServerError, match=match) as err:
        client.submit(kind, params, inputs)
    assert err.value.code == code
    assert client.ping() > 0  # still serving


def test_large_input_is_uploaded_in_chunks(client, tmp_path):
    big = tmp_path / "big.bin"
    size = 17 * 1024 * 1024 + 123
    big.write_bytes(np.random.default_rng(0).integers(0, 255, size, dtype=np.uint8).tobytes())
    stages = []
    job = client.submit("debug.echo", {}, [big], on_progress=stages.append)
    assert sum(p.state == "uploading" for p in stages) == 3
    info = client.wait(job)
    assert info.state == "done" and info.result["extra"]["input_bytes"] == size


def test_version_mismatch_is_refused_with_a_clear_error(server):
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(server.address)
    frames = encode(Message("ping"))
    sock.send_multipart([b"A4D/2.0", *frames[1:]])
    assert sock.poll(CEILING * 1000)
    reply = decode(sock.recv_multipart())
    sock.close()
    assert reply.status == "error" and reply.error["code"] == "version_mismatch"
    assert "2.0" in reply.error["message"] and PROTOCOL_VERSION in reply.error["message"]


def test_client_refuses_a_server_of_another_major_version():
    ctx = zmq.Context.instance()
    fake = ctx.socket(zmq.ROUTER)
    port = fake.bind_to_random_port("tcp://127.0.0.1")

    def answer():
        if fake.poll(CEILING * 1000):
            ident, _, header, _ = fake.recv_multipart()
            body = json.dumps({"type": "ping", "id": "s", "reply_to": json.loads(header)["id"],
                               "status": "ok"}).encode()
            fake.send_multipart([ident, b"A4D/9.0", body, b"{}"])

    t = threading.Thread(target=answer)
    t.start()
    with pytest.raises(VersionMismatch, match="9.0"):
        Client(f"tcp://127.0.0.1:{port}", timeout=CEILING).ping()
    t.join()
    fake.close(linger=0)


def test_nothing_listening_is_refused_without_waiting_for_the_timeout():
    """The refusal is reported when the connection is refused, not when the client's (here
    hour-long) timeout runs out; the ceiling only catches a client that waits for the timeout."""
    probe = zmq.Context.instance().socket(zmq.ROUTER)
    port = probe.bind_to_random_port("tcp://127.0.0.1")
    probe.close(linger=0)
    outcome = []

    def ping() -> None:
        try:
            Client(f"tcp://127.0.0.1:{port}", timeout=3600).ping()
        except ConnectionFailed as err:
            outcome.append(err)

    t = threading.Thread(target=ping, daemon=True)
    t.start()
    t.join(CEILING)
    assert not t.is_alive(), "the client waited for its timeout instead of seeing the refusal"
    (err,) = outcome
    assert err.code == "refused" and f"127.0.0.1:{port}: connection refused" in str(err)


def test_an_idle_client_of_a_flapping_server_never_blocks_the_context(monkeypatch, tmp_path):
    """Regression (a 22-minute loaded CI run): libzmq's I/O thread sends monitor events with a
    blocking send. A client left idle while its server came and went filled a bounded monitor
    pipe (about 2000 events), the context's I/O thread blocked for good, and every later client
    of the process got "nothing is listening". Here the "server" accepts and drops each
    connection (2+ events per attempt, retried every millisecond) far past that bound; the
    attempts must keep coming, and another socket of the same context must still connect."""
    import blender_addon.core.client as client_mod

    monkeypatch.setattr(client_mod, "RECONNECT_IVL_MS", 1)
    monkeypatch.setattr(client_mod, "RECONNECT_IVL_MAX_MS", 1)
    ctx = zmq.Context()  # private: a regression here must not take the suite's context down
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(20.0)
    port = listener.getsockname()[1]
    idle = Client(f"tcp://127.0.0.1:{port}", context=ctx)
    attempts = 0
    try:
        for attempts in range(1, 1601):  # >= 3200 events, well past 1000 + 1000
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                pytest.fail(f"the client stopped reconnecting after {attempts - 1} attempts: "
                            "its unread monitor events blocked the context's I/O thread")
            conn.close()
        listener.close()
        with EmbeddedServer(tmp_path / "data", kinds=debug_kinds()) as srv, \
                Client(srv.address, timeout=CEILING, context=ctx) as other:
            assert other.ping() >= 0
    except BaseException:
        _POISONED.append(ctx)  # its I/O thread may be stuck: terminating it would hang
        raise
    else:
        idle.close()
        ctx.term()
    finally:
        listener.close()


_POISONED: list[zmq.Context] = []


_LATER_SERVER_SCRIPT = """
import sys
from pathlib import Path
from backend.jobs.registry import builtin_kinds, debug_kinds
from backend.server.embedded import EmbeddedServer
from blender_addon.core.client import Client

root = Path(sys.argv[1])
first = {k: v for k, v in builtin_kinds().items() if k == "creature.procedural"}
for name, kinds, kind, params in [("a", first, "creature.procedural", {"frames": 1}),
                                  ("b", debug_kinds(), "debug.sleep", {"seconds": 0})]:
    with EmbeddedServer(root / name, kinds=kinds) as srv, Client(srv.address, timeout=120) as c:
        job = c.submit(kind, params)
        assert c.wait(job).state == "done"
        print((srv.server.store.job_dir(job) / "worker.log").read_text())
"""


def test_a_later_server_of_the_process_gets_warm_workers_too(tmp_path):
    """Regression (an order-dependent failure): the fork server is one per process and the first
    engine to start it named what it imports. A first server with other kinds (here only
    creature.procedural) left a later debug-kinds server's workers cold. Run in a fresh process,
    so the suite's own servers cannot have started the fork server first."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _LATER_SERVER_SCRIPT, str(tmp_path)],
                          capture_output=True, text=True, timeout=CEILING)
    assert done.returncode == 0, done.stderr
    logs = [line for line in done.stdout.splitlines() if "starting in pid" in line]
    assert len(logs) == 2 and all("imported ahead: yes" in line for line in logs), logs


def test_bad_address_is_named():
    with pytest.raises(ConnectionFailed, match="'localhost:5555' is not a ZeroMQ address"):
        Client("localhost:5555")


#: A timeout is the subject of the next two tests: the client's silence timeout (3 s) is ten
#: heartbeat intervals (0.3 s) and shorter than the job's silence (4 s, a sleep: never shorter).
QUIET_TIMEOUT_S, QUIET_JOB_S = 3.0, 4.0


def test_heartbeats_keep_a_quiet_wait_alive(client):
    client.timeout = QUIET_TIMEOUT_S
    job = client.submit("debug.sleep", {"seconds": QUIET_JOB_S, "steps": 1})
    assert client.wait(job).state == "done"


def test_curve_authentication(tmp_path):
    from backend.cli.main import main
    from blender_addon.core.client_types import AuthRejected, CurveConfig

    keys = tmp_path / "keys"
    assert main(["keys", str(keys), "--client", "alice"]) == 0
    stranger = tmp_path / "stranger"
    assert main(["keys", str(stranger), "--client", "mallory"]) == 0
    with EmbeddedServer(tmp_path / "data", kinds=debug_kinds(), curve_keys=keys) as srv:
        good = CurveConfig.from_files(str(keys / "server.key"), str(keys / "alice.key_secret"))
        with Client(srv.address, timeout=CEILING, curve=good) as c:
            assert c.hello().curve is True
        bad = CurveConfig.from_files(str(keys / "server.key"),
                                     str(stranger / "mallory.key_secret"))
        with pytest.raises(AuthRejected, match="rejected"):  # reported when the handshake fails
            Client(srv.address, timeout=CEILING, curve=bad).ping()
        # Without keys no answer can come: whatever the client has seen after 2 s is one of these.
        with pytest.raises((AuthRejected, ConnectionFailed)):
            Client(srv.address, timeout=2).ping()


def test_non_loopback_bind_without_keys_warns(tmp_path, caplog):
    from backend.server.config import is_loopback

    assert is_loopback("tcp://127.0.0.1:5555") and is_loopback("tcp://[::1]:5555")
    assert is_loopback("ipc:///tmp/x") and not is_loopback("tcp://0.0.0.0:5555")
    caplog.set_level("WARNING", logger="anim4d.server")
    with EmbeddedServer(tmp_path, bind="tcp://0.0.0.0:*", kinds=debug_kinds()):
        pass
    assert "WITHOUT CurveZMQ" in caplog.text


def test_wait_with_timeout_and_cancel_polling_survives_a_long_quiet_job(client):
    from blender_addon.core.client_types import WaitTimeout

    client.timeout = QUIET_TIMEOUT_S  # heartbeats keep it alive; progress comes only at the start
    job = client.submit("debug.sleep", {"seconds": QUIET_JOB_S, "steps": 1})
    with pytest.raises(WaitTimeout) as err:
        client.wait(job, timeout=0.5)  # the job sleeps 4 s: still running then, on any machine
    assert err.value.code == "wait_timeout"
    assert client.wait(job, cancel=lambda: False).state == "done"


def test_attachments_named_in_the_manifest_travel_with_the_result(tmp_path):
    """Every file a manifest names reaches the client, in chunks, resumably."""
    from shared.manifest import read_manifest, write_manifest
    from shared.stream import ResultReader

    folder = tmp_path / "result"
    folder.mkdir()
    from backend.jobs.api import JobContext, mesh_result
    from backend.jobs.debug import _strip

    ctx = JobContext("f" * 32, folder, tmp_path)
    m = mesh_result(ctx, _strip(5, 40), "debug.sleep", {})
    blob = np.random.default_rng(3).integers(0, 255, 10_000, dtype=np.uint8)
    (folder / "extra").mkdir()
    blob.tofile(folder / "extra" / "vector.bin")
    (folder / "empty.json").write_bytes(b"")
    m.files.update({"vector": "extra/vector.bin", "note": "empty.json"})
    write_manifest(folder, m)
    reader = ResultReader(folder, chunk_bytes=4096)
    assert [a["role"] for a in reader.attachments] == ["vector", "note"]
    assert reader.count == 1 + 1 + 3 + 1  # header, frames, 3 file pieces, the empty file
    out = ResultAssembler(tmp_path / "out")
    chunks = list(reader)
    for chunk in chunks[:3]:
        out.add(chunk)
    resumed = ResultAssembler(tmp_path / "out")
    for chunk in chunks[resumed.next_chunk:]:
        resumed.add(chunk)
    got = resumed.finish()
    assert (got / "extra" / "vector.bin").read_bytes() == blob.tobytes()
    assert (got / "empty.json").read_bytes() == b""
    assert open_result(got).mesh.frame_count == 5 and read_manifest(got).files == m.files


def test_attachment_paths_cannot_escape_the_result_folder(tmp_path):
    from shared.errors import FormatError
    from shared.stream import Chunk

    asm = ResultAssembler(tmp_path / "out")
    evil = Chunk(3, 4, "file", {"chunk": 3, "count": 4, "part": "file", "role": "x",
                                "path": "../../etc/evil", "offset": 0, "size": 1},
                 {"data": np.zeros(1, np.uint8)})
    with pytest.raises(FormatError, match="only paths inside the result folder"):
        asm.add(evil)


@pytest.mark.parametrize("warm", [True, False])
def test_each_job_gets_its_own_process_warm_or_cold(tmp_path, warm):
    """Warm (the default): each job's process is forked with the method's modules already
    imported; cold: a fresh interpreter imports them. Either way, one process per job."""
    with EmbeddedServer(tmp_path / "data", kinds=debug_kinds(), warm_workers=warm) as srv, \
            Client(srv.address, timeout=CEILING) as c:
        jobs = [c.submit("debug.sleep", {"seconds": 0}) for _ in range(3)]
        assert [c.wait(j).state for j in jobs] == ["done"] * 3
        logs = [worker_log(srv, j) for j in jobs]
        pids = {log.split("starting in pid ")[1].split(";")[0] for log in logs}
        assert len(pids) == 3
        ahead = "yes" if warm else "no"
        assert all(f"method modules imported ahead: {ahead}" in log for log in logs)
        assert all(srv.server.engine.records[j].method_s >= 0 for j in jobs)
        assert "method_s" not in c.job(jobs[0]).__dict__  # server-side only
