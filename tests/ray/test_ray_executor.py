"""Jobs on a real (small, local) Ray cluster through the gateway: many clients at once, a Ray
worker killed mid-job, crashes past the retries, cancel, progress and preview events, fair share.
"""

from __future__ import annotations

import os
import signal
import threading

from support import BLOCK, starts, until

from blender_addon.core.client import Client

QUICK = {"seconds": 0.0, "steps": 2}





def test_twenty_clients_five_jobs_each_none_lost_or_duplicated(ray_server):
    srv = ray_server()
    results: dict[int, list] = {}
    failures: list[BaseException] = []

    def artist(n: int) -> None:
        try:
            with Client(srv.address, timeout=120) as c:
                ids = [c.submit("debug.sleep", {**QUICK, "vertices": 3 + n}) for _ in range(5)]
                results[n] = [(j, c.wait(j, timeout=300)) for j in ids]
        except BaseException as err:  # noqa: BLE001 - reported below
            failures.append(err)

    threads = [threading.Thread(target=artist, args=(n,)) for n in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    assert not failures, failures
    assert sorted(results) == list(range(20))
    ids = [j for jobs in results.values() for j, _ in jobs]
    assert len(ids) == 100 and len(set(ids)) == 100
    assert set(srv.server.engine.records) == set(ids)
    for n, jobs in results.items():
        for job_id, info in jobs:
            assert info.state == "done", (info.state, info.error)
            # each artist got its own job's result, made once, by one worker
            assert info.result["job_id"] == job_id
            assert info.result["counts"]["vertices"] == 3 + n
            assert len(starts(srv, job_id)) == 1
            assert (srv.server.store.result_dir(job_id) / "sequence.npz").is_file()
    clients = {srv.server.engine.records[j].client for j in ids}
    assert len(clients) == 20  # twenty shares, one per connection


def test_a_ray_worker_killed_mid_job_is_retried_and_completes(ray_server):
    srv = ray_server(retries=2)
    with Client(srv.address, timeout=120) as c:
        job = c.submit("debug.sleep", {"seconds": 3.0, "steps": 30})
        until(lambda: c.job(job).fraction > 0, what="the job to make progress")
        (pid,) = until(lambda: starts(srv, job), what="the worker's pid")
        os.kill(pid, signal.SIGKILL)
        info = c.wait(job, timeout=300)
    assert info.state == "done", info.error
    rec = srv.server.engine.records[job]
    assert rec.attempts == 1
    pids = starts(srv, job)
    assert len(pids) == 2 and pids[0] == pid and pids[1] != pid
    assert (srv.server.store.result_dir(job) / "manifest.json").is_file()


def test_a_job_whose_worker_always_dies_fails_after_its_retries(ray_server):
    srv = ray_server(retries=1)
    with Client(srv.address, timeout=120) as c:
        job = c.submit("debug.crash", {"after": 0.0})
        info = c.wait(job, timeout=300)
    assert info.state == "failed"
    assert info.error["code"] == "worker_died"
    assert "Ray worker process died" in info.error["message"]
    assert "tried 2 times" in info.error["message"]
    assert len(starts(srv, job)) == 2


def test_progress_previews_and_cancel_flow_back_from_ray(ray_server):
    srv = ray_server()
    progress, previews = [], []
    with Client(srv.address, timeout=120) as c:
        job = c.submit("debug.sleep", {**BLOCK, "preview": True})
        info = c.wait(job, on_progress=progress.append, on_preview=previews.append,
                      cancel=lambda: len(previews) >= 3, timeout=300)
        assert info.state == "cancelled"
        log = srv.server.store.job_dir(job) / "worker.log"
        assert f"job {job} cancelled" in log.read_text()  # it saw the cancel and stopped
        # a job that ignores the cancel is killed after the grace, and not retried
        stubborn = c.submit("debug.sleep", {**BLOCK, "ignore_cancel": True})
        info = c.wait(stubborn, cancel=lambda: c.job(stubborn).fraction > 0, timeout=300)
        assert info.state == "cancelled"
    assert srv.server.engine.records[stubborn].attempts == 0
    running = [p for p in progress if p.state == "running" and p.fraction > 0]
    assert running and all(p.stage == "sleeping" for p in running)
    steps = [p.step for p in previews]
    assert steps[:3] == sorted(steps[:3]) and len(previews) >= 3
    for p in previews:  # debug.sleep puts its one Gaussian at x = step - 1
        assert float(p.arrays["means"][0, 0, 0]) == p.step - 1


def test_fair_share_on_ray(ray_server):
    """A client with 50 queued jobs, then a client with 1: the single job starts within the
    next two slots."""
    srv = ray_server(workers=1)
    engine = srv.server.engine
    with Client(srv.address, timeout=120) as a, Client(srv.address, timeout=120) as b:
        blocker = a.submit("debug.sleep", BLOCK)
        until(lambda: a.job(blocker).state == "running", what="the blocker to run")
        batch = [a.submit("debug.sleep", QUICK) for _ in range(49)]
        single = b.submit("debug.sleep", QUICK)
        assert b.job(single).queue_position == 1
        a.cancel(blocker)
        assert b.wait(single, timeout=300).state == "done"
        started = engine.records[single].started
        before = [j for j in [blocker, *batch] if (engine.records[j].started or 1e300) < started]
        assert len(before) <= 2 and blocker in before
        for job in batch:
            a.cancel(job)


def test_stopping_the_gateway_ends_its_ray_tasks_and_marks_them_interrupted(ray_server):
    srv = ray_server()
    with Client(srv.address, timeout=120) as c:
        job = c.submit("debug.sleep", BLOCK)
        until(lambda: c.job(job).fraction > 0, what="the job to make progress")
    (pid,) = starts(srv, job)
    srv.stop()
    rec = srv.server.engine.records[job]
    assert rec.state == "interrupted" and rec.error["code"] == "interrupted"
    log = srv.server.store.job_dir(job) / "worker.log"
    until(lambda: f"job {job} cancelled" in log.read_text(), what="the task to see the cancel")
