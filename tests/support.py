"""Helpers several test folders share: polling with a ceiling, the bpy skip marker, a
debug.sleep that runs until cancelled, and the pids a job started in (its worker.log)."""

from __future__ import annotations

import importlib.util
import re
import time

import pytest

#: catches a hang, never a slow machine: no test asserts how fast something happens
CEILING = 120.0

requires_bpy = pytest.mark.skipif(importlib.util.find_spec("bpy") is None,
                                  reason="needs the bpy module (pip install bpy==5.0.1)")


def until(predicate, timeout: float = CEILING, what: str = "condition"):
    """Poll ``predicate`` until it is true and return its value (a bound against hangs, not a
    timing assertion)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


#: debug.sleep parameters of a job that runs until it is cancelled
BLOCK = {"seconds": 120.0, "steps": 1200}
_STARTS = re.compile(r"job (\w+) \(.*\) starting in pid (\d+)")


def starts(srv, job_id: str) -> list[int]:
    """The pids of the processes that started this job (its worker.log) on the embedded
    server ``srv``."""
    log = srv.server.store.job_dir(job_id) / "worker.log"
    text = log.read_text() if log.exists() else ""
    return [int(pid) for job, pid in _STARTS.findall(text) if job == job_id]
