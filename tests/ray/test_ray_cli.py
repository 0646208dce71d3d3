"""``anim4d serve --executor ray``: a real gateway process on the session's Ray cluster; killed
outright and restarted, it re-attaches to the job still running there."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from pathlib import Path

from support import until

from blender_addon.core.client import Client
from blender_addon.core.client_types import ConnectionFailed

ANIM4D = [sys.executable, "-m", "backend.cli.main"]
CEILING = 120.0  # catches a hang, never a slow machine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_ray(address: str, data: Path, gcs: str) -> tuple[subprocess.Popen, dict]:
    """``anim4d serve --executor ray`` on the session's cluster; returns once it answers."""
    proc = subprocess.Popen([*ANIM4D, "serve", "--bind", address, "--data-dir", str(data),
                             "--debug-kinds", "--executor", "ray", "--ray-address", gcs,
                             "--workers", "2", "--retries", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    end = time.monotonic() + CEILING
    while True:
        try:
            with Client(address, timeout=5) as c:
                return proc, c.request("hello", {"client": "test", "protocol": "1.1"}).content
        except ConnectionFailed:
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < end, "anim4d serve did not come up"
            time.sleep(0.2)


def test_serve_executor_ray_runs_jobs_on_the_cluster(ray_cluster, tmp_path):
    gcs = ray_cluster.get_runtime_context().gcs_address
    address = f"tcp://127.0.0.1:{free_port()}"
    proc, hello = serve_ray(address, tmp_path / "data", gcs)
    try:
        assert hello["executor"] == "ray" and hello["workers"] == 2
        out = subprocess.run([*ANIM4D, "submit", "debug.sleep", "--server", address,
                              "--timeout", str(CEILING), "--param", "seconds=0", "--priority",
                              "3", "--wait"], capture_output=True, text=True, timeout=CEILING)
        assert out.returncode == 0, out.stderr
        job = re.search(r"as job (\w+)", out.stdout).group(1)
        with Client(address, timeout=CEILING) as c:
            info = c.job(job)
            assert info.state == "done", info.error
            assert c.request("job", job=job).content["job"]["priority"] == 3
            # the gateway killed outright while a job runs on the cluster
            running = c.submit("debug.sleep", {"seconds": 5.0, "steps": 50})
            # and one on a resident actor (a kind that keeps its model loaded)
            (tmp_path / "model.bin").write_bytes(b"weights")
            actor_job = c.submit("debug.resident", {"model_file": str(tmp_path / "model.bin"),
                                                    "seconds": 5.0, "steps": 50})
            until(lambda: c.job(running).fraction > 0 and c.job(actor_job).fraction > 0)
        log = tmp_path / "data" / "jobs" / running / "worker.log"
        pid = int(re.search(r"starting in pid (\d+)", log.read_text()).group(1))
        actor_log = tmp_path / "data" / "jobs" / actor_job / "worker.log"
        actor_pid = int(re.search(r"starting in pid (\d+)", actor_log.read_text()).group(1))
        proc.kill()
        out, _ = proc.communicate(timeout=CEILING)
        assert "Ray executor: cluster" in out, out
        # restarted on the same data: the finished result is served again, and the job still
        # running on the cluster is followed to its end: the same run, not a retry
        proc, _ = serve_ray(address, tmp_path / "data", gcs)
        with Client(address, timeout=CEILING) as c:
            assert c.wait(running, timeout=CEILING).state == "done"
            info = c.request("job", job=running).content["job"]
            assert info["attempts"] == 0 and info["result"]["job_id"] == running
            assert c.wait(actor_job, timeout=CEILING).state == "done"
            info = c.request("job", job=actor_job).content["job"]
            assert info["attempts"] == 0 and info["result"]["extra"]["pid"] == actor_pid
            assert c.job(job).state == "done"
            c.fetch(job, tmp_path / "fetched")
            c.fetch(running, tmp_path / "fetched-running")
        assert (tmp_path / "fetched" / "manifest.json").is_file()
        assert (tmp_path / "fetched-running" / "sequence.npz").is_file()
        assert [int(p) for p in re.findall(r"starting in pid (\d+)", log.read_text())] == [pid]
        assert "runs on a resident Ray actor" in actor_log.read_text()
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.communicate(timeout=CEILING)


def test_serve_flags_are_checked(tmp_path):
    out = subprocess.run([*ANIM4D, "serve", "--data-dir", str(tmp_path), "--ray-address",
                          "127.0.0.1:6379"], capture_output=True, text=True, timeout=CEILING)
    assert out.returncode != 0 and "--ray-address needs --executor ray" in out.stderr
    assert "Traceback" not in out.stderr
    out = subprocess.run([*ANIM4D, "serve", "--data-dir", str(tmp_path), "--retries", "-1"],
                         capture_output=True, text=True, timeout=CEILING)
    assert out.returncode != 0 and "--retries -1" in out.stderr
    out = subprocess.run([*ANIM4D, "serve", "--data-dir", str(tmp_path), "--resident-actors",
                          "-2"], capture_output=True, text=True, timeout=CEILING)
    assert out.returncode != 0 and "--resident-actors -2: need 0 or more" in out.stderr
