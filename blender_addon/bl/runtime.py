"""The add-on's live state on Blender's main thread: worker, job list, streaming imports, timer.

Interactive Blender: commands go to the worker thread and a ``bpy.app.timers`` callback drains
its events with a small budget per tick, applies them (importing streamed frames as they come)
and redraws the panel. Background mode (``blender -b``, the ``bpy`` module): timers never run, so
:func:`run` executes the command in the calling thread and applies its events at once.
"""

from __future__ import annotations

import math
from pathlib import Path

import bpy

from ..core import netpolicy, worker
from ..core.client import Client
from ..core.client_types import CurveConfig, check_address
from ..core.jobs_state import JobsState
from ..core.local_backend import LocalBackend
from . import importer, kind_props, prefs, preview

TICK_BUDGET_S = 0.02
TICK_INTERVAL_S = 0.1
IDLE_INTERVAL_S = 0.5


class Runtime:
    """One per Blender session (module global :data:`RT`)."""

    def __init__(self) -> None:
        self.state = JobsState()
        self.worker: worker.Worker | None = None
        self.worker_key: tuple | None = None
        self.streams: dict[str, importer.StreamImport] = {}
        self.backend: LocalBackend | None = None
        self.notices: list[str] = []
        self.imported: dict[str, str] = {}  # job id -> object name

    @property
    def sync(self) -> bool:
        """True where timers never run, so commands must run synchronously."""
        return bool(bpy.app.background)

    # -- worker ------------------------------------------------------------------------------

    def _client_factory(self, p) -> callable:
        address, timeout = p.address.strip(), float(p.timeout)
        curve = None
        if p.server_key or p.client_key:
            curve = CurveConfig.from_files(bpy.path.abspath(p.server_key),
                                           bpy.path.abspath(p.client_key))
        return lambda: Client(address, timeout=timeout, curve=curve,
                              client_name="anim4d-blender")

    def ensure_worker(self) -> worker.Worker:
        """The worker for the current preferences (recreated when they change)."""
        p = prefs.get()
        address = p.address.strip()
        self.state.address = address
        check_address(address)  # a malformed address is named as such
        netpolicy.check_address(address, bpy.app.online_access, bpy.app.background)
        key = (address, float(p.timeout), p.server_key, p.client_key)
        if self.worker is None or self.worker_key != key:
            if self.worker is not None:
                self.worker.stop(timeout=1.0)
            self.worker = worker.Worker(self._client_factory(p))
            self.worker_key = key
        if not self.sync:
            self.worker.start()
        return self.worker

    def run(self, name: str, **args) -> list[worker.Event]:
        """Send a command; in background mode run it now and return its events (else [])."""
        try:
            w = self.ensure_worker()
        except Exception as err:  # noqa: BLE001 - shown in the panel and reported
            event = worker.error_event(err, name, str(args.get("job_id", "")))
            self.handle(event)
            return [event]
        if not self.sync:
            w.put(name, **args)
            return []
        w.execute(worker.Command(name, args))
        return worker.drain(w.events, math.inf, handle=self.handle)

    def pump(self, budget_s: float | None = None) -> int:
        """Drain pending events within ``budget_s`` (default: :data:`TICK_BUDGET_S`, the
        timer's work); returns how many."""
        if self.worker is None:
            return 0
        budget = TICK_BUDGET_S if budget_s is None else budget_s
        return len(worker.drain(self.worker.events, budget, handle=self.handle))

    def shutdown(self) -> None:
        if self.worker is not None:
            self.worker.stop(timeout=2.0)
            self.worker = None
        if self.backend is not None:
            self.backend.stop()

    # -- events ------------------------------------------------------------------------------

    def handle(self, event: worker.Event) -> None:
        """Apply one event (main thread): state, kind properties, streamed import frames."""
        self.state.apply(event)
        try:
            if event.type == "hello":
                kind_props.ensure(self.state.kinds)
            elif event.type == "preview":
                preview.update_preview_object(event.data)
            elif event.type == "chunk":
                self._stream(event.job_id).feed(event.data)
            elif event.type == "fetched":
                self._finish_import(event.job_id, Path(event.data))
            elif event.type == "resampled":
                from .resample_ops import finish_event

                self.notices.append(finish_event(event.job_id, event.data))
            elif event.type == "job" and event.data.state == "done" and (
                    event.command != "resample"):  # a resample replaces an object's frames
                row = self.state.job(event.job_id)
                if (prefs.get().import_when_done and event.job_id not in self.imported
                        and not row.importing and not row.imported):
                    self.start_import(event.job_id)
        except Exception as err:  # noqa: BLE001 - an import error must not break the timer
            self.state.apply(worker.error_event(err, "import", event.job_id))
            if event.job_id in self.state.jobs:
                self.state.jobs[event.job_id].importing = False

    def _stream(self, job_id: str) -> importer.StreamImport:
        if job_id not in self.streams:
            self.streams[job_id] = importer.StreamImport(job_id, storage=prefs.get().storage)
        return self.streams[job_id]

    def start_import(self, job_id: str) -> list[worker.Event]:
        """Fetch (resuming) and import ``job_id``; frames appear as they arrive."""
        row = self.state.job(job_id)
        row.importing = True
        out = prefs.results_root() / job_id
        out.parent.mkdir(parents=True, exist_ok=True)
        return self.run("fetch", job_id=job_id, out_dir=str(out))

    def _finish_import(self, job_id: str, folder: Path) -> None:
        stream = self._stream(job_id)
        stream.complete_from_folder(folder)
        self.notices += stream.notices
        self.imported[job_id] = ", ".join(o.name for o in stream.objects) or "nothing (a video)"
        row = self.state.job(job_id)
        row.imported, row.importing = True, False
        del self.streams[job_id]

    # -- local backend -------------------------------------------------------------------------

    def start_backend(self) -> LocalBackend:
        p = prefs.get()
        address = p.address.strip()
        if not netpolicy.is_loopback(address):
            raise netpolicy.NetworkNotAllowed(
                f"a local backend must listen on this computer; {address} is not a loopback "
                "address (use tcp://127.0.0.1:5555)", "bad_address")
        if self.backend is None or self.backend.state in ("stopped", "exited"):
            self.backend = LocalBackend(bpy.path.abspath(p.backend_python), address,
                                        bpy.path.abspath(p.backend_data_dir) or None)
        self.backend.start()
        return self.backend


RT = Runtime()


def redraw_panels() -> None:
    wm = bpy.context.window_manager
    for window in getattr(wm, "windows", []):
        for area in window.screen.areas:
            if area.type == "VIEW_3D":
                area.tag_redraw()


def tick() -> float:
    """The ``bpy.app.timers`` callback: drain a little, redraw, come back soon."""
    try:
        if RT.pump():
            redraw_panels()
    except Exception as err:  # noqa: BLE001 - a timer that raises is unregistered for good
        RT.state.last_error = f"internal error while updating: {err}"
    busy = RT.worker is not None and (RT.worker.active or not RT.worker.events.empty())
    return TICK_INTERVAL_S if busy else IDLE_INTERVAL_S
