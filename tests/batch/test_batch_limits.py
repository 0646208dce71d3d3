"""A server's per-client limits slow a batch down; they never fail it."""

from __future__ import annotations

import io

from backend.batch.index import BatchEntry
from backend.batch.plan import BatchItem
from backend.cli.batch_cmds import run_jobs
from backend.cli.progress import ProgressDisplay
from backend.jobs.registry import debug_kinds
from backend.server.embedded import EmbeddedServer
from blender_addon.core.client import Client
from blender_addon.core.client_types import JobInfo, ServerError


def _batch(n: int, kind: str = "debug.sleep", **params) -> tuple[list, list]:
    items = [BatchItem(f"{i + 1}-x", kind, {k: str(v) for k, v in params.items()})
             for i in range(n)]
    return items, [BatchEntry.for_item(i) for i in items]


def test_a_queued_jobs_limit_makes_the_batch_wait_not_fail(tmp_path):
    items, entries = _batch(4, seconds=0.05)
    with EmbeddedServer(tmp_path / "data", kinds=debug_kinds(), max_queued_per_client=2) as srv, \
            Client(srv.address, timeout=60) as client:
        with ProgressDisplay("t", stream=io.StringIO()) as bar:
            run_jobs(client, items, entries, tmp_path / "out", bar)
        assert [e.state for e in entries] == ["done"] * 4
        assert len({e.job_id for e in entries}) == 4  # each submitted once
        assert all((tmp_path / "out" / e.result / "manifest.json").is_file() for e in entries)


class _RateLimited:
    """Refuses the first ``refusals`` submits with ``rate_limited``; its jobs end failed (so
    nothing is fetched)."""

    def __init__(self, refusals: int):
        self.refusals, self.submitted = refusals, []

    def submit(self, kind, params, inputs):
        if self.refusals:
            self.refusals -= 1
            raise ServerError("too many submits", "rate_limited")
        self.submitted.append(kind)
        return f"job{len(self.submitted)}"

    def wait(self, job_id, on_progress=None):
        return JobInfo(job_id, "debug.sleep", "failed", error={"code": "x", "message": "y"})


def test_a_submit_rate_limit_with_nothing_running_waits_and_retries(tmp_path):
    items, entries = _batch(2)
    client, naps = _RateLimited(refusals=3), []
    with ProgressDisplay("t", stream=io.StringIO()) as bar:
        run_jobs(client, items, entries, tmp_path, bar, sleep=naps.append)
    assert len(client.submitted) == 2 and len(naps) == 3
    assert [e.job_id for e in entries] == ["job1", "job2"]


def test_other_server_errors_still_stop_the_batch(tmp_path):
    import pytest

    items, entries = _batch(2, seconds="not a number")
    with EmbeddedServer(tmp_path / "data", kinds=debug_kinds()) as srv, \
            Client(srv.address, timeout=60) as client:
        with ProgressDisplay("t", stream=io.StringIO()) as bar, \
                pytest.raises(ServerError) as err:
            run_jobs(client, items, entries, tmp_path / "out", bar)
    assert err.value.code == "bad_param"
