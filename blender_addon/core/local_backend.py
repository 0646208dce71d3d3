"""A backend started by the add-on as a child process (``python -m backend.cli.main serve``).

The artist gives the path of a Python that has the backend installed; the add-on starts it bound
to a loopback address, shows its state, stops it on request and when Blender quits. The last
lines of its output are kept so a failed start can be explained in the panel.
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import threading
from pathlib import Path

from ._shared import errors

STOPPED, STARTING, RUNNING, EXITED = "stopped", "starting", "running", "exited"


class LocalBackendError(errors.Anim4DError):
    code = "local_backend"


def serve_command(python: str, address: str, data_dir: str | None = None) -> list[str]:
    """The command line that starts ``anim4d serve`` with ``python``."""
    cmd = [python, "-u", "-m", "backend.cli.main", "serve", "--bind", address]
    if data_dir:
        cmd += ["--data-dir", data_dir]
    return cmd


class LocalBackend:
    """One child ``anim4d serve`` process; :attr:`state` is stopped/starting/running/exited."""

    def __init__(self, python: str, address: str, data_dir: str | None = None,
                 keep_lines: int = 40):
        self.python = python
        self.address = address
        self.data_dir = data_dir
        self.proc: subprocess.Popen | None = None
        self.lines: collections.deque[str] = collections.deque(maxlen=keep_lines)
        self._reader: threading.Thread | None = None
        self._serving = threading.Event()

    @property
    def state(self) -> str:
        if self.proc is None:
            return STOPPED
        if self.proc.poll() is not None:
            return EXITED
        return RUNNING if self._serving.is_set() else STARTING

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def describe(self) -> str:
        """One line for the panel."""
        state = self.state
        if state == EXITED:
            last = self.lines[-1] if self.lines else "no output"
            return f"exited with code {self.returncode}: {last}"
        if state == STOPPED:
            return "not running"
        return f"{state} on {self.address} (pid {self.proc.pid})"

    def start(self) -> None:
        """Start the child process (no-op if it is running); raises with the reason if it can't."""
        if self.state in (STARTING, RUNNING):
            return
        if not self.python or not Path(self.python).is_file():
            raise LocalBackendError(
                f"the backend Python {self.python!r} does not exist; set it in the add-on's "
                "preferences to the python of an environment where anim4d is installed")
        self._serving.clear()
        self.lines.clear()
        flags = 0
        if sys.platform == "win32":
            flags = subprocess.CREATE_NEW_PROCESS_GROUP  # type: ignore[attr-defined]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        try:
            self.proc = subprocess.Popen(
                serve_command(self.python, self.address, self.data_dir),
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                text=True, errors="replace", env=env, creationflags=flags)
        except OSError as err:
            raise LocalBackendError(f"cannot start {self.python}: {err}") from None
        self._reader = threading.Thread(target=self._read, name="anim4d-local-backend",
                                        daemon=True)
        self._reader.start()

    def _read(self) -> None:
        proc = self.proc
        assert proc is not None and proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            self.lines.append(line)
            if "serving on" in line:
                self._serving.set()

    def wait_ready(self, timeout: float) -> bool:
        """Wait until the server prints that it serves (False on timeout or exit)."""
        if self.proc is None:
            return False
        step = 0.05
        waited = 0.0
        while waited < timeout:
            if self._serving.wait(step):
                return True
            if self.proc.poll() is not None:
                return False
            waited += step
        return False

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the server to stop (SIGTERM / CTRL_BREAK), kill it after ``timeout``."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        try:
            proc.terminate()
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        if self._reader is not None:
            self._reader.join(2)
