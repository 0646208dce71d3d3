"""What the panel shows: connection status, offered job kinds, and the job list (no ``bpy``).

The main thread applies worker events to one :class:`JobsState`; the panel only reads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .worker import Event

TERMINAL = ("done", "failed", "cancelled", "interrupted")


@dataclass
class JobView:
    """One row of the job list."""

    id: str
    kind: str = ""
    state: str = "queued"
    stage: str = ""
    fraction: float = 0.0
    message: str = ""
    error: str = ""
    queue_position: int | None = None
    imported: bool = False
    importing: bool = False
    frames_received: int = 0
    result_dir: str = ""

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    @property
    def can_import(self) -> bool:
        return self.state == "done" and not self.imported and not self.importing

    def status_text(self) -> str:
        """Short text for the progress bar."""
        if self.error:
            return f"{self.state}: {self.error}"
        if self.state == "queued" and self.queue_position:
            return f"queued (#{self.queue_position})"
        text = self.stage or self.state
        if self.message:
            text = f"{text}: {self.message}"
        if self.importing:
            text = f"importing ({self.frames_received} frames)"
        return text


def pretrained_line(entries: list[dict]) -> str:
    """One panel line saying which pretrained models the backend has (empty: none announced)."""
    if not entries:
        return ""
    return "Pretrained: " + ", ".join(
        f"{e.get('name', '?')} {'yes' if e.get('present') else 'no'}" for e in entries)


@dataclass
class JobsState:
    """Connection, kinds and jobs as last reported by the worker."""

    address: str = ""
    connection: str = "unknown"  # unknown, connected, error
    server_version: str = ""
    protocol_version: str = ""
    kinds: list[Any] = field(default_factory=list)  # shared.params.KindSpec
    pretrained_text: str = ""  # "Pretrained: dinov2-small yes, zero123pp no" (hello)
    last_error: str = ""
    last_error_code: str = ""
    latency_s: float | None = None
    upload_text: str = ""
    jobs: dict[str, JobView] = field(default_factory=dict)

    def job(self, job_id: str) -> JobView:
        if job_id not in self.jobs:
            self.jobs[job_id] = JobView(job_id)
        return self.jobs[job_id]

    def ordered(self) -> list[JobView]:
        """Unfinished jobs first, then the rest, newest first within each group."""
        rows = list(self.jobs.values())[::-1]
        return [j for j in rows if not j.terminal] + [j for j in rows if j.terminal]

    def finished(self) -> list[JobView]:
        """Jobs whose result another job may take as a ``job`` parameter, newest first."""
        return [j for j in list(self.jobs.values())[::-1] if j.state == "done"]

    def active_ids(self) -> list[str]:
        return [j.id for j in self.jobs.values() if not j.terminal]

    def kind(self, name: str) -> Any | None:
        return next((k for k in self.kinds if k.name == name), None)

    def apply(self, event: Event) -> None:
        """Update from one worker event."""
        t = event.type
        if t == "hello":
            info = event.data
            self.connection = "connected"
            self.server_version = info.server_version
            self.protocol_version = info.protocol_version
            self.kinds = list(info.kinds)
            self.pretrained_text = pretrained_line(getattr(info, "pretrained", []))
            self.last_error = ""
        elif t == "pong":
            self.connection, self.latency_s = "connected", float(event.data)
        elif t == "jobs":
            self.connection = "connected"
            for info in event.data:
                self._update_from_info(info)
        elif t == "submitted":
            row = self.job(event.job_id)
            row.kind = str(event.data.get("kind", ""))
            row.state = "queued"
            self.upload_text = ""
        elif t == "progress":
            p = event.data
            if not p.job_id:  # upload progress, before the job exists
                self.upload_text = f"{p.stage} {100 * float(p.fraction):.0f}%"
                return
            row = self.job(p.job_id)
            row.state, row.stage, row.fraction = p.state, p.stage, float(p.fraction)
            row.message = p.message
            row.queue_position = p.queue_position
        elif t == "job":
            self._update_from_info(event.data)
        elif t == "chunk":
            row = self.job(event.job_id)
            row.importing = True
            stop = getattr(event.data, "frame_stop", 0)
            row.frames_received = max(row.frames_received, int(stop))
        elif t == "fetched":
            row = self.job(event.job_id)
            row.result_dir = str(event.data)
        elif t == "deleted":
            self.jobs.pop(event.job_id, None)
        elif t == "error":
            self.last_error, self.last_error_code = str(event.data), event.code
            if event.code in ("refused", "timeout", "version_mismatch", "auth_rejected",
                              "bad_address", "offline"):
                self.connection = "error"
            if event.job_id and event.job_id in self.jobs:
                row = self.jobs[event.job_id]
                row.importing = False
                if event.command in ("submit", "wait"):
                    row.error = str(event.data)

    def _update_from_info(self, info: Any) -> None:
        row = self.job(info.id)
        row.kind = info.kind or row.kind
        row.state, row.stage = info.state, info.stage
        row.fraction = float(info.fraction)
        row.message = info.message
        row.queue_position = getattr(info, "queue_position", None)
        err = info.error or {}
        row.error = str(err.get("message", "")) if info.state == "failed" else ""
