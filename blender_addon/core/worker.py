"""The thread that owns the backend socket, and the main-thread drain of its events.

Blender must never wait on the network. One :class:`Worker` thread owns the :class:`Client`
(one DEALER socket); the UI puts :class:`Command` objects on its command queue and a main-thread
``bpy.app.timers`` callback calls :func:`drain` on its event queue with a small time budget, so
one tick never takes long however much arrived. Nothing here touches ``bpy``.

In background mode (no timers) the same commands run synchronously: :meth:`Worker.execute` runs
one command in the calling thread and its events are drained right after.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._shared import errors

CommandName = str  # hello, ping, jobs, submit, wait, cancel, fetch, resample, delete, stop


@dataclass
class Command:
    """A request for the worker: ``name`` and its keyword arguments."""

    name: CommandName
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class Event:
    """Something the worker reports to the main thread.

    ``type``: ``hello`` (data: HelloInfo), ``pong`` (round-trip seconds), ``jobs`` (list of
    JobInfo), ``submitted`` (JobInfo-like dict), ``progress`` (ProgressInfo), ``job`` (JobInfo,
    e.g. after a cancel or a wait), ``preview`` (PreviewInfo: a running job's latest state),
    ``chunk`` (a result chunk), ``fetched`` (result folder Path), ``resampled`` ({folder,
    context}: a resample job fetched for an object),
    ``deleted``, ``error`` (data: message text; ``code``: the error's code).
    """

    type: str
    job_id: str = ""
    data: Any = None
    code: str = ""
    command: str = ""


def error_event(err: BaseException, command: str, job_id: str = "") -> Event:
    """An ``error`` event whose text is fit for an artist (never a traceback)."""
    if isinstance(err, errors.Anim4DError):
        return Event("error", job_id, str(err), err.code, command)
    return Event("error", job_id, f"{command} failed: {type(err).__name__}: {err}", "internal",
                 command)


class Worker:
    """Runs commands against a client made by ``client_factory`` on its own thread.

    While jobs it knows of are unfinished it polls the job list every ``poll_s`` seconds, so
    progress keeps coming without any command.
    """

    def __init__(self, client_factory: Callable[[], Any], poll_s: float = 0.5,
                 events: queue.Queue | None = None):
        self.client_factory = client_factory
        self.poll_s = poll_s
        self.commands: queue.Queue[Command] = queue.Queue()
        self.events: queue.Queue[Event] = events if events is not None else queue.Queue()
        self.active: set[str] = set()
        self._client: Any = None
        self._thread: threading.Thread | None = None
        self._cancel_requested: set[str] = set()
        self._quiet_until = 0.0

    # -- main-thread side ---------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="anim4d-worker", daemon=True)
            self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def put(self, name: CommandName, **args: Any) -> None:
        """Queue a command for the thread (returns at once)."""
        if name == "cancel":
            self._cancel_requested.add(args["job_id"])
        self.commands.put(Command(name, args))

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread and close the socket."""
        if self.alive:
            self.commands.put(Command("stop"))
            self._thread.join(timeout)
        self._close()

    # -- both modes ---------------------------------------------------------------------------

    def client(self) -> Any:
        if self._client is None:
            self._client = self.client_factory()
        return self._client

    def execute(self, cmd: Command) -> None:
        """Run one command now, in this thread; results and errors become events."""
        emit = self.events.put
        job_id = str(cmd.args.get("job_id", ""))
        try:
            handler = getattr(self, f"_cmd_{cmd.name}", None)
            if handler is None:
                raise errors.Anim4DError(f"unknown command {cmd.name!r}", "bad_command")
            handler(emit, **cmd.args)
        except Exception as err:  # noqa: BLE001 - every failure becomes a readable event
            if isinstance(err, errors.Anim4DError) and err.code in ("refused", "timeout"):
                self._close()  # a fresh socket next time
            emit(error_event(err, cmd.name, job_id))

    # -- thread -------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            try:
                cmd = self.commands.get(timeout=0.01 if self._watchable() else self.poll_s)
            except queue.Empty:
                if self._watchable():
                    self._watch_slice()
                continue
            if cmd.name == "stop":
                self._close()
                return
            self.execute(cmd)

    def _watchable(self) -> bool:
        return bool(self.active) and time.monotonic() >= self._quiet_until

    def _watch_slice(self) -> None:
        """Follow each unfinished job for a moment: its progress messages become events."""
        slice_s = max(self.poll_s / max(len(self.active), 1), 0.05)
        for job_id in sorted(self.active):
            try:
                info = self.client().wait(
                    job_id, on_progress=lambda p, j=job_id: self.events.put(
                        Event("progress", j, p, command="watch")),
                    cancel=lambda j=job_id: j in self._cancel_requested, timeout=slice_s,
                    on_preview=lambda p, j=job_id: self.events.put(
                        Event("preview", j, p, command="watch")))
            except errors.Anim4DError as err:
                if err.code == "wait_timeout":
                    continue  # the slice ended, the job goes on
                self._close()
                self._quiet_until = time.monotonic() + 4 * self.poll_s  # back off, retry later
                self.events.put(error_event(err, "watch", job_id))
                return
            self.active.discard(job_id)
            self.events.put(Event("job", job_id, info, command="watch"))

    def _close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception:  # noqa: BLE001 - closing must never raise into the UI
                pass

    # -- commands -----------------------------------------------------------------------------

    def _cmd_hello(self, emit) -> None:
        emit(Event("hello", data=self.client().hello(), command="hello"))

    def _cmd_ping(self, emit) -> None:
        emit(Event("pong", data=self.client().ping(), command="ping"))

    def _cmd_jobs(self, emit) -> None:
        infos = self.client().jobs()
        self.active = {j.id for j in infos if not _terminal(j.state)}
        emit(Event("jobs", data=infos, command="jobs"))

    def _cmd_submit(self, emit, kind: str, params: dict, inputs: list | tuple = ()) -> None:
        def upload(p) -> None:
            emit(Event("progress", data=p, command="submit"))

        job_id = self.client().submit(kind, params, list(inputs), on_progress=upload)
        self.active.add(job_id)
        emit(Event("submitted", job_id, {"id": job_id, "kind": kind, "params": params},
                   command="submit"))

    def _cmd_wait(self, emit, job_id: str, timeout: float | None = None) -> None:
        info = self.client().wait(
            job_id, on_progress=lambda p: emit(Event("progress", job_id, p, command="wait")),
            cancel=lambda: job_id in self._cancel_requested, timeout=timeout,
            on_preview=lambda p: emit(Event("preview", job_id, p, command="wait")))
        self.active.discard(job_id)
        emit(Event("job", job_id, info, command="wait"))

    def _cmd_cancel(self, emit, job_id: str) -> None:
        info = self.client().cancel(job_id)
        emit(Event("job", job_id, info, command="cancel"))

    def _cmd_fetch(self, emit, job_id: str, out_dir: str) -> None:
        path = self.client().fetch(
            job_id, out_dir, on_chunk=lambda c: emit(Event("chunk", job_id, c, command="fetch")))
        emit(Event("fetched", job_id, Path(path), command="fetch"))

    def _cmd_resample(self, emit, kind: str, params: dict, out_root: str,
                      context: Any = None) -> None:
        """Submit a resample job, follow it, fetch it (no streamed import: the frames replace
        an object's, on the main thread) and emit ``resampled`` with the folder and
        ``context`` (the caller's, handed back untouched)."""
        client = self.client()
        job_id = client.submit(kind, params, [])
        emit(Event("submitted", job_id, {"id": job_id, "kind": kind, "params": params},
                   command="resample"))
        info = client.wait(
            job_id, on_progress=lambda p: emit(Event("progress", job_id, p, command="resample")),
            cancel=lambda: job_id in self._cancel_requested)
        emit(Event("job", job_id, info, command="resample"))
        if info.state != "done":
            err = info.error or {}
            raise errors.JobError(f"resample job {job_id[:12]} {info.state}: "
                                  f"{err.get('message', 'no reason given')}",
                                  err.get("code", "job_failed"))
        path = client.fetch(job_id, str(Path(out_root) / job_id))
        emit(Event("resampled", job_id, {"folder": Path(path), "context": context},
                   command="resample"))

    def _cmd_delete(self, emit, job_id: str) -> None:
        self.client().delete(job_id)
        emit(Event("deleted", job_id, command="delete"))


def _terminal(state: str) -> bool:
    return state in ("done", "failed", "cancelled", "interrupted")


def drain(events: queue.Queue, budget_s: float, clock: Callable[[], float] = time.monotonic,
          handle: Callable[[Event], None] | None = None) -> list[Event]:
    """Take events from ``events`` and ``handle`` them until the queue is empty or the time spent
    reaches ``budget_s``; the event whose handling overran the budget is the last one taken.

    Returns the events taken, in order. ``clock`` is injectable for tests.
    """
    started = clock()
    taken: list[Event] = []
    while True:
        try:
            event = events.get_nowait()
        except queue.Empty:
            break
        if handle is not None:
            handle(event)
        taken.append(event)
        if clock() - started >= budget_s:
            break
    return taken
