"""The job engine: a FIFO queue and up to ``workers`` jobs running, each in its own process.

A process per job isolates the server from a method's crash or out-of-memory death. Cancel is
cooperative first (an event the method sees at its next progress step); a job still alive after
``cancel_grace_s`` is killed. The engine is driven by the server loop calling :meth:`poll`; it
reports every change through ``on_change(record, event)`` with event ``progress`` or ``state``.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait

from backend.jobs.registry import JobKind
from backend.server.store import JobRecord, JobStore
from backend.server.worker import worker_main

log = logging.getLogger("anim4d.engine")


@contextlib.contextmanager
def _main_hidden():
    """Start workers without re-running the caller's ``__main__`` in them.

    A spawned child re-imports the parent's main script when it has a ``__file__``: a pipeline
    script that embeds the server without an ``if __name__ == "__main__"`` guard would run again in
    every worker. The worker's target lives in an importable module, so the child needs no main.
    """
    main = sys.modules.get("__main__")
    saved = {k: main.__dict__[k] for k in ("__file__", "__spec__") if k in main.__dict__}
    for key in saved:
        if key == "__spec__":
            main.__spec__ = None
        else:
            del main.__dict__[key]
    try:
        yield
    finally:
        main.__dict__.update(saved)
ChangeHook = Callable[[JobRecord, str], None]


@dataclass
class _Running:
    process: mp.process.BaseProcess
    conn: Connection
    cancel: object
    cancel_at: float | None = None
    final: tuple | None = None


class JobEngine:
    def __init__(self, store: JobStore, kinds: dict[str, JobKind], workers: int = 1,
                 cancel_grace_s: float = 5.0, on_change: ChangeHook | None = None):
        self.store = store
        self.kinds = kinds
        self.workers = max(1, workers)
        self.cancel_grace_s = cancel_grace_s
        self.on_change: ChangeHook = on_change or (lambda rec, ev: None)
        self.records: dict[str, JobRecord] = {}
        self.queue: deque[str] = deque()
        self.running: dict[str, _Running] = {}
        self._mp = mp.get_context("spawn")

    # ---- state ---------------------------------------------------------------------------
    def restore(self) -> list[str]:
        """Reload jobs from disk after a restart; returns lines worth logging."""
        records, notes = self.store.load_all()
        for rec in records:
            if rec.state == "running":
                rec.state, rec.finished = "interrupted", time.time()
                rec.error = {"code": "interrupted",
                             "message": "the server stopped while this job was running"}
                self.store.clear_result(rec.id)
                self.store.save(rec)
            elif rec.state == "queued":
                self.queue.append(rec.id)
            self.records[rec.id] = rec
        notes.append(f"restored {len(records)} jobs ({len(self.queue)} queued)")
        return notes

    def queue_position(self, job_id: str) -> int | None:
        try:
            return self.queue.index(job_id) + 1
        except ValueError:
            return None

    def info(self, job_id: str) -> dict:
        return self.records[job_id].info(self.queue_position(job_id))

    @property
    def busy(self) -> bool:
        return bool(self.running or self.queue)

    # ---- commands ------------------------------------------------------------------------
    def submit(self, record: JobRecord) -> None:
        self.records[record.id] = record
        self.store.save(record)
        self.queue.append(record.id)
        self.on_change(record, "state")
        self._start_ready()

    def cancel(self, job_id: str) -> JobRecord:
        rec = self.records[job_id]
        if rec.state == "queued":
            self.queue.remove(job_id)
            self._finish(rec, "cancelled")
        elif rec.state == "running":
            run = self.running[job_id]
            if run.cancel_at is None:
                run.cancel.set()
                run.cancel_at = time.monotonic()
                rec.message = "cancelling"
                self.on_change(rec, "progress")
        return rec

    def delete(self, job_id: str) -> None:
        self.records.pop(job_id)
        self.store.delete(job_id)

    # ---- driving -------------------------------------------------------------------------
    def poll(self, timeout: float = 0.0) -> None:
        """Read worker messages (waiting up to ``timeout``), reap exits, kill overdue cancels."""
        if self.running:
            conns = [r.conn for r in self.running.values()]
            for conn in wait(conns, timeout=timeout):
                self._read(conn)
        now = time.monotonic()
        for job_id, run in list(self.running.items()):
            if run.final is None and run.cancel_at and now - run.cancel_at > self.cancel_grace_s:
                log.warning("job %s ignored cancel for %.1fs: killing it", job_id,
                            self.cancel_grace_s)
                run.process.kill()
                run.final = ("cancelled",)
            if run.final is not None or not run.process.is_alive():
                self._reap(job_id, run)
        self._start_ready()

    def _read(self, conn: Connection) -> None:
        job_id = next(j for j, r in self.running.items() if r.conn is conn)
        run = self.running[job_id]
        try:
            while conn.poll():
                msg = conn.recv()
                if msg[0] == "progress":
                    rec = self.records[job_id]
                    rec.stage, rec.fraction, rec.message = msg[1], float(msg[2]), msg[3]
                    self.on_change(rec, "progress")
                else:
                    run.final = msg
        except (EOFError, OSError):
            pass  # the worker exited; _reap decides what that means

    def _reap(self, job_id: str, run: _Running) -> None:
        if run.final is None:
            run.process.join(timeout=0.5)
            if run.process.is_alive():
                return
            try:  # a final message may still sit in the pipe
                while run.conn.poll():
                    msg = run.conn.recv()
                    if msg[0] != "progress":
                        run.final = msg
            except (EOFError, OSError):
                pass
        run.process.join(timeout=2.0)
        run.conn.close()
        del self.running[job_id]
        rec = self.records[job_id]
        final = run.final
        if final is None:
            code = run.process.exitcode
            if run.cancel_at is not None:
                self._finish(rec, "cancelled")
            else:
                why = (f"killed by signal {-code}" if code is not None and code < 0
                       else f"exit code {code}")
                hint = " (possibly out of memory)" if code in (-9, 137) else ""
                log.warning("job %s: worker died (%s); its log: %s", job_id, why,
                            self.store.job_dir(job_id) / "worker.log")
                self._finish(rec, "failed", ("worker_died",
                             f"the worker process running {rec.kind} died: {why}{hint}; "
                             "see the job's worker.log on the server"))
        elif final[0] == "done":
            rec.result = final[1]
            self._finish(rec, "done")
        elif final[0] == "cancelled":
            self._finish(rec, "cancelled")
        else:
            self._finish(rec, "failed", (final[1], final[2]))

    def _finish(self, rec: JobRecord, state: str, error: tuple[str, str] | None = None) -> None:
        rec.state, rec.finished = state, time.time()
        if state == "done":
            rec.fraction, rec.stage, rec.message = 1.0, "done", ""
        else:
            self.store.clear_result(rec.id)
            rec.message = "" if state == "cancelled" else rec.message
        rec.error = {"code": error[0], "message": error[1]} if error else None
        self.store.clear_work(rec.id)
        self.store.save(rec)
        log.info("job %s %s%s", rec.id, state, f": {error[1]}" if error else "")
        self.on_change(rec, "state")

    def _start_ready(self) -> None:
        while self.queue and len(self.running) < self.workers:
            job_id = self.queue.popleft()
            rec = self.records[job_id]
            kind = self.kinds.get(rec.kind)
            if kind is None:
                self._finish(rec, "failed", ("unknown_kind",
                             f"this server no longer offers job kind {rec.kind!r}"))
                continue
            self.store.work_dir(job_id).mkdir(parents=True, exist_ok=True)
            parent, child = self._mp.Pipe(duplex=False)
            cancel = self._mp.Event()
            inputs = [str(self.store.inputs_dir(job_id) / n) for n in rec.inputs]
            proc = self._mp.Process(
                target=worker_main, name=f"anim4d-job-{job_id[:8]}", daemon=True,
                args=(job_id, kind.runner, rec.params, inputs, str(self.store.job_dir(job_id)),
                      child, cancel),
                kwargs={"models": kind.model_folders},
            )
            with _main_hidden():
                proc.start()
            child.close()
            self.running[job_id] = _Running(proc, parent, cancel)
            rec.state, rec.started = "running", time.time()
            rec.stage, rec.fraction = "starting", 0.0
            self.store.save(rec)
            self.on_change(rec, "state")
            for other in self.queue:  # queue positions moved up
                self.on_change(self.records[other], "progress")

    def shutdown(self, grace_s: float = 2.0) -> None:
        """Stop every running job; mark them interrupted (finished results stay on disk)."""
        for run in self.running.values():
            run.cancel.set()
        deadline = time.monotonic() + grace_s
        for run in self.running.values():
            run.process.join(timeout=max(0.0, deadline - time.monotonic()))
            if run.process.is_alive():
                run.process.kill()
                run.process.join(timeout=2.0)
            run.conn.close()
        for job_id in list(self.running):
            rec = self.records[job_id]
            rec.state, rec.finished = "interrupted", time.time()
            rec.error = {"code": "interrupted", "message": "the server was shut down"}
            self.store.clear_result(job_id)
            self.store.save(rec)
        self.running.clear()
