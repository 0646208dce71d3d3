"""The ``anim4d`` command line against a real ``anim4d serve`` process on loopback."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from blender_addon.core.client import Client
from shared.protocol import PROTOCOL_VERSION
from shared.results import open_result

ANIM4D = [sys.executable, "-m", "backend.cli.main"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*ANIM4D, *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def served(tmp_path):
    """A real ``anim4d serve`` with the debug kinds; yields its address."""
    address = f"tcp://127.0.0.1:{free_port()}"
    proc = subprocess.Popen([*ANIM4D, "serve", "--bind", address, "--data-dir",
                             str(tmp_path / "data"), "--debug-kinds", "--cancel-grace", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    from blender_addon.core.client_types import ConnectionFailed

    end = time.monotonic() + 60
    while True:  # wait until it is up
        try:
            with Client(address, timeout=5) as c:
                c.hello()
            break
        except ConnectionFailed:
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < end, "anim4d serve did not come up"
            time.sleep(0.2)
    yield address, proc, tmp_path / "data"
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)


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
    out = run("ping", "--server", f"tcp://127.0.0.1:{free_port()}", "--timeout", "3")
    assert out.returncode == 1 and "connection refused" in out.stderr
    assert "Traceback" not in out.stderr


def test_ctrl_c_while_waiting_cancels_the_job(served):
    address, _, _ = served
    proc = subprocess.Popen([*ANIM4D, "submit", "debug.sleep", "--server", address, "--param",
                             "seconds=60", "steps=600", "--wait"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with Client(address, timeout=10) as c:
        end = time.monotonic() + 20
        while not [j for j in c.jobs() if j.state == "running"]:
            assert time.monotonic() < end
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
        assert proc.returncode == 130 and "cancelling job" in (err + _)
        assert [j.state for j in c.jobs()] == ["cancelled"]


def test_sigterm_stops_the_server_gracefully(served):
    address, proc, data = served
    with Client(address, timeout=10) as c:
        done = c.submit("debug.sleep", {"seconds": 0})
        assert c.wait(done).state == "done"
        running = c.submit("debug.sleep", {"seconds": 60, "steps": 60})
        end = time.monotonic() + 20
        while c.job(running).state != "running":
            assert time.monotonic() < end
            time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0
    log = proc.stdout.read()
    assert "SIGTERM received" in log
    assert (data / "jobs" / done / "result" / "manifest.json").is_file()
    import json

    state = json.loads((data / "jobs" / running / "job.json").read_text())["state"]
    assert state == "interrupted"


def test_console_script_is_installed():
    exe = Path(sys.executable).parent / "anim4d"
    assert exe.is_file() and os.access(exe, os.X_OK)
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=60)
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
