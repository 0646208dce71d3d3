"""The resident actors' pool policy (backend/server/ray_worker.py, ResidentPool) without a
cluster: actors stand in for Ray's, ``ray.kill`` is recorded. Reuse of the warmest idle actor
of the job's pool (method and resources), a new one up to the limit, an idle actor of another
method ended to make room, a task when all are busy, the idle timeout and a lowered limit."""

from __future__ import annotations

import itertools

import pytest
import ray

from backend.server import ray_worker

GPU = {"num_cpus": 1.0, "num_gpus": 1.0, "max_retries": 0, "name": "anim4d-x"}
CPU = {"num_cpus": 1.0, "num_gpus": 0.0}


class _Actor:
    ids = itertools.count()

    def __init__(self, method: str, options: dict):
        self.method, self.options, self.id = method, options, next(self.ids)


class _Class:
    def options(self, **res):
        self.res = res
        return self

    def remote(self, method: str) -> _Actor:
        return _Actor(method, self.res)


@pytest.fixture
def killed(monkeypatch):
    out: list[_Actor] = []
    monkeypatch.setattr(ray_worker, "resident_class", _Class)
    monkeypatch.setattr(ray, "kill", lambda handle, no_restart=True: out.append(handle))
    return out


def test_reuse_limit_room_and_tasks(killed):
    pool = ray_worker.ResidentPool(limit=2, idle_s=300.0)
    a = pool.acquire("dnf", GPU, "j1")
    assert a.handle.options == {"num_cpus": 1.0, "num_gpus": 1.0}  # the kind's resources only
    pool.release("j1", returned=True)
    assert pool.acquire("dnf", GPU, "j2") is a and a.jobs == 2  # reused
    b = pool.acquire("dnf", GPU, "j3")  # a is busy: a second actor (limit 2)
    assert b is not a
    assert pool.acquire("dnf", GPU, "j4") is None  # all busy at the limit: a task
    pool.release("j2", returned=True)
    # another method (or other resources) at the limit: the idle actor is ended for room
    c = pool.acquire("ds4d", CPU, "j5")
    assert killed == [a.handle] and c.pool[0] == "ds4d" and len(pool.slots) == 2
    # a job that died with its actor: the actor leaves the pool
    pool.release("j3", returned=False)
    assert killed == [a.handle, b.handle] and pool.slots == [c]
    # a kill (a cancel past its grace) ends the job's actor; unknown keys are not actors
    assert pool.kill("j5") and not pool.kill("nope")
    assert pool.slots == [] and killed[-1] is c.handle


def test_idle_timeout_and_a_lowered_limit(killed, monkeypatch):
    now = [100.0]
    monkeypatch.setattr(ray_worker.time, "monotonic", lambda: now[0])
    pool = ray_worker.ResidentPool(limit=3, idle_s=10.0)
    slots = [pool.acquire("dnf", GPU, f"j{i}") for i in range(3)]
    pool.release("j0", returned=True)
    now[0] = 105.0
    pool.release("j1", returned=True)
    pool.tidy()
    assert killed == []
    now[0] = 110.0  # j0's actor idle 10 s: ends; j1's (5 s) stays; j2's is busy
    pool.tidy()
    assert killed == [slots[0].handle] and pool.slots == slots[1:]
    pool.limit = 1  # a gateway restarted with fewer: the idle one over the limit ends
    pool.tidy()
    assert pool.slots == [slots[2]]
    pool.end_all()
    assert pool.slots == [] and killed[-1] is slots[2].handle
