"""Resident actors (``serve --executor ray``, kinds with ``JobKind.resident``): jobs of such a
kind run one after another in one long-lived Ray actor that keeps their model loaded (the
second job's load is a cache hit, measured by the process's model cache); at the pool's limit
a job runs as a task; cancel, the kill past the grace (the actor is replaced), an actor killed
mid-job (retried), the idle timeout and a clean stop (the actors end). ``debug.resident`` loads
a file through the model cache as a method loads its weights (backend/jobs/debug.py)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from support import BLOCK, starts, until

from blender_addon.core.client import Client


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


def test_resident_jobs_reuse_one_actor_its_model_cancel_kill_and_stop(ray_server, tmp_path):
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
        # a job that ignores the cancel is killed past the grace with its actor, not retried;
        # the next job gets a new actor, which loads the model
        (pid,) = set(starts(srv, first.id))
        stubborn = resident(c, model, ignore_cancel=True, **BLOCK)
        until(lambda: c.job(stubborn).fraction > 0, what="the stubborn job to run")
        assert starts(srv, stubborn) == [pid]
        assert c.wait(stubborn, cancel=lambda: True, timeout=300).state == "cancelled"
        assert srv.server.engine.records[stubborn].attempts == 0
        until(lambda: not alive(pid), what="the actor to be killed")
        fresh = c.wait(resident(c, model), timeout=300)
    assert fresh.state == "done" and where(srv, fresh.id) == "actor"
    assert fresh.result["extra"]["pid"] != pid and fresh.result["extra"]["model_loads"] == 1
    srv.stop()  # a clean stop ends the resident actors
    until(lambda: not alive(fresh.result["extra"]["pid"]), what="the actor to end on stop")


def test_an_actor_killed_mid_job_is_retried_then_ends_when_idle(ray_server, tmp_path):
    model = tmp_path / "weights.bin"
    model.write_bytes(b"weights")
    srv = ray_server(retries=2, resident_idle_s=0.5)
    with Client(srv.address, timeout=120) as c:
        job = resident(c, model, seconds=1.0, steps=20)
        until(lambda: c.job(job).fraction > 0, what="the job to make progress")
        (pid,) = until(lambda: starts(srv, job), what="the actor's pid")
        os.kill(pid, signal.SIGKILL)
        events = []
        info = c.wait(job, on_progress=events.append, timeout=300)
    assert info.state == "done", info.error
    assert any("its worker died: its resident Ray actor died" in e.message for e in events)
    assert srv.server.engine.records[job].attempts == 1
    pids = starts(srv, job)
    assert len(pids) == 2 and pids[0] == pid and pids[1] != pid
    assert info.result["extra"]["pid"] == pids[1] and where(srv, job) == "actor"
    # idle past --resident-idle (0.5 s here), the new actor ends (and frees what it held)
    until(lambda: not alive(pids[1]), what="the idle actor to end")


def test_dnf_creature_jobs_keep_the_model_loaded_on_their_actor(ray_cluster, tmp_path):
    """The real method: two creature.sample jobs (the shipped tiny model) on one resident
    actor; the second finds the model and its generators loaded."""
    from backend.server.embedded import EmbeddedServer

    params = {"model": "tiny", "n": 1, "frames": 2, "fps": 10.0, "steps": 2,
              "resolution": 16}
    with EmbeddedServer(tmp_path / "data", executor="ray", heartbeat_s=0.3,
                        resident_actors=1) as srv:
        with Client(srv.address, timeout=120) as c:
            infos = [c.wait(c.submit("creature.sample", {**params, "seed": s}), timeout=300)
                     for s in (1, 2)]
        assert [i.state for i in infos] == ["done", "done"], [i.error for i in infos]
        logs = [(srv.server.store.job_dir(i.id) / "worker.log").read_text() for i in infos]
        assert all("runs on a resident Ray actor of 'dnf'" in log for log in logs)
        assert starts(srv, infos[0].id) == starts(srv, infos[1].id)
        assert "model cache: 2 load(s), 0 hit(s)" in logs[0]  # the model, its generators
        assert "model cache: 0 load(s), 2 hit(s)" in logs[1]
