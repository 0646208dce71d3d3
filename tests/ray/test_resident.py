"""Resident actors (``serve --executor ray``, kinds with ``JobKind.resident``): jobs of such a
kind run one after another in one long-lived Ray actor that keeps their model loaded (the
second job's load is a cache hit, measured by the process's model cache); at the pool's limit
a job runs as a task; cancel, the kill past the grace (the actor is replaced), an actor killed
mid-job (retried), the idle timeout and a clean stop (the actors end). ``debug.resident`` loads
a file through the model cache as a method loads its weights (backend/jobs/debug.py)."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

from support import until

from blender_addon.core.client import Client

BLOCK = {"seconds": 120.0, "steps": 1200}  # runs until cancelled
STARTS = re.compile(r"job (\w+) \(.*\) starting in pid (\d+)")


def starts(srv, job_id: str) -> list[int]:
    """The pids of the processes that started this job (its worker.log)."""
    log = srv.server.store.job_dir(job_id) / "worker.log"
    text = log.read_text() if log.exists() else ""
    return [int(pid) for job, pid in STARTS.findall(text) if job == job_id]


def alive(pid: int) -> bool:
    """A live process (not gone, not a zombie)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def where(srv, job_id: str) -> str:
    """How the job ran, from its log: 'actor' or 'task'."""
    text = (srv.server.store.job_dir(job_id) / "worker.log").read_text()
    if f"job {job_id} runs on a resident Ray actor of 'debug'" in text:
        return "actor"
    return "task" if f"job {job_id} runs as a Ray task" in text else "?"


def resident(c: Client, model: Path, **params) -> str:
    return c.submit("debug.resident", {"model_file": str(model), "seconds": 0.0, "steps": 1,
                                       **params})


def test_resident_jobs_reuse_one_actor_and_its_loaded_model(ray_server, tmp_path):
    model = tmp_path / "weights.bin"
    model.write_bytes(os.urandom(1 << 16))
    srv = ray_server(resident_actors=1)
    with Client(srv.address, timeout=120) as c:
        first, second = (c.wait(resident(c, model), timeout=300) for _ in range(2))
        for info in (first, second):
            assert info.state == "done", info.error
            assert where(srv, info.id) == "actor"
        # the same process ran both; the first loaded the model, the second found it loaded
        assert first.result["extra"]["pid"] == second.result["extra"]["pid"]
        assert starts(srv, first.id) == starts(srv, second.id)
        counts = [(i.result["extra"]["model_loads"], i.result["extra"]["model_hits"])
                  for i in (first, second)]
        assert counts == [(1, 0), (0, 1)]
        log = (srv.server.store.job_dir(second.id) / "worker.log").read_text()
        assert "its job 2)" in log and "model cache: 0 load(s), 1 hit(s)" in log
        # a model file replaced: loaded again (never served stale), in the same actor
        model.write_bytes(os.urandom(1 << 16))
        third = c.wait(resident(c, model), timeout=300)
        assert third.result["extra"]["model_loads"] == 1
        assert third.result["extra"]["pid"] == first.result["extra"]["pid"]
        # the one actor busy (cooperative cancel below): another resident job runs as a task,
        # and a kind that is not resident runs as a task
        busy = resident(c, model, **BLOCK)
        until(lambda: c.job(busy).fraction > 0, what="the actor's job to run")
        assert starts(srv, busy) == starts(srv, first.id)
        extra = c.wait(resident(c, model), timeout=300)
        plain = c.wait(c.submit("debug.sleep", {"seconds": 0.0, "steps": 1}), timeout=300)
        assert extra.state == plain.state == "done"
        assert where(srv, extra.id) == where(srv, plain.id) == "task"
        assert c.wait(busy, cancel=lambda: True, timeout=300).state == "cancelled"
        assert f"job {busy} cancelled" in (srv.server.store.job_dir(busy) /
                                          "worker.log").read_text()
        # after a cooperative cancel the actor serves on, model loaded
        after = c.wait(resident(c, model), timeout=300)
        assert after.result["extra"]["pid"] == first.result["extra"]["pid"]
        assert after.result["extra"]["model_hits"] == 1


def test_a_stubborn_actor_job_is_killed_with_its_actor_which_is_replaced(ray_server, tmp_path):
    model = tmp_path / "weights.bin"
    model.write_bytes(b"weights")
    srv = ray_server(resident_actors=1)
    with Client(srv.address, timeout=120) as c:
        stubborn = resident(c, model, ignore_cancel=True, **BLOCK)
        until(lambda: c.job(stubborn).fraction > 0, what="the job to run")
        (pid,) = starts(srv, stubborn)
        info = c.wait(stubborn, cancel=lambda: True, timeout=300)
        assert info.state == "cancelled"
        assert srv.server.engine.records[stubborn].attempts == 0  # a kill is not retried
        until(lambda: not alive(pid), what="the actor to be killed")
        fresh = c.wait(resident(c, model), timeout=300)
    assert fresh.state == "done" and where(srv, fresh.id) == "actor"
    assert fresh.result["extra"]["pid"] != pid and fresh.result["extra"]["model_loads"] == 1


def test_an_actor_killed_mid_job_is_retried_and_completes(ray_server, tmp_path):
    model = tmp_path / "weights.bin"
    model.write_bytes(b"weights")
    srv = ray_server(retries=2)
    with Client(srv.address, timeout=120) as c:
        job = resident(c, model, seconds=2.0, steps=40)
        until(lambda: c.job(job).fraction > 0, what="the job to make progress")
        (pid,) = until(lambda: starts(srv, job), what="the actor's pid")
        os.kill(pid, signal.SIGKILL)
        info = c.wait(job, timeout=300)
    assert info.state == "done", info.error
    assert srv.server.engine.records[job].attempts == 1
    pids = starts(srv, job)
    assert len(pids) == 2 and pids[0] == pid and pids[1] != pid
    assert info.result["extra"]["pid"] == pids[1] and where(srv, job) == "actor"


def test_idle_actors_end_and_a_clean_stop_ends_them(ray_server, tmp_path):
    model = tmp_path / "weights.bin"
    model.write_bytes(b"weights")
    idle = ray_server(resident_idle_s=0.5)
    stopped = ray_server()
    pids = []
    for srv in (idle, stopped):
        with Client(srv.address, timeout=120) as c:
            info = c.wait(resident(c, model), timeout=300)
        assert info.state == "done" and where(srv, info.id) == "actor"
        pids.append(info.result["extra"]["pid"])
    until(lambda: not alive(pids[0]), what="the idle actor to end")
    assert alive(pids[1])  # (default idle: 300 s)
    stopped.stop()
    until(lambda: not alive(pids[1]), what="the stopped gateway's actor to end")
