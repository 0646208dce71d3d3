"""Progress display for the CLI: a rich bar on a terminal, plain lines otherwise (pipelines)."""

from __future__ import annotations

import sys
import time

from blender_addon.core.client_types import ProgressInfo


class ProgressDisplay:
    """``update(info)`` from the client's progress callback; use as a context manager."""

    def __init__(self, title: str, stream=None):
        self.title = title
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self._progress = None
        self._task = None
        self._last_line = ("", -1.0)
        self._last_time = 0.0

    def __enter__(self) -> ProgressDisplay:
        if self.tty:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                Progress,
                TaskProgressColumn,
                TextColumn,
                TimeElapsedColumn,
            )

            self._progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn(),
                TimeElapsedColumn(), TextColumn("{task.fields[detail]}"),
                console=Console(file=self.stream), transient=False)
            self._progress.start()
            self._task = self._progress.add_task(self.title, total=1.0, detail="")
        return self

    def update(self, info: ProgressInfo) -> None:
        stage = info.stage or info.state
        detail = info.message
        if info.state == "queued" and info.queue_position:
            detail = f"queued, position {info.queue_position}"
        if self._progress is not None:
            self._progress.update(self._task, completed=info.fraction,
                                  description=f"{self.title}: {stage}", detail=detail)
            return
        now = time.monotonic()
        key = (stage, info.fraction)
        if key[0] != self._last_line[0] or (now - self._last_time > 2.0
                                            and key[1] != self._last_line[1]):
            print(f"{self.title}: {stage} {info.fraction * 100:5.1f}% {detail}".rstrip(),
                  file=self.stream, flush=True)
            self._last_line, self._last_time = key, now

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()
