"""The ``anim4d`` command line against a real ``anim4d serve`` process on loopback."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from blender_addon.core.client import Client
from blender_addon.core.client_types import ServerError
from shared.protocol import PROTOCOL_VERSION
from shared.results import open_result

ANIM4D = [sys.executable, "-m", "backend.cli.main"]
#: a ceiling for what only has to happen eventually: it catches a hang, never a slow machine.
#: No test here asserts how fast something happens.
CEILING = 120.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(*args: str, timeout: float = CEILING) -> subprocess.CompletedProcess:
    if "--server" in args and "--timeout" not in args:  # a loaded machine answers late
        args = (*args, "--timeout", str(CEILING))
    return subprocess.run([*ANIM4D, *args], capture_output=True, text=True, timeout=timeout)


def serve(address: str, data: Path) -> subprocess.Popen:
    """Start ``anim4d serve`` with the debug kinds on ``data``; return once it answers."""
    proc = subprocess.Popen([*ANIM4D, "serve", "--bind", address, "--data-dir", str(data),
                             "--debug-kinds", "--cancel-grace", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    from blender_addon.core.client_types import ConnectionFailed

    end = time.monotonic() + CEILING
    while True:  # wait until it is up
        try:
            with Client(address, timeout=5) as c:
                c.hello()
            return proc
        except ConnectionFailed:
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < end, "anim4d serve did not come up"
            time.sleep(0.2)


def wait_until(condition, what: str) -> None:
    end = time.monotonic() + CEILING
    while not condition():
        assert time.monotonic() < end, f"never happened: {what}"
        time.sleep(0.05)


@pytest.fixture
def served(tmp_path):
    """A real ``anim4d serve`` with the debug kinds; yields its address."""
    address = f"tcp://127.0.0.1:{free_port()}"
    proc = serve(address, tmp_path / "data")
    yield address, proc, tmp_path / "data"
    if proc.poll() is None:
        proc.kill()
    proc.wait(CEILING)


def test_ping_kinds_submit_wait_fetch_jobs_delete(served, tmp_path):
    address, _, _ = served
    out = run("ping", "--server", address)
    assert out.returncode == 0 and f"protocol {PROTOCOL_VERSION}" in out.stdout
    out = run("kinds", "--server", address)
    assert "debug.sleep" in out.stdout and "--param seconds=" in out.stdout
    out = run("submit", "debug.sleep", "--server", address, "--param", "seconds=0.2",
              "frames=5", "--wait", "--out", str(tmp_path / "res"))
    assert out.returncode == 0, out.stderr
    assert "result:" in out.stdout
    assert "sleeping" in out.stderr  # plain progress lines when not on a terminal
    assert open_result(tmp_path / "res").mesh.frame_count == 5
    job_id = out.stdout.split("as job ")[1].split()[0]
    out = run("jobs", "--server", address)
    assert job_id[:12] in out.stdout and "done" in out.stdout
    out = run("fetch", job_id[:6], "--server", address, "--out", str(tmp_path / "again"))
    assert out.returncode == 0 and (tmp_path / "again" / "manifest.json").is_file()
    assert run("delete", job_id[:8], "--server", address).returncode == 0
    out = run("fetch", job_id[:8], "--server", address, "--out", str(tmp_path / "x"))
    assert out.returncode == 1 and "no job matches" in out.stderr


def test_errors_are_one_clear_line(served):
    address, _, _ = served
    out = run("submit", "debug.sleep", "--server", address, "--param", "seconds=lots")
    assert out.returncode == 1
    assert out.stderr.strip().count("\n") == 0
    assert "'seconds' = 'lots' is not accepted; expected a number" in out.stderr
    out = run("submit", "debug.sleep", "--server", address, "--param", "seconds")
    assert out.returncode == 1 and "expected NAME=VALUE" in out.stderr
    out = run("submit", "no.such.kind", "--server", address)
    assert out.returncode == 1 and "offers no job kind 'no.such.kind'" in out.stderr
    out = run("submit", "debug.fail", "--server", address, "--wait")
    assert out.returncode == 1 and "failed: failed on purpose" in out.stderr
    # Refused as soon as the connection is refused, not when the 600 s timeout runs out.
    out = run("ping", "--server", f"tcp://127.0.0.1:{free_port()}", "--timeout", "600")
    assert out.returncode == 1 and "connection refused" in out.stderr
    assert "Traceback" not in out.stderr


def test_ctrl_c_while_waiting_cancels_the_job(served):
    address, _, _ = served
    # A shell's background job (nohup, `&` without job control) ignores SIGINT, and a child
    # inherits that: restore the default, as a terminal's Ctrl-C finds it.
    proc = subprocess.Popen([*ANIM4D, "submit", "debug.sleep", "--server", address, "--param",
                             "seconds=600", "steps=6000", "--wait", "--timeout", str(CEILING)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    lines: list[str] = []

    def read() -> None:
        for line in proc.stdout:
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        # A progress line is printed from inside the wait: Ctrl-C now lands where it cancels.
        wait_until(lambda: any("sleeping" in line for line in lines), "the command waits")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(CEILING) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(CEILING)
    reader.join(CEILING)
    assert any("cancelling job" in line for line in lines), lines
    with Client(address, timeout=CEILING) as c:
        assert [j.state for j in c.jobs()] == ["cancelled"]


def test_sigterm_stops_the_server_gracefully(served):
    address, proc, data = served
    with Client(address, timeout=CEILING) as c:
        done = c.submit("debug.sleep", {"seconds": 0})
        assert c.wait(done).state == "done"
        running = c.submit("debug.sleep", {"seconds": 600, "steps": 600})
        wait_until(lambda: c.job(running).state == "running", "the job runs")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(CEILING) == 0
    log = proc.stdout.read()
    assert "SIGTERM received" in log
    assert (data / "jobs" / done / "result" / "manifest.json").is_file()
    import json

    state = json.loads((data / "jobs" / running / "job.json").read_text())["state"]
    assert state == "interrupted"


def served_bytes(c: Client, job: str) -> list[tuple[dict, dict[str, bytes]]]:
    """Every chunk the server streams for ``job``: its JSON content and its arrays' bytes."""
    return [(chunk.content, {k: v.tobytes() for k, v in chunk.arrays.items()})
            for chunk in c.stream_result(job)]


def files_under(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def process_gone(pid: int) -> bool:
    """True once ``pid`` has exited (a zombie nobody reaped counts as exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
def test_sigkill_mid_job_then_restart_on_the_same_data(tmp_path):
    """The server is killed with SIGKILL while a job runs (its result half-written) and another
    waits; a new server on the same data folder serves the finished result byte for byte, reports
    the killed job interrupted with nothing of its result left, and runs the queued job."""
    data, address = tmp_path / "data", f"tcp://127.0.0.1:{free_port()}"
    proc = serve(address, data)
    try:
        with Client(address, timeout=CEILING) as c:
            done = c.submit("debug.sleep", {"seconds": 0, "frames": 30, "vertices": 500})
            assert c.wait(done).state == "done"
            streamed = served_bytes(c, done)
            on_disk = files_under(data / "jobs" / done / "result")
            # One step: it reports "sleeping", then stays silent (as a long GPU step would),
            # so nothing but its server's death tells it to stop.
            killed = c.submit("debug.sleep", {"seconds": 600, "steps": 1, "frames": 4,
                                              "write_first": True})
            queued = c.submit("debug.sleep", {"seconds": 0, "frames": 3})
            # "sleeping" comes after the killed job has written its result files.
            wait_until(lambda: c.job(killed).stage == "sleeping", "the job wrote and sleeps")
            assert c.job(queued).state == "queued"
        log = (data / "jobs" / killed / "worker.log").read_text()
        worker = int(log.split("starting in pid ")[1].split(";")[0])
        assert not process_gone(worker)
        proc.kill()
        proc.wait(CEILING)
        # The worker does not outlive its server (it could write on into the job folder).
        wait_until(lambda: process_gone(worker), f"the orphaned worker {worker} exits")
        # Nothing half-written where results are served: the result folder of the killed job
        # holds nothing, even before a new server tidies up.
        assert not any((data / "jobs" / killed / "result").iterdir())
        assert "the server process is gone" in (data / "jobs" / killed / "worker.log").read_text()

        proc = serve(address, data)
        with Client(address, timeout=CEILING) as c:
            jobs = {j.id: j for j in c.jobs()}
            assert jobs[done].state == "done"
            assert jobs[killed].state == "interrupted"
            assert jobs[killed].error["code"] == "interrupted"
            assert "stopped while this job was running" in jobs[killed].error["message"]
            with pytest.raises(ServerError) as err:
                c.fetch(killed, tmp_path / "nothing")
            assert err.value.code == "not_done"
            assert c.wait(queued).state == "done"  # queued again, and run
            assert open_result(c.fetch(queued, tmp_path / "queued")).mesh.frame_count == 3
            assert served_bytes(c, done) == streamed
            assert files_under(data / "jobs" / done / "result") == on_disk
            assert open_result(c.fetch(done, tmp_path / "again")).mesh.vertices.shape == (
                30, 500, 3)
        job_dir = data / "jobs" / killed
        assert sorted(p.name for p in job_dir.iterdir()) == [
            "inputs", "job.json", "result", "worker.log"]
        assert not any((job_dir / "result").iterdir())
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        proc.wait(CEILING)


def test_console_script_is_installed():
    exe = Path(sys.executable).parent / "anim4d"
    assert exe.is_file() and os.access(exe, os.X_OK)
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=CEILING)
    assert out.returncode == 0 and "serve" in out.stdout and "export" in out.stdout


def test_bake_fetch_and_export_every_format(served, tmp_path):
    import numpy as np

    from backend.data.anime import write_anime
    from shared.meshseq import MeshSequence
    from shared.pc2 import read_pc2

    address, _, _ = served
    verts = np.random.default_rng(1).normal(size=(6, 30, 3)).astype(np.float32)
    src = write_anime(MeshSequence(verts, np.array([[0, 1, 2], [2, 3, 4]]), np.arange(6) / 30),
                      tmp_path / "wobble.anime")
    res = tmp_path / "res"
    out = run("submit", "sequence.bake", "--server", address, "--input", str(src), "--param",
              "fps=30", "--wait", "--out", str(res))
    assert out.returncode == 0, out.stderr
    assert sorted(p.name for p in res.iterdir()) == ["manifest.json", "sequence.npz"]
    np.testing.assert_allclose(open_result(res).mesh.vertices, verts, atol=1e-6)
    for fmt, target in [("pc2", "w.pc2"), ("anime", "w.anime"), ("npz", "w.npz"),
                        ("obj", "objs"), ("ply", "plys")]:
        done = run("export", str(res), "--format", fmt, "--out", str(tmp_path / target))
        assert done.returncode == 0, done.stderr
    np.testing.assert_allclose(read_pc2(tmp_path / "w.pc2")[0], verts, atol=1e-6)
    assert len(list((tmp_path / "objs").glob("*.obj"))) == 6
    bad = run("export", str(tmp_path), "--format", "obj", "--out", str(tmp_path / "x"))
    assert bad.returncode == 1 and "not a result folder" in bad.stderr


def test_job_errors_name_the_users_file_not_the_servers_path(served, tmp_path):
    address, _, _ = served
    junk = tmp_path / "broken.anime"
    junk.write_bytes(b"\x01\x00\x00\x00" * 2)
    out = run("submit", "sequence.bake", "--server", address, "--input", str(junk), "--wait")
    assert out.returncode == 1
    assert "broken.anime" in out.stderr and "jobs/" not in out.stderr and "inputs" not in out.stderr


def test_submit_a_job_typed_kind_by_prefix_with_a_list_of_times(served, tmp_path):
    """Protocol 1.1: a kind that takes a finished job (``job``) and times (``floats``)."""
    address, _, _ = served
    out = run("submit", "debug.sleep", "--server", address, "--param", "seconds=0", "steps=1",
              "frames=25", "vertices=10", "--wait", "--out", str(tmp_path / "src"))
    assert out.returncode == 0, out.stderr
    source = out.stdout.split("as job ")[1].split()[0]
    out = run("submit", "debug.resample", "--server", address, "--param",
              f"source={source[:7]}", "times=0,0.5,1", "--wait", "--out", str(tmp_path / "r"))
    assert out.returncode == 0, out.stderr
    res, src = open_result(tmp_path / "r"), open_result(tmp_path / "src").mesh
    assert res.manifest.params["source"] == source
    assert res.manifest.params["times"] == [0.0, 0.5, 1.0] and res.sequence_count == 2
    assert (tmp_path / "r" / "sequence_1.npz").is_file()  # the second sequence was fetched
    assert (res.mesh_sequence(0).vertices == src.vertices[[0, 12, 24]]).all()
    moved = res.mesh_sequence(1).vertices
    assert (moved[..., 0] == src.vertices[[0, 12, 24]][..., 0] + 1.0).all()
    out = run("kinds", "--server", address)
    assert "--param times=...  a list of 1 to 10000 numbers" in out.stdout
    busy = run("submit", "debug.sleep", "--server", address, "--param", "seconds=60",
               "steps=600")
    busy_id = busy.stdout.split("as job ")[1].split()[0]
    for params, message in [
        ([f"source={source}", "times=0,x"], "'times': element 1 = 'x' is not a number"),
        ([f"source={source}", "times=0,-1"], "'times': element 1 = '-1' is out of range"),
        (["source=ffffffffff"], "'source': no job 'ffffffffff' on this server"),
        (["source=nope"], "'source' = 'nope' is not accepted"),
        ([f"source={busy_id[:8]}"], f"'source': job {busy_id} is (queued|running); only a "
                                    "finished \\(done\\) job can be used"),
    ]:
        out = run("submit", "debug.resample", "--server", address, "--param", *params)
        assert out.returncode == 1, params
        assert out.stderr.strip().count("\n") == 0 and "Traceback" not in out.stderr
        assert re.search(message, out.stderr), (message, out.stderr)
    assert run("cancel", busy_id[:8], "--server", address).returncode == 0
