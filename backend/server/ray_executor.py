"""Running jobs on a Ray cluster (``anim4d serve --executor ray``).

The gateway (the ZeroMQ server) keeps everything it keeps in local mode: job records, the store,
the queue with its fair share, events to clients, cancel and its grace. Only where a job runs
changes: each job is a Ray task that runs the same :func:`backend.server.worker.worker_main` as
a local worker process, with the resources its kind declares (``JobKind.resources``).

The tasks are submitted by a *supervisor* actor (:mod:`backend.server.ray_worker`), one per
gateway data folder, detached and named after it: the tasks belong to it, not to the gateway's
process, so they outlive a gateway killed outright, and the gateway restarted on the same data
folder finds the supervisor again and re-attaches to the jobs still running (:meth:`reattach`;
their messages, and how they ended, waited there). A clean stop ends the tasks and the supervisor.

Messages (progress, preview, finishing, the final one) go from a task to the supervisor through
a sender thread in the task: ``worker_main`` never waits on the network. The sender calls the
supervisor at least every 0.2 s; each call answers whether the job was cancelled, which is what
the method's ``ctx.cancelled()`` reads. A kill (a cancel ignored past its grace) is
``ray.cancel(force=True)``.

Kinds that declare their models worth keeping loaded (``JobKind.resident``: the DNF ``dnf.*``
and ``creature.*`` kinds) run, not as tasks, but on the supervisor's *resident actors*:
long-lived processes of their method that run one job at a time and keep its models loaded
between jobs (:mod:`backend.models.cache`); see :mod:`backend.server.ray_worker`. For the gateway
nothing differs: messages, cancel, the kill (the actor is killed, a later job makes a new one),
a death mid-job (retried), re-attaching. ``resident_actors`` (``serve --resident-actors``)
bounds their number, 0 runs every job as a task; ``resident_idle_s`` (``--resident-idle``) ends
an idle one.

Every Ray call is made on one thread of the gateway, the *pump*: the server loop only reads and
writes Python queues, so it never blocks on Ray. The pump hands launches, cancels and kills to
the supervisor, and polls it for messages (into per-job inboxes, :class:`_Inbox`, what the
engine reads as a worker's pipe) and for tasks that ended: a task that ends without a final
message died (its worker process killed, its node lost): the engine then retries the job
(``--retries``) or fails it with the reason.

Results: without a result store, the task writes into the job's folder in the gateway's store,
by path, so the workers must see the gateway's data directory at the same path (one machine, or a
shared mount). With one (``--result-store URL``, :mod:`backend.server.result_store`), the task
gets no path of the gateway's: a *stager* thread puts the job's inputs (and the results of the
jobs it takes as ``job`` parameters, where the store lacks them) in the store before the task is
submitted; the task runs in a scratch folder on its node and puts its result in the store; when
its final message arrives, the stager copies the result (and the worker's log) into the gateway's
job folder before the engine sees the message, so the engine commits the result as in local mode.
A copy that fails fails the job (``job_failed``) with the reason. The anim4d package must be
importable on every Ray node.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from backend.jobs.registry import Resources
from backend.server.ray_worker import (
    DEFAULT_RESIDENT_ACTORS,
    DEFAULT_RESIDENT_IDLE_S,
    supervisor_class,
)
from backend.server.result_store import ResultStore, StoreError
from backend.server.store import PARTIAL

log = logging.getLogger("anim4d.ray")
#: how often the pump re-reads the cluster's resources
RESOURCES_EVERY_S = 5.0


class _Inbox:
    """A job's messages as the engine reads them (the pipe's ``poll``/``recv``/``close``)."""

    def __init__(self) -> None:
        self.messages: deque = deque()

    def poll(self) -> bool:
        return bool(self.messages)

    def recv(self):
        try:
            return self.messages.popleft()
        except IndexError:
            raise EOFError from None

    def close(self) -> None:
        pass


class _Task:
    """A job's Ray task as the engine sees its worker process."""

    def __init__(self, executor: RayExecutor, key: str):
        self.executor, self.key = executor, key
        self.ended = threading.Event()
        self.death_reason: str | None = None
        self.launch_error: str | None = None
        self.exitcode: int | None = None
        self.pid: int | None = None
        self.killed = False

    def is_alive(self) -> bool:
        return not self.ended.is_set()

    def kill(self) -> None:
        self.killed = True
        self.executor.commands.put(("kill", self.key))

    def join(self, timeout: float | None = None) -> None:
        self.ended.wait(timeout)


class _Cancel:
    def __init__(self, executor: RayExecutor, key: str):
        self.executor, self.key = executor, key
        self._set = False

    def set(self) -> None:
        if not self._set:
            self._set = True
            self.executor.commands.put(("cancel", self.key))

    def is_set(self) -> bool:
        return self._set


@dataclass
class _Job:
    args: tuple
    resources: Resources
    inbox: _Inbox
    task: _Task
    cancel: _Cancel | None = None
    sources: tuple = ()
    resident: str = ""  # the method whose resident actor runs it ("": a task)
    #: with a result store: the final message is being copied in; how the task ended waits
    lock: threading.Lock = field(default_factory=threading.Lock)
    fetching: bool = False
    ended_why: tuple | None = None  # (why,) once the task ended while fetching


class RayExecutor:
    """Runs the engine's jobs as Ray tasks (see the module docstring).

    ``address``: the cluster (``ray.init``'s: None finds a local one or starts one; in a process
    already connected to Ray, that connection is used). ``slots``: jobs in flight at once; None:
    the cluster's CPU count, re-read as nodes come and go."""

    def __init__(self, address: str | None = None, slots: int | None = None,
                 name: str | None = None, result_store: ResultStore | None = None,
                 jobs_dir: Path | None = None,
                 resident_actors: int = DEFAULT_RESIDENT_ACTORS,
                 resident_idle_s: float = DEFAULT_RESIDENT_IDLE_S):
        """``result_store`` (with ``jobs_dir``, the gateway's ``<data>/jobs``): run the tasks
        against that store, not the gateway's folders (see the module docstring).
        ``resident_actors``, ``resident_idle_s``: the resident actors' limit and idle time."""
        self.address = address
        self.resident_actors = max(0, resident_actors)
        self.resident_idle_s = resident_idle_s
        self.result_store = result_store
        self.jobs_dir = Path(jobs_dir) if jobs_dir is not None else None
        #: copies to and from the result store, off the pump and the server loop
        self.stager = ThreadPoolExecutor(4, "anim4d-stage") if result_store is not None else None
        self._source_lock = threading.Lock()
        #: the supervisor's name: one per gateway data folder, so that a restarted gateway
        #: finds the one its predecessor used (None: a fresh one, not found again)
        self.name = name
        self.auto_slots = slots is None
        self.slots = max(1, slots or 1)
        self.commands: queue.Queue = queue.Queue()
        self.jobs: dict[str, _Job] = {}  # key -> job; pump thread only
        self.woken = threading.Event()  # set when an inbox got messages
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._owns_ray = False
        self._sup = None  # the supervisor actor
        self._init_error: str | None = None
        self._gpus = 0.0
        self._next_resources = 0.0

    # ---- engine side (server thread) -------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._pump, name="anim4d-ray", daemon=True)
            self._thread.start()

    def launch(self, args: tuple, resources: Resources, attempt: int, sources=(),
               resident: str = ""):
        """Queue ``worker_main(*args)`` (its pipe and cancel left as None) as a Ray task; returns
        (inbox, task, cancel) for the engine's ``_Running``; ``task.key`` names this attempt
        (kept in the job's record, for :meth:`reattach`). ``sources``: the ids of the finished
        jobs it takes as ``job`` parameters (copied to it through a result store);
        ``resident``: the kind's ``JobKind.resident`` (run on a resident actor of it)."""
        key = f"{args[0]}:{attempt}:{uuid.uuid4().hex[:6]}"
        job = _Job(args, resources, _Inbox(), _Task(self, key), sources=tuple(sources),
                   resident=resident if self.resident_actors else "")
        job.cancel = _Cancel(self, key)
        if self.stager is not None:
            self.stager.submit(self._stage, key, job)
        else:
            self.commands.put(("launch", key, job))
        return job.inbox, job.task, job.cancel

    def delete(self, job_id: str) -> None:
        """A job deleted from the gateway: its folder in the result store goes too."""
        if self.stager is not None:
            self.stager.submit(self.result_store.delete, job_id)

    # ---- stager threads (a result store) ---------------------------------------------------
    def task_args(self, job: _Job) -> tuple[tuple, dict | None]:
        """What the task gets: ``worker_main``'s arguments and, with a result store, what to
        copy from it. With a store no path of the gateway's goes (inputs by name only)."""
        if self.result_store is None:
            return job.args, None
        job_id, runner, params, inputs, _, _, _, models = job.args
        stage = {"url": self.result_store.url, "inputs": [Path(p).name for p in inputs],
                 "sources": list(job.sources)}
        return (job_id, runner, params, stage["inputs"], None, None, None, models), stage

    def _stage(self, key: str, job: _Job) -> None:
        """Put the job's inputs (and its sources' results) in the store, then launch it."""
        job_id, inputs = job.args[0], job.args[3]
        try:
            if inputs:
                self.result_store.put_inputs(job_id, [Path(p) for p in inputs])
            with self._source_lock:  # one upload of a source, however many jobs take it
                for source in job.sources:
                    if not self.result_store.has_result(source):
                        self._put_source(source)
        except StoreError as err:
            log.error("job %s: %s", job_id, err)
            self._end_early(job, ("failed", "job_failed", f"could not start the job: {err}"))
            return
        except Exception as err:  # noqa: BLE001 - the job fails, the stager lives on
            log.exception("job %s: staging failed", job_id)
            self._end_early(job, ("failed", "job_failed",
                                  f"could not start the job: {type(err).__name__}: {err}"))
            return
        if job.cancel._set:
            self._end_early(job, ("cancelled",))
            return
        self.commands.put(("launch", key, job))

    def _put_source(self, source: str) -> None:
        """A finished job's result that is not in the store (it ran before the store was set,
        or the store lost it), from the gateway's own ``result/``."""
        folder = self.jobs_dir / source / "result"
        if not (folder / "manifest.json").is_file():
            raise StoreError(f"the result of job {source} is no longer on the server "
                             "(deleted or interrupted since this job was submitted)")
        self.result_store.put_result(source, "gateway", folder)

    def _end_early(self, job: _Job, final: tuple) -> None:
        job.inbox.messages.append(final)
        job.task.ended.set()
        self.woken.set()

    def _fetch(self, key: str, job: _Job, final: tuple) -> None:
        """A task's final message (with a result store): the worker's log, and for ``done``
        the result, into the gateway's job folder, before the engine sees it; then the task
        ends for the engine if it ended meanwhile."""
        job_id = key.partition(":")[0]
        folder = self.jobs_dir / job_id
        try:
            self.result_store.get_log(job_id, folder / "worker.log")
            if final[0] == "done":
                try:
                    self.result_store.get_result(job_id, folder / PARTIAL, key)
                except StoreError as err:
                    log.error("job %s: %s", job_id, err)
                    final = ("failed", "job_failed", f"the result could not be copied to the "
                             f"server: {err}")
            if job.args[3:4] != ([],):  # a job without inputs put none there
                self.result_store.drop_inputs(job_id)
        except Exception as err:  # noqa: BLE001 - the job fails, the stager lives on
            log.exception("job %s: copying from the result store failed", job_id)
            final = ("failed", "job_failed", f"the result could not be copied to the server: "
                     f"{type(err).__name__}: {err}")
        with job.lock:
            job.fetching = False
            if not job.task.killed:  # else: the engine gave up on it (a cancel past its grace)
                job.inbox.messages.append(final)
            if job.ended_why is not None:
                job.task.death_reason = job.ended_why[0]
                job.task.ended.set()
        self.woken.set()

    def reattach(self, key: str):
        """The handles of a task that an earlier gateway on this data folder launched (it was
        killed, this one restarted): its messages and its end are followed again. A task the
        supervisor does not know ends at once, as a worker that died."""
        job = _Job((key.partition(":")[0],), Resources(), _Inbox(), _Task(self, key))
        self.commands.put(("reattach", key, job))
        return job.inbox, job.task, _Cancel(self, key)

    def wait(self, inboxes: list, timeout: float) -> list:
        """The inboxes with messages, waiting up to ``timeout`` for one."""
        ready = [c for c in inboxes if c.poll()]
        if not ready and timeout > 0:
            self.woken.wait(timeout)
            self.woken.clear()
            ready = [c for c in inboxes if c.poll()]
        return ready

    def shutdown(self, timeout: float = 10.0) -> None:
        if self.stager is not None:
            self.stager.shutdown(wait=False, cancel_futures=True)
        self._stop.set()
        self.commands.put(("stop",))
        if self._thread is not None:
            self._thread.join(timeout)

    # ---- pump thread -----------------------------------------------------------------------
    def _pump(self) -> None:
        try:
            self._connect()
        except Exception as err:  # noqa: BLE001 - every job then fails with this reason
            self._init_error = (f"could not connect to the Ray cluster "
                                f"({self.address or 'auto'}): {type(err).__name__}: {err}")
            log.error("%s", self._init_error)
        while not self._stop.is_set():
            try:
                self._commands(block=0.01 if self.jobs else 0.1)
                if self._init_error is None and self.jobs:
                    self._collect()
                    self._resources()
            except Exception:  # noqa: BLE001 - the pump must keep running
                log.exception("the Ray pump failed a round")
                time.sleep(0.2)
        self._close()

    def _connect(self) -> None:
        import ray

        if not ray.is_initialized():
            ray.init(address=self.address, log_to_driver=False, configure_logging=False)
            self._owns_ray = True
        options = {"lifetime": "detached", "get_if_exists": True, "namespace": "anim4d"}
        if self.name is None:
            options = {}
        else:
            options["name"] = self.name
        self._sup = supervisor_class().options(**options).remote()
        self._sup.configure.remote(self.resident_actors, self.resident_idle_s)
        self._resources(force=True)
        log.info("Ray executor: cluster %s, %s job slot(s), %s GPU(s), up to %d resident "
                 "actor(s) (idle %gs)", self.address or "auto", self.slots, self._gpus,
                 self.resident_actors, self.resident_idle_s)

    def _resources(self, force: bool = False) -> None:
        import ray

        now = time.monotonic()
        if not force and now < self._next_resources:
            return
        self._next_resources = now + RESOURCES_EVERY_S
        total = ray.cluster_resources()
        self._gpus = float(total.get("GPU", 0.0))
        if self.auto_slots:
            self.slots = max(1, int(total.get("CPU", 1.0)))

    def _commands(self, block: float) -> None:
        try:
            cmd = self.commands.get(timeout=block)
        except queue.Empty:
            return
        while True:
            self._command(cmd)
            try:
                cmd = self.commands.get_nowait()
            except queue.Empty:
                return

    def _command(self, cmd: tuple) -> None:
        import ray

        if cmd[0] == "launch":
            key, job = cmd[1], cmd[2]
            if self._init_error is not None:
                job.task.launch_error = job.task.death_reason = self._init_error
                job.task.ended.set()
                return
            res = job.resources
            gpus = res.num_gpus if self._gpus > 0 else 0.0
            if res.num_gpus and not gpus:
                log.warning("job %s asks for %g GPU(s); the cluster has none: running it on CPU",
                            job.args[0], res.num_gpus)
            options = {"num_cpus": res.num_cpus, "num_gpus": gpus, "max_retries": 0,
                       "retry_exceptions": False, "name": f"anim4d-{job.args[0][:12]}"}
            if res.memory:
                options["memory"] = int(res.memory)
            args, stage = self.task_args(job)
            self._sup.launch.remote(key, args, options, stage, job.resident)
            self.jobs[key] = job
            if job.cancel is not None and job.cancel._set:  # cancelled while it was staged
                self._sup.cancel.remote(key)
        elif cmd[0] == "reattach":
            key, job = cmd[1], cmd[2]
            if self._init_error is not None or not ray.get(self._sup.known.remote(key)):
                job.task.death_reason = ("it was not found on the Ray cluster when the server "
                                         "restarted")
                job.task.ended.set()
                return
            log.info("job %s: re-attached to its Ray task %s", job.args[0], key)
            self.jobs[key] = job
        elif cmd[0] == "cancel":
            if cmd[1] in self.jobs:
                self._sup.cancel.remote(cmd[1])
        elif cmd[0] == "kill":
            if cmd[1] in self.jobs:
                self._sup.kill.remote(cmd[1])

    def _collect(self) -> None:
        """Deliver messages, then end the tasks that returned (or died)."""
        import ray

        messages, ended = ray.get(self._sup.poll.remote())
        for key, msg in messages:
            job = self.jobs.get(key)
            if job is None:  # an attempt already over (killed, then retried)
                continue
            if self.stager is not None and msg[0] not in ("progress", "preview", "finishing"):
                with job.lock:
                    job.fetching = True
                self.stager.submit(self._fetch, key, job, msg)
            else:
                job.inbox.messages.append(msg)
        for key, why in ended.items():
            job = self.jobs.pop(key, None)
            if job is not None:
                with job.lock:
                    if job.fetching:  # ends once its result is in (see _fetch)
                        job.ended_why = (why,)
                    else:
                        job.task.death_reason = why
                        job.task.ended.set()
            self._sup.forget.remote(key)
        if messages or ended:
            self.woken.set()

    def _close(self) -> None:
        if self._sup is None and not self._owns_ray:
            return  # never connected: nothing to end (and no reason to import Ray now)
        try:
            import ray

            for job in self.jobs.values():
                job.task.death_reason = "the server was shut down"
                job.task.ended.set()
            self.jobs.clear()
            if self._sup is not None:  # a clean stop: no task outlives it
                ray.get(self._sup.stop.remote(), timeout=10)
                ray.kill(self._sup)
            if self._owns_ray:
                ray.shutdown()
        except Exception:  # noqa: BLE001 - shutting down anyway
            log.exception("closing the Ray executor")
