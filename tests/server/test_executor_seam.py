"""The engine's executor seam without a Ray cluster: a gateway that cannot reach its cluster
fails each job with the reason, and keeps serving."""

from __future__ import annotations

import time

from backend.jobs.registry import debug_kinds
from backend.server.engine import JobEngine
from backend.server.ray_executor import RayExecutor
from backend.server.store import JobRecord, JobStore


def test_an_unreachable_ray_cluster_fails_jobs_with_the_reason(tmp_path, monkeypatch):
    def refuse(self):
        raise ConnectionError("no cluster at 10.0.0.9:6379")

    monkeypatch.setattr(RayExecutor, "_connect", refuse)
    store = JobStore(tmp_path)
    executor = RayExecutor("10.0.0.9:6379", slots=2)
    engine = JobEngine(store, debug_kinds(), executor=executor, retries=2)
    try:
        engine.start()
        rec = JobRecord(id="ab" * 8, kind="debug.sleep", params={"seconds": 0.0, "steps": 1})
        store.create(rec)
        engine.submit(rec)
        end = time.monotonic() + 60  # a bound against a hang, not a timing assertion
        while not rec.terminal:
            assert time.monotonic() < end, "the job never ended"
            engine.poll(0.05)
        assert rec.state == "failed" and rec.error["code"] == "worker_died"
        assert "could not connect to the Ray cluster (10.0.0.9:6379)" in rec.error["message"]
        assert "no cluster at" in rec.error["message"] and rec.attempts == 0
        assert engine.slots == 2 and not engine.busy
    finally:
        engine.shutdown()
