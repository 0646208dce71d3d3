"""The job engine: a queue (priorities, then fair share between clients, per-client limits: see
:mod:`backend.server.scheduling`) and up to ``workers`` jobs running, each in its own process,
or, with a :class:`~backend.server.ray_executor.RayExecutor`, as tasks (or on resident actors,
for the kinds that keep models loaded: ``JobKind.resident``) on a Ray cluster.

The Ray executor plugs in where processes are started: its ``launch`` gives the engine an inbox
that reads like a worker's pipe, a handle that reads like its process (``is_alive``, ``kill``,
``join``, ``death_reason``) and a cancel flag, so the job records, the state machine, events,
cancel with its grace and the store are the same in both modes. A job whose worker died is run
again up to ``retries`` times (the Ray executor's ``--retries``; 0 in local mode) before it fails.

A process per job isolates the server from a method's crash or out-of-memory death. So that a
small job does not wait for Python to start and import its method, job processes are *warm*: a
fork server (started when the engine starts, before any job arrives) imports the worker and every
offered kind's modules once, and forks each job's process from that ready state in milliseconds.
Still one process per job, never reused: the fork server holds no model, so each local job loads
its models (the kinds declared ``resident`` keep theirs loaded only on the Ray executor's resident
actors; see :mod:`backend.models.cache`). ``warm=False`` starts a fresh interpreter per job (the
old way; kept for comparison in ``bench/job_overhead.py`` and where fork servers do not exist).

Processes are started on a launcher thread, so the server loop never blocks on a start (the first
start waits for the fork server to finish its imports). Cancel is cooperative first (an event the
method sees at its next progress step); a job still alive after ``cancel_grace_s`` is killed,
unless it said it is saving its latest state as the result (``finishing``), which gives it
``finish_grace_s`` more. A job is reported finished as soon as its worker's final message
arrives; its process is reaped in the background but still holds its worker slot until it has
exited (its memory, its GPU). The engine is driven by the server loop calling :meth:`poll`; it
reports every change through ``on_change(record, event)`` with event ``progress``, ``state`` or
``preview`` (a running job's latest preview is in :attr:`JobEngine.previews`).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import queue
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait

from backend.jobs.registry import JobKind
from backend.server.scheduling import FairQueue
from backend.server.store import JobRecord, JobStore
from backend.server.worker import worker_main
from shared.errors import Anim4DError

log = logging.getLogger("anim4d.engine")
#: a worker still alive this long after its final message is killed
EXIT_GRACE_S = 30.0


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


def warm_modules(kinds: dict[str, JobKind]) -> list[str]:
    """What a warm worker imports ahead: the worker and each kind's runner module.

    Not what a runner imports lazily inside its function (DNF's torch): every server start, and
    every test that starts one, would pay for it (about 4 s of CPU, 270 MB), for jobs that run
    minutes; the small jobs that must start at once import nothing heavy lazily.
    """
    from backend.jobs.registry import builtin_runner_modules

    names = ["backend.server.worker"]
    names += [kind.runner.partition(":")[0] for kind in kinds.values()]
    # The fork server is one per process and the first engine to start it names its imports:
    # every built-in kind's module too, so a later server of the process (other kinds) is warm.
    names += builtin_runner_modules()
    return list(dict.fromkeys(names))


@dataclass
class _Running:
    args: tuple  # worker_main's arguments
    conn: Connection
    child: Connection | None  # the worker's end of the pipe; closed once the worker started
    cancel: object
    warm: bool
    launched: threading.Event = field(default_factory=threading.Event)
    process: mp.process.BaseProcess | None = None  # set by the launcher, then ``launched``
    launch_error: str | None = None
    cancel_at: float | None = None
    final: tuple | None = None
    finishing: bool = False


@dataclass
class _Exiting:
    process: mp.process.BaseProcess
    conn: Connection
    since: float


class _Launcher(threading.Thread):
    """Starts job processes off the server loop, in order."""

    def __init__(self, engine: JobEngine):
        super().__init__(name="anim4d-launcher", daemon=True)
        self.engine = engine
        self.todo: queue.Queue[_Running | None] = queue.Queue()

    def run(self) -> None:
        if self.engine.warm:
            self._warm_up()
        while (run := self.todo.get()) is not None:
            try:
                self._start(run)
            except Exception as err:  # noqa: BLE001 - reported as the job's failure
                log.exception("starting a worker process failed")
                run.launch_error = f"{type(err).__name__}: {err}"
            finally:
                run.child.close()
                run.launched.set()

    def _warm_up(self) -> None:
        """Start the fork server now, so that its imports are done before the first job."""
        from multiprocessing import forkserver

        try:
            forkserver.ensure_running()
        except Exception as err:  # noqa: BLE001 - fall back to a fresh process per job
            self._go_cold(err)

    def _go_cold(self, err: BaseException) -> None:
        log.warning("no warm worker (%s: %s): each job starts a fresh process", type(err).__name__,
                    err)
        self.engine.warm = False

    def _start(self, run: _Running) -> None:
        if run.warm and self.engine.warm:
            process = self.engine.make_process(run.args, warm=True)
            try:
                with _main_hidden():
                    process.start()
                run.process = process
                return
            except Exception as err:  # noqa: BLE001 - the fork server failed: go cold
                self._go_cold(err)
        process = self.engine.make_process(run.args, warm=False)
        with _main_hidden():
            process.start()
        run.process = process


class JobEngine:
    def __init__(self, store: JobStore, kinds: dict[str, JobKind], workers: int = 1,
                 cancel_grace_s: float = 5.0, on_change: ChangeHook | None = None,
                 warm: bool = True, finish_grace_s: float = 300.0, executor=None,
                 retries: int = 0, max_queued_per_client: int = 0,
                 max_running_per_client: int = 0):
        """``executor``: None runs jobs in local processes; a
        :class:`~backend.server.ray_executor.RayExecutor` runs them on a Ray cluster (same job
        records, queue, events and cancel). ``retries``: times a job whose worker died is run
        again before it fails. ``max_*_per_client``: 0 is no limit."""
        self.store = store
        self.kinds = kinds
        self.workers = max(1, workers)
        self.cancel_grace_s = cancel_grace_s
        self.finish_grace_s = finish_grace_s
        self.on_change: ChangeHook = on_change or (lambda rec, ev: None)
        self.records: dict[str, JobRecord] = {}
        self.queue = FairQueue()
        self.executor = executor
        self.retries = max(0, retries)
        self.max_queued_per_client = max(0, max_queued_per_client)
        self.max_running_per_client = max(0, max_running_per_client)
        self.running: dict[str, _Running] = {}
        self.previews: dict[str, tuple[dict, dict]] = {}  # job id -> latest (content, arrays)
        self.exiting: list[_Exiting] = []
        self.warm = warm and "forkserver" in mp.get_all_start_methods()
        self._cold = mp.get_context("spawn")
        self._warm = mp.get_context("forkserver") if self.warm else self._cold
        self._launcher: _Launcher | None = None

    # ---- state ---------------------------------------------------------------------------
    def start(self) -> None:
        """Start the launcher (and with it the warm worker's imports). Called once, by the
        server when it binds; :meth:`submit` calls it too if nobody did."""
        if self._launcher is not None:
            return
        if self.executor is not None:
            self.executor.start()
            self._launcher = True  # started: jobs go to the executor
            return
        if self.warm:
            # The fork server is one per process: the first engine to start it names what it
            # imports. An embedding process's later servers fork from it all the same.
            self._warm.set_forkserver_preload(warm_modules(self.kinds))
        self._launcher = _Launcher(self)
        self._launcher.start()

    def restore(self) -> list[str]:
        """Reload jobs from disk after a restart; returns lines worth logging."""
        records, notes = self.store.load_all()
        for rec in records:
            if rec.state == "running" and rec.run_key and self.executor is not None:
                # the Ray executor's tasks outlive a server killed outright: follow it again
                conn, process, cancel = self.executor.reattach(rec.run_key)
                run = _Running((rec.id,), conn, None, cancel, False, process=process)
                run.launched.set()
                self.running[rec.id] = run
                notes.append(f"job {rec.id}: re-attaching to its Ray task")
            elif rec.state == "running":
                rec.state, rec.finished = "interrupted", time.time()
                rec.error = {"code": "interrupted",
                             "message": "the server stopped while this job was running"}
                self.store.clear_result(rec.id)
                self.store.clear_work(rec.id)
                self.store.save(rec)
            elif rec.state == "queued":
                self.queue.append(rec.id, rec.client, rec.priority)
            elif rec.state != "done" and self.store.partial_dir(rec.id).exists():
                self.store.clear_result(rec.id)  # left by a server that died mid-way
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
        """Jobs running, queued, or a finished job's process still exiting."""
        return bool(self.running or self.queue or self.exiting)

    @property
    def slots(self) -> int:
        """Jobs that may run at once: ``workers``, or the executor's (Ray: jobs in flight)."""
        if self.executor is not None:
            return self.executor.slots
        return self.workers

    def check_limits(self, client: str) -> None:
        """Raise ``limit_reached`` if ``client`` may not queue one more job."""
        limit = self.max_queued_per_client
        if limit and self.queue.count(client) >= limit:
            raise Anim4DError(f"you have {self.queue.count(client)} jobs queued, this server's "
                              f"limit per client (--max-queued {limit}); submit more when some "
                              "have started", "limit_reached")

    def _positions(self) -> dict[str, int]:
        return {job_id: i for i, job_id in enumerate(self.queue)}

    def _notify_moved(self, before: dict[str, int], skip: str | None = None) -> None:
        """A progress event for each queued job whose queue position changed."""
        for i, job_id in enumerate(self.queue):
            if job_id != skip and before.get(job_id) != i:
                self.on_change(self.records[job_id], "progress")

    # ---- commands ------------------------------------------------------------------------
    def submit(self, record: JobRecord) -> None:
        self.records[record.id] = record
        self.store.save(record)
        before = self._positions()
        self.queue.append(record.id, record.client, record.priority)
        self.on_change(record, "state")
        self._notify_moved(before, skip=record.id)
        self._start_ready()

    def cancel(self, job_id: str) -> JobRecord:
        rec = self.records[job_id]
        if rec.state == "queued":
            before = self._positions()
            self.queue.remove(job_id)
            self._finish(rec, "cancelled")
            self._notify_moved(before)
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
        if self.executor is not None:
            self.executor.delete(job_id)  # its copy in a result store, if any

    # ---- driving -------------------------------------------------------------------------
    def poll(self, timeout: float = 0.0) -> None:
        """Read worker messages (waiting up to ``timeout``), finish jobs whose worker reported or
        died, kill overdue cancels, reap exited processes, start queued jobs."""
        conns = [r.conn for r in self.running.values() if r.launched.is_set()]
        if conns:
            ready = (self.executor.wait(conns, timeout) if self.executor is not None
                     else wait(conns, timeout=timeout))
            for conn in ready:
                self._read(conn)
        now = time.monotonic()
        for job_id, run in list(self.running.items()):
            if not run.launched.is_set():
                continue
            if run.launch_error is not None:
                del self.running[job_id]
                run.conn.close()
                self._finish(self.records[job_id], "failed", (
                    "worker_died", f"could not start a worker process: {run.launch_error}"))
                continue
            if getattr(run.process, "launch_error", None) is not None:  # the Ray executor's
                del self.running[job_id]
                self._finish(self.records[job_id], "failed", ("worker_died",
                             f"could not start the job: {run.process.launch_error}"))
                continue
            if run.final is None and run.cancel_at and now - run.cancel_at > self.cancel_grace_s:
                log.warning("job %s ignored cancel for %.1fs: killing it", job_id,
                            self.cancel_grace_s)
                run.process.kill()
                run.final = ("cancelled",)
            # one reading of is_alive: a worker that sends its final message and exits between
            # two readings would otherwise be completed without its message being drained
            alive = run.process.is_alive()
            if run.final is None and not alive:
                self._drain(run)  # a final message may still sit in the pipe
            if run.final is not None or not alive:
                self._complete(job_id, run)
        self._reap_exiting(now)
        self._start_ready()

    def _read(self, conn: Connection) -> None:
        job_id = next(j for j, r in self.running.items() if r.conn is conn)
        run = self.running[job_id]
        try:
            while run.final is None and conn.poll():
                msg = conn.recv()
                if msg[0] == "progress":
                    rec = self.records[job_id]
                    rec.stage, rec.fraction, rec.message = msg[1], float(msg[2]), msg[3]
                    self.on_change(rec, "progress")
                elif msg[0] == "finishing":
                    if run.cancel_at is not None and not run.finishing:
                        run.finishing = True
                        run.cancel_at = time.monotonic() + self.finish_grace_s
                elif msg[0] == "preview":
                    self.previews[job_id] = (msg[1], msg[2])
                    self.on_change(self.records[job_id], "preview")
                else:
                    run.final = msg
        except (EOFError, OSError):
            pass  # the worker exited; poll decides what that means

    @staticmethod
    def _drain(run: _Running) -> None:
        try:
            while run.final is None and run.conn.poll():
                msg = run.conn.recv()
                if msg[0] not in ("progress", "preview", "finishing"):
                    run.final = msg
        except (EOFError, OSError):
            pass

    def _complete(self, job_id: str, run: _Running) -> None:
        """The job is over (final message, or its process died): record the outcome now; the
        process, if still exiting, is reaped later."""
        del self.running[job_id]
        self.previews.pop(job_id, None)
        self.exiting.append(_Exiting(run.process, run.conn, time.monotonic()))
        rec = self.records[job_id]
        final = run.final
        if final is None:
            code = run.process.exitcode
            if run.cancel_at is not None:
                self._finish(rec, "cancelled")
            else:
                why = getattr(run.process, "death_reason", None) or (
                    f"killed by signal {-code}" if code is not None and code < 0
                    else f"exit code {code}")
                hint = " (possibly out of memory)" if code in (-9, 137) else ""
                log.warning("job %s: worker died (%s); its log: %s", job_id, why,
                            self.store.job_dir(job_id) / "worker.log")
                if rec.attempts < self.retries:
                    self._retry(rec, f"{why}{hint}")
                    return
                tries = (f" (tried {rec.attempts + 1} times)" if rec.attempts else "")
                self._finish(rec, "failed", ("worker_died",
                             f"the worker process running {rec.kind} died: {why}{hint}"
                             f"{tries}; see the job's worker.log on the server"))
        elif final[0] == "done":
            try:
                self.store.commit_result(job_id)
            except OSError as err:
                log.error("job %s: storing its result failed: %s", job_id, err)
                self._finish(rec, "failed", ("job_failed",
                             f"the server could not store the result: {err.strerror}"))
                return
            rec.result, rec.method_s = final[1], float(final[2])
            self._finish(rec, "done")
        elif final[0] == "cancelled":
            self._finish(rec, "cancelled")
        else:
            self._finish(rec, "failed", (final[1], final[2]))

    def _retry(self, rec: JobRecord, why: str) -> None:
        """Queue a job whose worker died again, ahead of its client's other jobs."""
        rec.attempts += 1
        rec.state, rec.started = "queued", None
        rec.stage, rec.fraction = "", 0.0
        rec.message = (f"retrying (attempt {rec.attempts + 1} of {self.retries + 1}): "
                       f"its worker died: {why}")
        log.warning("job %s: %s", rec.id, rec.message)
        self.store.clear_result(rec.id)
        before = self._positions()
        self.queue.append(rec.id, rec.client, rec.priority, front=True)
        self.store.save(rec)
        self.on_change(rec, "state")
        self._notify_moved(before, skip=rec.id)

    def _reap_exiting(self, now: float) -> None:
        for gone in list(self.exiting):
            if gone.process.is_alive():
                if now - gone.since < EXIT_GRACE_S:
                    continue
                log.warning("a finished job's worker (pid %s) did not exit: killing it",
                            gone.process.pid)
                gone.process.kill()
            gone.process.join(timeout=1.0)
            if gone.process.is_alive():
                continue
            gone.conn.close()
            self.exiting.remove(gone)

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

    def make_process(self, args: tuple, warm: bool) -> mp.process.BaseProcess:
        ctx = self._warm if warm else self._cold
        return ctx.Process(target=worker_main, name=f"anim4d-job-{args[0][:8]}", daemon=True,
                           args=args)

    def _blocked_clients(self) -> set[str]:
        """Clients at their running limit."""
        limit = self.max_running_per_client
        if not limit:
            return set()
        counts: dict[str, int] = {}
        for job_id in self.running:
            client = self.records[job_id].client
            counts[client] = counts.get(client, 0) + 1
        return {c for c, n in counts.items() if n >= limit}

    def _start_ready(self) -> None:
        while self.queue and len(self.running) + len(self.exiting) < self.slots:
            try:
                job_id = self.queue.popleft(self._blocked_clients())
            except IndexError:
                return  # every client with queued jobs is at its running limit
            rec = self.records[job_id]
            kind = self.kinds.get(rec.kind)
            if kind is None:
                self._finish(rec, "failed", ("unknown_kind",
                             f"this server no longer offers job kind {rec.kind!r}"))
                continue
            self.start()
            self.store.prepare_run(job_id)
            inputs = [str(self.store.inputs_dir(job_id) / n) for n in rec.inputs]
            if self.executor is not None:
                args = (job_id, kind.runner, rec.params, inputs, str(self.store.job_dir(job_id)),
                        None, None, kind.model_folders)
                sources = [rec.params[p.name] for p in kind.spec.job_params()
                           if rec.params.get(p.name)]
                conn, process, cancel = self.executor.launch(args, kind.resources, rec.attempts,
                                                             sources, kind.resident)
                rec.run_key = process.key
                run = _Running(args, conn, None, cancel, False, process=process)
                run.launched.set()
                self.running[job_id] = run
            else:
                parent, child = self._cold.Pipe(duplex=False)
                cancel = self._cold.Event()
                args = (job_id, kind.runner, rec.params, inputs,
                        str(self.store.job_dir(job_id)), child, cancel, kind.model_folders)
                run = _Running(args, parent, child, cancel, self.warm)
                self.running[job_id] = run
                self._launcher.todo.put(run)
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
        if isinstance(self._launcher, _Launcher):
            self._launcher.todo.put(None)
        deadline = time.monotonic() + grace_s
        for run in self.running.values():
            run.launched.wait(max(0.0, deadline - time.monotonic()))
        for run in self.running.values():
            if run.launched.is_set() and run.launch_error is None:
                run.process.join(timeout=max(0.0, deadline - time.monotonic()))
                if run.process.is_alive():
                    run.process.kill()
                    run.process.join(timeout=2.0)
            # not launched yet: the process, if it ever starts, sees the cancel and ends
            run.conn.close()
        for gone in self.exiting:
            if gone.process.is_alive():
                gone.process.kill()
            gone.process.join(timeout=2.0)
            gone.conn.close()
        self.exiting.clear()
        for job_id in list(self.running):
            rec = self.records[job_id]
            rec.state, rec.finished = "interrupted", time.time()
            rec.error = {"code": "interrupted", "message": "the server was shut down"}
            self.store.clear_result(job_id)
            self.store.clear_work(job_id)
            self.store.save(rec)
        self.running.clear()
        if self.executor is not None:
            self.executor.shutdown()
