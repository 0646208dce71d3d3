"""What runs on the Ray cluster for ``anim4d serve --executor ray`` (see
:mod:`backend.server.ray_executor`, the gateway's side): the supervisor actor, the job task and
the resident actors.

``run_job_task`` is the Ray task of one job: :func:`backend.server.worker.worker_main`, the same
function a local worker process runs, with a :class:`ChannelConn` for its pipe. ``send`` only
queues; a sender thread delivers the messages to the gateway's supervisor actor at least every
:data:`CANCEL_POLL_S` and reads back whether the job was cancelled (what ``ctx.cancelled()``
sees); ``close`` delivers the rest before the task returns, so a final message is with the
supervisor before the task is seen to end. Ray is imported only when these are first used.

*Resident actors*: a job kind that declares a method whose models are worth keeping loaded
(``JobKind.resident``, e.g. ``"dnf"`` for the ``dnf.*`` and ``creature.*`` kinds) runs, not as
a task, but on a long-lived actor of that method: the same ``run_job_task``, one job at a time,
in a process that stays up between jobs, so the method's process-level model cache
(:mod:`backend.models.cache`) still holds what the last job loaded. The supervisor owns the
pool (so its actors, like its tasks, outlive a gateway killed outright, and re-attaching is the
same): an actor is made on first need, with the kind's resources (CPUs, GPUs, memory), and
reused by later jobs of the same method and resources. At most ``limit`` actors live
(``serve --resident-actors``); at the limit, an idle actor of another method is ended to make
room, and with none idle the job runs as a plain task (loading its models itself). An actor
idle for ``idle_s`` (``--resident-idle``) ends, freeing what it holds (a GPU actor holds its GPU
while idle); a clean gateway stop ends them all. A kill (a cancel ignored past its grace) kills
the job's actor (``ray.kill``; a later job makes a new one); an actor that dies mid-job is seen
as a task whose worker died (``ActorDiedError``), so the gateway retries the job the same way.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

#: how long a resident job waits for a busy actor that is finishing before it runs as a task
FREE_WAIT_S = 0.5
#: how often a running task asks the supervisor whether it was cancelled (and sends what it has)
CANCEL_POLL_S = 0.2
#: resident actors at most (``serve --resident-actors``), and the seconds one may stay idle
DEFAULT_RESIDENT_ACTORS = 2
DEFAULT_RESIDENT_IDLE_S = 300.0
#: the resources of a Ray task's options that an actor of the same job takes
ACTOR_RESOURCES = ("num_cpus", "num_gpus", "memory")

_CACHE: dict[str, object] = {}


def supervisor_class():
    """The supervisor actor class (built on first use: importing this module imports no Ray)."""
    if "supervisor" not in _CACHE:
        import ray

        @ray.remote(num_cpus=0, max_restarts=0)
        class Supervisor:
            """One per gateway data folder, detached: it submits (so owns) the jobs' tasks,
            which therefore outlive a gateway killed outright; it keeps their messages, keyed
            by job attempt, their cancel flags, and how each ended until the gateway forgets
            it. A restarted gateway finds it by name and re-attaches."""

            def __init__(self) -> None:
                self.messages: list = []
                self.previews: dict[str, tuple] = {}  # the latest per job attempt only
                self.cancelled: set[str] = set()
                self.refs: dict[str, object] = {}  # running tasks (and actor jobs)
                self.ended: dict[str, str | None] = {}  # key -> why it died (None: returned)
                self.pool = ResidentPool(DEFAULT_RESIDENT_ACTORS, DEFAULT_RESIDENT_IDLE_S)
                self._ticker: threading.Thread | None = None

            def configure(self, limit: int, idle_s: float) -> None:
                """The gateway's resident-actor settings (a restarted gateway's replace those
                of the one before)."""
                self.pool.limit, self.pool.idle_s = max(0, limit), max(0.0, idle_s)
                self.pool.tidy()

            def launch(self, key: str, args: tuple, options: dict,
                       stage: dict | None = None, resident: str = "") -> None:
                """Run a job attempt: on a resident actor of ``resident`` (its method) where
                one is free or can be made, else as a task."""
                me = ray.get_runtime_context().current_actor
                self._tick(me)
                slot = self.pool.acquire(resident, options, key) if resident else None
                if slot is None and resident:
                    # an actor whose job has sent its final message is free, but the poll that
                    # frees it may not have run yet (the client saw "done" and submitted the
                    # next job first): reap, giving a busy one a moment, before using a task
                    busy = [self.refs[k] for k in self.pool.busy_keys() if k in self.refs]
                    if busy:
                        ray.wait(busy, num_returns=1, timeout=FREE_WAIT_S)
                        self._reap()
                        slot = self.pool.acquire(resident, options, key)
                if slot is not None:
                    self.refs[key] = slot.handle.run.remote(me, key, args, stage, slot.jobs)
                    return
                self.refs[key] = task_function().options(**options).remote(me, key, args,
                                                                          stage)

            def _tick(self, me) -> None:
                """Idle actors end on time without a gateway: a thread asks this actor to
                :meth:`tidy` (through its own queue, so never beside another method)."""
                if self._ticker is not None:
                    return

                def tick() -> None:
                    while True:
                        time.sleep(max(0.2, min(5.0, self.pool.idle_s / 4)))
                        try:
                            me.tidy.remote()
                        except Exception:  # noqa: BLE001 - Ray is shutting down
                            return

                self._ticker = threading.Thread(target=tick, name="anim4d-tidy", daemon=True)
                self._ticker.start()

            def tidy(self) -> None:
                self.pool.tidy()

            def actors(self) -> list[dict]:
                """The resident actors (diagnostics and tests)."""
                return self.pool.describe()

            def put(self, key: str, messages: list) -> bool:
                for m in messages:
                    if m[0] == "preview":
                        self.previews[key] = m
                    else:
                        self.messages.append((key, m))
                return key in self.cancelled

            def poll(self) -> tuple[list, dict[str, str | None]]:
                """(messages, ended): the pending messages (previews first) and how each task
                not yet forgotten ended. A task flushes its messages before it returns, so the
                messages of a task seen ended here are all in this reply."""
                self._reap()
                out = [*self.previews.items(), *self.messages]
                self.messages, self.previews = [], {}
                return out, dict(self.ended)

            def _reap(self) -> None:
                """Record how the finished job attempts ended; free their actors."""
                if not self.refs:
                    return
                refs = list(self.refs.values())
                ready = set(ray.wait(refs, num_returns=len(refs), timeout=0)[0])
                for key, ref in list(self.refs.items()):
                    if ref in ready:
                        del self.refs[key]
                        try:
                            ray.get(ref)
                            self.ended[key] = None
                        except Exception as err:  # noqa: BLE001 - how it died
                            self.ended[key] = describe(err)
                        self.pool.release(key, self.ended[key] is None)

            def known(self, key: str) -> bool:
                return key in self.refs or key in self.ended

            def cancel(self, key: str) -> None:
                self.cancelled.add(key)

            def kill(self, key: str) -> None:
                """End a job attempt now: its task, or its actor (a later job makes a new
                one: the actor may be stuck in the method)."""
                if self.pool.kill(key):
                    return
                if key in self.refs:
                    ray.cancel(self.refs[key], force=True)

            def forget(self, key: str) -> None:
                self.ended.pop(key, None)
                self.cancelled.discard(key)

            def stop(self) -> None:
                """End every task and resident actor (the gateway is shutting down cleanly)."""
                self.pool.end_all()
                for ref in self.refs.values():
                    try:
                        ray.cancel(ref, force=True)
                    except Exception:  # noqa: BLE001 - an actor job (its actor is ended)
                        pass

        _CACHE["supervisor"] = Supervisor
    return _CACHE["supervisor"]


def resident_class():
    """The resident actor class (built on first use)."""
    if "resident" not in _CACHE:
        import ray

        @ray.remote(max_restarts=0, max_task_retries=0)
        class ResidentWorker:
            """Runs jobs of one method, one at a time, in a process kept between them."""

            def __init__(self, method: str) -> None:
                self.method = method

            def run(self, channel, key: str, args: tuple, stage: dict | None, n: int) -> None:
                actor = ray.get_runtime_context().get_actor_id() or "?"
                run_job_task(channel, key, args, stage,
                             f"on a resident Ray actor of {self.method!r} (actor "
                             f"{actor[:12]}, its job {n})")

        _CACHE["resident"] = ResidentWorker
    return _CACHE["resident"]


@dataclass(eq=False)
class _Slot:
    """One resident actor: ``pool`` = (method, its resources); ``key``: the job attempt it
    runs (None: idle since ``last``); ``jobs``: how many it has been given."""

    handle: object
    pool: tuple
    key: str | None = None
    last: float = 0.0
    jobs: int = 0


class ResidentPool:
    """The supervisor's resident actors (see the module docstring); supervisor thread only."""

    def __init__(self, limit: int, idle_s: float):
        self.limit, self.idle_s = limit, idle_s
        self.slots: list[_Slot] = []

    def acquire(self, method: str, options: dict, key: str) -> _Slot | None:
        """An actor for this job (idle of its pool, else a new one), marked busy; None: run it
        as a task (no resident actors, or all busy at the limit)."""
        res = {k: options[k] for k in ACTOR_RESOURCES if options.get(k)}
        pool = (method, tuple(sorted(res.items())))
        idle = [s for s in self.slots if s.key is None]
        same = [s for s in idle if s.pool == pool]
        if same:
            slot = max(same, key=lambda s: s.last)  # the warmest
        else:
            if len(self.slots) >= self.limit:
                if not idle:
                    return None
                self._end(min(idle, key=lambda s: s.last))  # of another pool: make room
            slot = _Slot(resident_class().options(**res).remote(method), pool)
            self.slots.append(slot)
        slot.key, slot.jobs = key, slot.jobs + 1
        return slot

    def busy_keys(self) -> list[str]:
        """The job attempts running on the actors."""
        return [s.key for s in self.slots if s.key is not None]

    def _find(self, key: str) -> _Slot | None:
        return next((s for s in self.slots if s.key == key), None)

    def release(self, key: str, returned: bool) -> None:
        """A job attempt ended: its actor is idle again, or, if the job died with it, gone."""
        slot = self._find(key)
        if slot is None:
            return
        if returned:
            slot.key, slot.last = None, time.monotonic()
        else:
            self._end(slot)

    def kill(self, key: str) -> bool:
        slot = self._find(key)
        if slot is None:
            return False
        self._end(slot)
        return True

    def tidy(self) -> None:
        """End the actors idle past ``idle_s``, and those past the limit."""
        now = time.monotonic()
        for slot in [s for s in self.slots if s.key is None]:
            if now - slot.last >= self.idle_s or len(self.slots) > self.limit:
                self._end(slot)

    def end_all(self) -> None:
        for slot in list(self.slots):
            self._end(slot)

    def _end(self, slot: _Slot) -> None:
        import ray

        if slot in self.slots:
            self.slots.remove(slot)
        try:
            ray.kill(slot.handle, no_restart=True)
        except Exception:  # noqa: BLE001 - already gone
            pass

    def describe(self) -> list[dict]:
        return [{"method": s.pool[0], "resources": dict(s.pool[1]), "job": s.key,
                 "jobs": s.jobs} for s in self.slots]


def describe(err: BaseException) -> str:
    """One line on how a task ended without its result."""
    name = type(err).__name__
    text = " ".join(str(err).split())
    if "ActorDied" in name or "ActorUnavailable" in name:
        what = "its resident Ray actor died (its worker process was killed or crashed)"
    elif "WorkerCrashed" in name or "worker died" in text.lower():
        what = "its Ray worker process died"
    elif "NodeDied" in name:
        what = "its Ray node died"
    elif "OutOfMemory" in name:
        what = "Ray's memory monitor killed it (out of memory)"
    elif "TaskCancelled" in name:
        what = "its Ray task was cancelled"
    else:
        what = f"its Ray task ended with {name}"
    if what.startswith("its Ray task ended with") and text:
        return f"{what}: {text[:200]}"
    return what


def task_function():
    if "task" not in _CACHE:
        import ray

        _CACHE["task"] = ray.remote(run_job_task)
    return _CACHE["task"]


class ChannelConn:
    """The worker's end in a Ray task: ``send`` queues, a sender thread delivers (and reads the
    cancel flag), ``close`` delivers the rest before returning."""

    def __init__(self, channel, key: str):
        self.channel, self.key = channel, key
        self.cancel = threading.Event()
        self._pending: list = []
        self._lock = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="anim4d-sender", daemon=True)
        self._thread.start()

    def send(self, msg: tuple) -> None:
        with self._lock:
            self._pending.append(msg)
            self._lock.notify()

    def _flush(self) -> None:
        import ray

        with self._lock:
            batch, self._pending = self._pending, []
        if ray.get(self.channel.put.remote(self.key, batch)):
            self.cancel.set()

    def _run(self) -> None:
        while True:
            with self._lock:
                if self._closed:
                    return
                if not self._pending:
                    self._lock.wait(CANCEL_POLL_S)
                if self._closed:
                    return
            self._flush()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._lock.notify()
        self._thread.join()
        self._flush()


def run_job_task(channel, key: str, args: tuple, stage: dict | None = None,
                 where: str = "as a Ray task") -> None:
    """The Ray task (and a resident actor's job): ``worker_main`` with a channel for a pipe.
    ``stage``: with a result store (``{"url", "inputs": [names], "sources": [job ids]}``),
    the job runs in a scratch folder on this node (see :func:`run_staged`); else in the
    gateway's job folder, by path. ``where``: how it runs, for the job's log."""
    from backend.server.worker import worker_main

    conn = ChannelConn(channel, key)
    if stage is not None:
        run_staged(conn, key, args, stage, where)
        return
    job_id, runner, params, inputs, job_dir, _, _, models = args
    worker_main(job_id, runner, params, inputs, job_dir, conn, conn.cancel, models, where)


class _HeldFinal:
    """The worker's pipe for :func:`run_staged`: progress passes through; the final message is
    held until the result is in the store (``close`` is the caller's)."""

    def __init__(self, conn: ChannelConn):
        self.conn = conn
        self.final: tuple | None = None

    def send(self, msg: tuple) -> None:
        if msg[0] in ("progress", "preview", "finishing"):
            self.conn.send(msg)
        else:
            self.final = msg

    def close(self) -> None:
        pass


def run_staged(conn: ChannelConn, key: str, args: tuple, stage: dict,
               where: str = "as a Ray task") -> None:
    """Run a job against a result store (``serve --result-store URL``): its inputs (and the
    results of the jobs it takes as ``job`` parameters) are copied from the store into a scratch
    folder on this node, ``<tmp>/anim4d-<id>-*/jobs/<id>/`` laid out as the gateway's job
    folder; the method runs there; a finished result is copied to the store (marker last)
    before ``done`` is sent; a copy that fails fails the job with the reason. The scratch is
    removed at the end (a worker killed outright leaves it, with its worker.log)."""
    import logging
    import shutil
    import tempfile
    from pathlib import Path

    from backend.server.result_store import ResultStore, StoreError
    from backend.server.store import PARTIAL
    from backend.server.worker import worker_main

    job_id, runner, params, _, _, _, _, models = args
    store = ResultStore(stage["url"])
    scratch = Path(tempfile.mkdtemp(prefix=f"anim4d-{job_id[:12]}-"))
    folder = scratch / "jobs" / job_id
    held = _HeldFinal(conn)
    try:
        for sub in (PARTIAL, "work"):
            (folder / sub).mkdir(parents=True)
        try:
            inputs = []
            if stage["inputs"]:  # (else the gateway put none there)
                inputs = store.get_inputs(job_id, folder / "inputs", stage["inputs"])
            for source in stage["sources"]:
                store.get_result(source, scratch / "jobs" / source / "result")
        except StoreError as err:
            held.final = ("failed", "job_failed", f"the job's inputs could not be read: {err}")
        else:
            worker_main(job_id, runner, params, [str(p) for p in inputs], str(folder), held,
                        conn.cancel, models, where)
        log = logging.getLogger("anim4d.worker")
        log.info("job %s ran in %s on this node (result store %s)", job_id, folder, store.url)
        if held.final is not None and held.final[0] == "done":
            try:
                store.put_result(job_id, key, folder / PARTIAL)
            except StoreError as err:
                log.error("%s", err)
                held.final = ("failed", "job_failed", f"the result could not be stored: {err}")
        for handler in logging.getLogger().handlers:
            handler.flush()
        store.put_log(job_id, folder / "worker.log")
        if held.final is not None:
            conn.send(held.final)
    finally:
        root = logging.getLogger()
        for handler in list(root.handlers):  # worker_main's file handler, in the scratch
            if str(scratch) in str(getattr(handler, "baseFilename", "")):
                root.removeHandler(handler)
                handler.close()
        conn.close()
        shutil.rmtree(scratch, ignore_errors=True)
