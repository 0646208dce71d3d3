"""What runs on the Ray cluster for ``anim4d serve --executor ray`` (see
:mod:`backend.server.ray_executor`, the gateway's side): the supervisor actor and the job task.

``run_job_task`` is the Ray task of one job: :func:`backend.server.worker.worker_main`, the same
function a local worker process runs, with a :class:`ChannelConn` for its pipe. ``send`` only
queues; a sender thread delivers the messages to the gateway's supervisor actor at least every
:data:`CANCEL_POLL_S` and reads back whether the job was cancelled (what ``ctx.cancelled()``
sees); ``close`` delivers the rest before the task returns, so a final message is with the
supervisor before the task is seen to end. Ray is imported only when these are first used.
"""

from __future__ import annotations

import threading

#: how often a running task asks the supervisor whether it was cancelled (and sends what it has)
CANCEL_POLL_S = 0.2

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
                self.refs: dict[str, object] = {}  # running tasks
                self.ended: dict[str, str | None] = {}  # key -> why it died (None: returned)

            def launch(self, key: str, args: tuple, options: dict,
                       stage: dict | None = None) -> None:
                me = ray.get_runtime_context().current_actor
                self.refs[key] = task_function().options(**options).remote(me, key, args,
                                                                          stage)

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
                if self.refs:
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
                out = [*self.previews.items(), *self.messages]
                self.messages, self.previews = [], {}
                return out, dict(self.ended)

            def known(self, key: str) -> bool:
                return key in self.refs or key in self.ended

            def cancel(self, key: str) -> None:
                self.cancelled.add(key)

            def kill(self, key: str) -> None:
                if key in self.refs:
                    ray.cancel(self.refs[key], force=True)

            def forget(self, key: str) -> None:
                self.ended.pop(key, None)
                self.cancelled.discard(key)

            def stop(self) -> None:
                """End every task (the gateway is shutting down cleanly)."""
                for ref in self.refs.values():
                    ray.cancel(ref, force=True)

        _CACHE["supervisor"] = Supervisor
    return _CACHE["supervisor"]


def describe(err: BaseException) -> str:
    """One line on how a task ended without its result."""
    name = type(err).__name__
    text = " ".join(str(err).split())
    if "WorkerCrashed" in name or "worker died" in text.lower():
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


def run_job_task(channel, key: str, args: tuple, stage: dict | None = None) -> None:
    """The Ray task: ``worker_main`` with a channel for a pipe. ``stage``: with a result store
    (``{"url", "inputs": [names], "sources": [job ids]}``), the job runs in a scratch folder
    on this node (see :func:`run_staged`); else in the gateway's job folder, by path."""
    from backend.server.worker import worker_main

    conn = ChannelConn(channel, key)
    if stage is not None:
        run_staged(conn, key, args, stage)
        return
    job_id, runner, params, inputs, job_dir, _, _, models = args
    worker_main(job_id, runner, params, inputs, job_dir, conn, conn.cancel, models)


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


def run_staged(conn: ChannelConn, key: str, args: tuple, stage: dict) -> None:
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
                        conn.cancel, models)
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
