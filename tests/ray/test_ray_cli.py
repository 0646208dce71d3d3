"""``anim4d serve --executor ray``: a real gateway process on the session's Ray cluster."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

from blender_addon.core.client import Client
from blender_addon.core.client_types import ConnectionFailed

ANIM4D = [sys.executable, "-m", "backend.cli.main"]
CEILING = 120.0  # catches a hang, never a slow machine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_executor_ray_runs_jobs_on_the_cluster(ray_cluster, tmp_path):
    gcs = ray_cluster.get_runtime_context().gcs_address
    address = f"tcp://127.0.0.1:{free_port()}"
    proc = subprocess.Popen([*ANIM4D, "serve", "--bind", address, "--data-dir",
                             str(tmp_path / "data"), "--debug-kinds", "--executor", "ray",
                             "--ray-address", gcs, "--workers", "2", "--retries", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        end = time.monotonic() + CEILING
        while True:
            try:
                with Client(address, timeout=5) as c:
                    hello = c.request("hello", {"client": "test", "protocol": "1.1"}).content
                break
            except ConnectionFailed:
                assert proc.poll() is None, proc.stdout.read()
                assert time.monotonic() < end, "anim4d serve did not come up"
                time.sleep(0.2)
        assert hello["executor"] == "ray" and hello["workers"] == 2
        with Client(address, timeout=CEILING) as c:
            job = c.submit("debug.sleep", {"seconds": 0.0, "steps": 2})
            info = c.wait(job, timeout=CEILING)
        assert info.state == "done", info.error
        log = (tmp_path / "data" / "jobs" / job / "worker.log").read_text()
        assert "starting in pid" in log
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=CEILING)
    assert "Ray executor: cluster" in out, out


def test_serve_flags_are_checked(tmp_path):
    out = subprocess.run([*ANIM4D, "serve", "--data-dir", str(tmp_path), "--ray-address",
                          "127.0.0.1:6379"], capture_output=True, text=True, timeout=CEILING)
    assert out.returncode != 0 and "--ray-address needs --executor ray" in out.stderr
    assert "Traceback" not in out.stderr
    out = subprocess.run([*ANIM4D, "serve", "--data-dir", str(tmp_path), "--retries", "-1"],
                         capture_output=True, text=True, timeout=CEILING)
    assert out.returncode != 0 and "--retries -1" in out.stderr
