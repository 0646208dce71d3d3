"""``serve --executor ray --result-store URL``: jobs whose Ray tasks get their inputs from, and put
their results in, a store reached by URL (fsspec), never the gateway's data folder.

How the tests know the workers do not use the gateway's folder: a Ray task is a function of
what it is sent, and the gateway's executor builds that in one place (``RayExecutor.task_args``);
the tests record what it sends and check that no path into the gateway's data folder is in it
(inputs go by name only), and the worker's log says where on its node it ran (a scratch folder
outside the data folder). Making the folder unreadable to the workers is not an option here:
the test cluster's workers run as the same user as the gateway, and as root in CI containers,
where permissions do not bind.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from pathlib import Path

from support import until

from backend.server.ray_executor import RayExecutor
from blender_addon.core.client import Client
from blender_addon.core.client_types import ConnectionFailed
from shared.results import open_result

ANIM4D = [sys.executable, "-m", "backend.cli.main"]
CEILING = 120.0  # catches a hang, never a slow machine


def strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in strings(v)]
    return []


def test_jobs_run_through_the_result_store_not_the_gateway_folder(ray_server, tmp_path,
                                                                  monkeypatch):
    sent = []
    real = RayExecutor.task_args

    def spy(self, job):
        out = real(self, job)
        sent.append(out)
        return out

    monkeypatch.setattr(RayExecutor, "task_args", spy)
    store = tmp_path / "store"
    srv = ray_server(result_store=f"file://{store}")
    data = srv.server.store.root.resolve()
    clip = tmp_path / "clip.bin"
    clip.write_bytes(b"z" * 37)
    with Client(srv.address, timeout=120) as c:
        echo = c.submit("debug.echo", {}, inputs=[clip])
        info = c.wait(echo, timeout=120)
        assert info.state == "done", info.error
        res = open_result(c.fetch(echo, tmp_path / "fetched"))
        assert res.mesh.vertices.shape[1] == 37  # the worker read the input the artist sent
        assert res.manifest.extra["input_bytes"] == 37
        # the store holds the completed result, marker written; the inputs were dropped
        assert (store / echo / "result.json").is_file()
        assert open_result(store / echo / "result").manifest.job_id == echo
        assert not (store / echo / "inputs").exists()
        # a later job takes it as a source: copied down from the store on its node ...
        first = c.submit("debug.resample", {"source": echo, "times": [0.0], "offset": 2.0})
        assert c.wait(first, timeout=120).state == "done"
        # ... or, where the store lost it, put there again from the gateway's own result
        (store / echo / "result.json").unlink()
        again = c.submit("debug.resample", {"source": echo, "times": [0.0], "offset": 3.0})
        info = c.wait(again, timeout=120)
        assert info.state == "done", info.error
        moved = open_result(c.fetch(again, tmp_path / "again")).mesh_sequence(1).vertices
        assert abs(moved[0, :, 0] - res.mesh.vertices[0, :, 0] - 3.0).max() < 1e-6
        c.delete(first)
    # the tasks got nothing pointing into the gateway's data folder
    assert len(sent) == 3
    for args, stage in sent:
        assert stage["url"] == f"file://{store}"
        for s in strings(args):
            assert str(data) not in s and str(srv.server.store.root) not in s, s
    assert sent[0][0][3] == ["clip.bin"] and sent[1][1]["sources"] == [echo]
    # the worker's log came back to the gateway: it ran in a scratch folder on its node
    log = (srv.server.store.job_dir(echo) / "worker.log").read_text()
    ran = re.search(r"ran in (\S+) on this node", log).group(1)
    assert not ran.startswith(str(data)) and "starting in pid" in log
    # a deleted job leaves the store too (the delete there is done in the background)
    until(lambda: not (store / first).exists())


def test_a_store_that_fails_fails_the_job_with_the_reason_and_serving_goes_on(ray_server,
                                                                             tmp_path):
    store = tmp_path / "store"
    srv = ray_server(result_store=f"file://{store}")
    clip = tmp_path / "clip.bin"
    clip.write_bytes(b"z" * 5)
    # the store becomes unusable: a file where its folder was (not a read-only folder: the tests
    # run as root in CI, where permissions do not bind)
    store.rename(tmp_path / "store.away")
    store.write_text("not a folder")
    with Client(srv.address, timeout=120) as c:
        # the worker cannot put its result there
        job = c.submit("debug.sleep", {"seconds": 0.0, "steps": 1})
        info = c.wait(job, timeout=120)
        assert info.state == "failed" and info.error["code"] == "job_failed"
        assert "the result could not be stored: copying the job's result to the result " \
               f"store file://{store} failed: NotADirectoryError" in info.error["message"]
        assert "Traceback" not in info.error["message"]
        assert not any(srv.server.store.result_dir(job).iterdir())
        # the gateway cannot put a job's inputs there
        echo = c.submit("debug.echo", {}, inputs=[clip])
        info = c.wait(echo, timeout=120)
        assert info.state == "failed" and info.error["code"] == "job_failed"
        assert "could not start the job: copying the job's inputs to the result store" \
               in info.error["message"]
        # the store back: the server served on
        store.unlink()
        (tmp_path / "store.away").rename(store)
        echo = c.submit("debug.echo", {}, inputs=[clip])
        info = c.wait(echo, timeout=120)
        assert info.state == "done", info.error
        assert info.result["extra"]["input_bytes"] == 5


def test_a_bad_result_store_is_refused_at_serve_start_in_one_line(tmp_path):
    (tmp_path / "afile").write_text("")
    for url, why in ((f"file://{tmp_path}/afile/store", "cannot be used: NotADirectoryError"),
                     ("nosuch://bucket/x", "Protocol not known: nosuch")):
        out = subprocess.run([*ANIM4D, "serve", "--data-dir", str(tmp_path / "data"),
                              "--executor", "ray", "--result-store", url],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 1 and "Traceback" not in out.stderr
        (line,) = [ln for ln in out.stderr.splitlines() if "error" in ln]  # one line
        assert line.startswith("anim4d: error: --result-store: result store " + url), line
        assert why in line
    out = subprocess.run([*ANIM4D, "serve", "--data-dir", str(tmp_path / "data"),
                          "--result-store", f"file://{tmp_path}/store"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "--result-store needs --executor ray" in out.stderr



def test_a_gateway_killed_and_restarted_takes_the_running_job_from_the_store(ray_cluster,
                                                                            tmp_path):
    gcs = ray_cluster.get_runtime_context().gcs_address
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    flag = ("--result-store", f"file://{tmp_path}/store")
    proc = serve_ray(address, tmp_path / "data", gcs, *flag)
    try:
        with Client(address, timeout=CEILING) as c:
            job = c.submit("debug.sleep", {"seconds": 2.0, "steps": 20, "vertices": 7})
            until(lambda: c.job(job).fraction > 0)
        proc.kill()
        proc.communicate(timeout=CEILING)
        proc = serve_ray(address, tmp_path / "data", gcs, *flag)
        with Client(address, timeout=CEILING) as c:
            info = c.wait(job, timeout=CEILING)
            assert info.state == "done", info.error
            assert c.request("job", job=job).content["job"]["attempts"] == 0  # not a retry
            res = open_result(c.fetch(job, tmp_path / "fetched"))
        assert res.mesh.vertices.shape[1] == 7
        assert (tmp_path / "store" / job / "result.json").is_file()
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.communicate(timeout=CEILING)


def serve_ray(address: str, data: Path, gcs: str, *more: str) -> subprocess.Popen:
    """``anim4d serve --executor ray`` on the session's cluster; returns once it answers."""
    proc = subprocess.Popen([*ANIM4D, "serve", "--bind", address, "--data-dir", str(data),
                             "--debug-kinds", "--executor", "ray", "--ray-address", gcs,
                             "--workers", "2", *more],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    end = time.monotonic() + CEILING
    while True:
        try:
            with Client(address, timeout=5) as c:
                c.request("hello", {"client": "test", "protocol": "1.1"})
                return proc
        except ConnectionFailed:
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < end, "anim4d serve did not come up"
            time.sleep(0.2)
