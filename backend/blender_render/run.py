"""Render result folders, each in its own ``bpy`` subprocess (a Blender crash takes down that
render only): the Python API behind ``anim4d render`` and the ``render.video`` job kind.

    outcomes = render_results([folder_a, folder_b], out_dir, RenderOptions(resolution=128),
                              on_progress=lambda stage, fraction, message: ...,
                              cancelled=lambda: False)

One progress ``fraction`` covers the whole batch. A folder that is not a readable result fails
alone (its :class:`RenderOutcome` says why, naming it); the others still render.
:class:`RenderCancelled` is raised when ``cancelled()`` turns true (the running render is
stopped); whatever ``on_progress`` raises stops the running render too and propagates.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from backend.blender_render.options import RenderOptions
from backend.blender_render.task import (
    EVENTS_ENV,
    GRID_NAME,
    RenderTask,
    check_folder,
    parse_event,
    result_names,
)
from shared.errors import Anim4DError
from shared.manifest import read_manifest

ProgressFn = Callable[[str, float, str], None]
ROOT = Path(__file__).resolve().parents[2]  # the checkout holding backend/ and shared/
LINUX = sys.platform == "linux"
SETUP_SHARE, RENDER_SHARE = 0.1, 0.85  # of one task's progress; encoding takes the rest


class RenderCancelled(Anim4DError):
    """The caller cancelled; the running render was stopped."""

    code = "cancelled"


@dataclass
class RenderOutcome:
    """What became of one render: ``ok`` with its ``frames``, ``video`` (and ``blend``), or
    ``error``, a message naming the result. ``timings``: seconds for ``load_s`` (Blender),
    ``setup_s`` (import and scene), ``render_s`` and ``encode_s``."""

    name: str
    inputs: list[Path]
    ok: bool = False
    error: str = ""
    frames: list[Path] = field(default_factory=list)
    video: Path | None = None
    blend: Path | None = None
    fps: float = 0.0
    notices: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


def bpy_missing() -> str | None:
    """None when this Python can import ``bpy`` (found, not imported), else why not."""
    if importlib.util.find_spec("bpy") is not None:
        return None
    return f"the bpy module is not installed for {sys.executable} (pip install bpy==5.0.1)"


def _die_with_parent() -> None:
    """In the subprocess before it runs (Linux): be killed when the caller dies, so a killed
    job worker or CLI leaves no render behind."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def plan_tasks(folders: list[Path], out_dir: Path, options: RenderOptions
               ) -> tuple[list[RenderTask], list[RenderOutcome]]:
    """Tasks for the readable folders (one each, or one ``grid``) and failed outcomes for the
    others, each naming its folder and the problem."""
    names = result_names(folders)
    good, failed = [], []
    for folder, name in zip(folders, names, strict=True):
        try:
            check_folder(folder)
            good.append((Path(folder).resolve(), name))
        except Anim4DError as err:
            failed.append(RenderOutcome(name, [Path(folder)], error=f"{name}: {err}"))
    out = str(Path(out_dir).resolve())
    if options.grid and good:
        return [RenderTask([str(f) for f, _ in good], GRID_NAME, out, options)], failed
    return [RenderTask([str(f)], name, out, options) for f, name in good], failed


def _frame_count(task: RenderTask) -> int:
    try:
        return max(len(read_manifest(f).frame_times) for f in task.inputs)
    except Anim4DError:
        return 1


def render_results(folders: list[Path], out_dir: Path, options: RenderOptions | None = None,
                   on_progress: ProgressFn | None = None,
                   cancelled: Callable[[], bool] = lambda: False,
                   python: str = sys.executable) -> list[RenderOutcome]:
    """Render each of ``folders`` into ``out_dir`` (layout: :mod:`backend.blender_render.task`)
    one after another; outcomes in the order of ``folders`` (one ``grid`` outcome first with
    ``options.grid``, then the folders that could not be read)."""
    options = options or RenderOptions()
    report = on_progress or (lambda stage, fraction, message: None)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    tasks, failed = plan_tasks([Path(f) for f in folders], Path(out_dir), options)
    weights = [_frame_count(t) for t in tasks]
    total = float(sum(weights)) or 1.0
    done: dict[str, RenderOutcome] = {}
    before = 0.0
    for i, (task, weight) in enumerate(zip(tasks, weights, strict=True)):
        label = f"{task.name} ({i + 1}/{len(tasks)})"

        def task_progress(stage: str, frac: float, message: str, _b=before, _w=weight,
                          _label=label) -> None:
            report(f"{_label}: {stage}", (_b + frac * _w) / total, message)

        done[task.name] = run_task(task, task_progress, cancelled, python)
        before += weight
    rendered = sum(o.ok for o in done.values())
    report("done", 1.0, f"{rendered} of {len(done) + len(failed)} rendered")
    if options.grid:
        return [*done.values(), *failed]
    by_name = {**done, **{o.name: o for o in failed}}  # names are distinct without a grid
    return [by_name[n] for n in result_names([Path(f) for f in folders])]


def _stop(proc: subprocess.Popen) -> None:
    """Terminate the render's process group, then kill it if it lingers."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def run_task(task: RenderTask, report: ProgressFn, cancelled: Callable[[], bool],
             python: str = sys.executable) -> RenderOutcome:
    """Run one task in a subprocess; ``report(stage, fraction of this task, message)``."""
    outcome = RenderOutcome(task.name, [Path(f) for f in task.inputs])
    with tempfile.TemporaryDirectory(prefix="anim4d-render-") as tmp:
        spec = Path(tmp) / "task.json"
        spec.write_text(task.to_json())
        log_path = Path(tmp) / "blender.log"
        read_fd, write_fd = os.pipe()
        env = dict(os.environ)
        env[EVENTS_ENV] = str(write_fd)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
        env.setdefault("BLENDER_USER_RESOURCES", str(Path(tmp) / "blender_user"))
        with open(log_path, "w") as log:
            proc = subprocess.Popen([python, "-m", "backend.blender_render", str(spec)],
                                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=env, pass_fds=(write_fd,), start_new_session=True,
                                    preexec_fn=_die_with_parent if LINUX else None)
        os.close(write_fd)
        lines: queue.Queue[str | None] = queue.Queue()
        reader = threading.Thread(target=_read_lines, args=(read_fd, lines), daemon=True)
        reader.start()
        try:
            _follow(proc, lines, outcome, report, cancelled)
        finally:
            _stop(proc)
            reader.join(5.0)
        code = proc.wait()
        if not outcome.ok and not outcome.error:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-3:]
            how = f"signal {-code}" if code < 0 else f"exit status {code}"
            outcome.error = (f"{task.name}: Blender stopped ({how}) before finishing; its last "
                             f"output: {' | '.join(tail) or 'none'}")
    return outcome


def _read_lines(fd: int, out: queue.Queue) -> None:
    with os.fdopen(fd, "r", errors="replace") as stream:
        for line in stream:
            out.put(line)
    out.put(None)


def _follow(proc: subprocess.Popen, lines: queue.Queue, outcome: RenderOutcome,
            report: ProgressFn, cancelled: Callable[[], bool]) -> None:
    """Turn the subprocess's events into ``report`` calls and ``outcome`` fields until it
    closes its event pipe; raise :class:`RenderCancelled` when ``cancelled()``."""
    while True:
        if cancelled():
            raise RenderCancelled(f"{outcome.name}: render cancelled")
        try:
            line = lines.get(timeout=0.1)
        except queue.Empty:
            continue
        if line is None:
            return
        event = parse_event(line)
        if event is None:
            continue
        kind = event["event"]
        if kind == "stage":
            frac = 0.0 if event["stage"] == "importing" else (
                SETUP_SHARE if event["stage"] == "rendering" else SETUP_SHARE + RENDER_SHARE)
            report(event["stage"], frac, event.get("message", ""))
        elif kind == "frame":
            done, total = int(event["done"]), max(int(event["total"]), 1)
            report("rendering", SETUP_SHARE + RENDER_SHARE * done / total,
                   f"frame {done} of {total}")
        elif kind == "notice":
            outcome.notices.append(str(event["message"]))
        elif kind == "error":
            outcome.error = f"{outcome.name}: {event['message']}"
        elif kind == "done":
            outcome.ok = True
            outcome.frames = [Path(f) for f in event["frames"]]
            outcome.video = Path(event["video"])
            outcome.blend = Path(event["blend"]) if event.get("blend") else None
            outcome.fps = float(event["fps"])
            outcome.timings = {k: float(v) for k, v in event.items() if k.endswith("_s")}
            report("done", 1.0, f"{len(outcome.frames)} frames")
