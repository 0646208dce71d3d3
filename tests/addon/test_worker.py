"""The non-blocking path without a Blender UI: worker thread, queues and the budgeted drain."""

from __future__ import annotations

import queue
import threading
import time
from types import SimpleNamespace

import pytest
import zmq

from blender_addon.core.client_types import ConnectionFailed, JobInfo, ProgressInfo
from blender_addon.core.jobs_state import JobsState
from blender_addon.core.worker import Command, Event, Worker, drain

HANG_S = 120.0  # ceiling on waits for something that must happen: only catches a hang


def _events(n: int) -> queue.Queue:
    q: queue.Queue = queue.Queue()
    for i in range(n):
        q.put(Event("progress", f"job{i}"))
    return q


def test_drain_stops_after_the_message_that_overruns_its_budget() -> None:
    now = [0.0]
    handled = []

    def handle(ev: Event) -> None:  # each message "takes" 4 ms of the fake clock
        handled.append(ev.job_id)
        now[0] += 0.004

    q = _events(10)
    taken = drain(q, 0.010, clock=lambda: now[0], handle=handle)
    # 4 ms, 8 ms (< 10 ms: go on), 12 ms (overran: stop after it)
    assert [e.job_id for e in taken] == ["job0", "job1", "job2"] == handled
    assert q.qsize() == 7
    assert drain(q, 1.0, clock=lambda: now[0]) and q.empty()  # no handler: just takes them
    assert drain(q, 0.01) == []


def test_drain_takes_one_slow_message_even_with_no_budget_left() -> None:
    now = [0.0]
    q = _events(3)
    taken = drain(q, 0.0, clock=lambda: now[0])
    assert len(taken) == 1 and q.qsize() == 2


class SlowFakeClient:
    """Stands in for ``Client``: progress trickles in slowly, as from a busy server."""

    def __init__(self, steps: int = 5, delay: float = 0.03, stall_at: int | None = None):
        self.steps, self.delay, self.stall_at = steps, delay, stall_at
        self.cancelled: list[str] = []
        self.closed = False
        self.thread_names: set[str] = set()
        self.network = threading.Event()  # set: the "network" answers; clear: submit hangs
        self.network.set()
        self.submit_entered = threading.Event()
        self.submit_returned = threading.Event()

    def submit(self, kind, params, inputs=(), on_progress=None):
        self.thread_names.add(threading.current_thread().name)
        self.submit_entered.set()
        self.network.wait(HANG_S)
        self.submit_returned.set()
        return "job-1"

    def wait(self, job_id, on_progress=None, cancel=None, timeout=None, on_preview=None):
        for i in range(self.steps):
            time.sleep(self.delay)
            if i == self.stall_at:  # a long job: it only ends by being cancelled
                end = time.monotonic() + HANG_S
                while not cancel() and time.monotonic() < end:
                    time.sleep(0.005)
            if cancel is not None and cancel():
                self.cancelled.append(job_id)
                return JobInfo(job_id, "debug.sleep", "cancelled")
            on_progress(ProgressInfo(job_id, "running", "sleeping", (i + 1) / self.steps))
        return JobInfo(job_id, "debug.sleep", "done", fraction=1.0)

    def jobs(self):
        return []

    def cancel(self, job_id):
        return JobInfo(job_id, "debug.sleep", "cancelled")

    def fetch(self, job_id, out_dir, on_chunk=None):
        for i in range(3):
            on_chunk(SimpleNamespace(part="frames", frame_start=i, frame_stop=i + 1))
        return out_dir

    def close(self):
        self.closed = True


def _pump_until(w: Worker, state: JobsState, done, timeout: float = HANG_S) -> list[Event]:
    """What the Blender timer does: drain with a small budget, repeatedly, until ``done()``.

    ``timeout`` only catches a hang (it fails the test); nothing here depends on speed.
    """
    seen: list[Event] = []
    end = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < end, f"gave up waiting after {timeout} s (a hang)"
        seen += drain(w.events, 0.005, handle=state.apply)
        time.sleep(0.005)
    seen += drain(w.events, 1.0, handle=state.apply)
    return seen


def test_worker_thread_streams_progress_without_blocking_the_caller() -> None:
    fake = SlowFakeClient()
    w = Worker(lambda: fake, poll_s=0.05)
    w.start()
    state = JobsState()
    fake.network.clear()  # the server does not answer yet
    w.put("submit", kind="debug.sleep", params={})
    # queuing returned while the worker thread is (or is about to be) stuck in the client call
    assert not fake.submit_returned.is_set()
    assert fake.submit_entered.wait(HANG_S)
    assert not fake.submit_returned.is_set() and "anim4d-worker" in fake.thread_names
    fake.network.set()
    seen = _pump_until(w, state, lambda: state.jobs.get("job-1") and state.jobs["job-1"].terminal)
    fractions = [e.data.fraction for e in seen if e.type == "progress"]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(fractions) == 5
    assert state.jobs["job-1"].state == "done" and state.jobs["job-1"].can_import
    assert fake.thread_names == {"anim4d-worker"}  # the client is only used on the worker
    w.put("fetch", job_id="job-1", out_dir="/nowhere")
    seen = _pump_until(w, state, lambda: state.jobs["job-1"].result_dir)
    assert [e.type for e in seen] == ["chunk"] * 3 + ["fetched"]
    assert state.jobs["job-1"].frames_received == 3
    w.stop()
    assert fake.closed and not w.alive


def test_cancel_reaches_the_client_wait() -> None:
    fake = SlowFakeClient(steps=200, delay=0.01, stall_at=1)
    w = Worker(lambda: fake, poll_s=0.05)
    w.start()
    state = JobsState()
    w.put("submit", kind="debug.sleep", params={})
    _pump_until(w, state, lambda: "job-1" in state.jobs and state.jobs["job-1"].fraction > 0)
    w.put("cancel", job_id="job-1")
    _pump_until(w, state, lambda: state.jobs["job-1"].terminal)
    assert fake.cancelled == ["job-1"] and state.jobs["job-1"].state == "cancelled"
    w.stop()


def test_failures_become_error_events_and_the_worker_goes_on() -> None:
    calls = []

    def factory():
        calls.append(1)
        raise ConnectionFailed("tcp://127.0.0.1:9: connection refused", "refused")

    w = Worker(factory)
    w.execute(Command("hello"))
    w.execute(Command("nonsense"))
    state = JobsState()
    events = drain(w.events, 1.0, handle=state.apply)
    assert [e.type for e in events] == ["error", "error"]
    state.apply(events[0])
    assert events[0].code == "refused" and "tcp://127.0.0.1:9" in events[0].data
    assert "nonsense" in events[1].data and "Traceback" not in events[1].data
    assert state.connection == "error" and "refused" in state.last_error
    assert len(calls) == 1


def test_version_mismatch_is_reported_with_the_address() -> None:
    """A raw ROUTER that answers in protocol 9.0: the worker reports a version mismatch."""
    from blender_addon.core.client import Client

    ctx = zmq.Context.instance()
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    address = f"tcp://127.0.0.1:{port}"

    def serve() -> None:
        import json

        if router.poll(int(HANG_S * 1000)):
            ident, *frames = router.recv_multipart()
            req = json.loads(frames[1])
            header = {"type": "hello", "id": "x", "reply_to": req["id"], "status": "ok"}
            router.send_multipart([ident, b"A4D/9.0", json.dumps(header).encode(), b"{}"])

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    w = Worker(lambda: Client(address, timeout=HANG_S))
    w.execute(Command("hello"))
    (event,) = drain(w.events, 1.0)
    t.join(HANG_S)
    router.close()
    assert event.type == "error" and event.code == "version_mismatch"
    assert address in event.data and "9.0" in event.data


@pytest.mark.slow
def test_real_server_progress_fetch_and_cancel(tmp_path) -> None:
    import backend.server.embedded as server_mod
    from backend.jobs.registry import debug_kinds
    from blender_addon.core.client import Client

    srv = server_mod.start_embedded_server(tmp_path / "data", kinds=debug_kinds())
    try:
        w = Worker(lambda: Client(srv.address, timeout=10.0), poll_s=0.1)
        w.start()
        state = JobsState()
        w.put("hello")
        w.put("submit", kind="debug.sleep",
              params={"seconds": 0.8, "steps": 8, "frames": 6, "vertices": 30})
        seen = _pump_until(w, state, lambda: any(j.terminal for j in state.jobs.values()))
        (job,) = state.jobs.values()
        assert state.connection == "connected" and "debug.sleep" in [k.name for k in state.kinds]
        assert job.state == "done", state.last_error
        progress = [e.data.fraction for e in seen if e.type == "progress" and e.job_id]
        assert len(progress) >= 3 and progress == sorted(progress), (progress, state.last_error)
        w.put("fetch", job_id=job.id, out_dir=str(tmp_path / "result"))
        seen = _pump_until(w, state, lambda: job.result_dir)
        types = [e.type for e in seen if e.job_id == job.id and e.type != "job"]
        assert types[-1] == "fetched" and "chunk" in types  # "job" (done) may come in between
        assert (tmp_path / "result" / "manifest.json").is_file(), state.last_error
        w.put("submit", kind="debug.sleep", params={"seconds": 30, "steps": 300})
        _pump_until(w, state, lambda: len(state.jobs) == 2 and state.active_ids())
        (second,) = state.active_ids()
        w.put("cancel", job_id=second)
        _pump_until(w, state, lambda: state.jobs[second].terminal)
        assert state.jobs[second].state == "cancelled", state.last_error
        w.stop()
    finally:
        srv.stop()
