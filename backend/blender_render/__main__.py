"""The render subprocess: ``python -m backend.blender_render TASK.json``.

Builds one scene (:mod:`bl_scene`), renders its frames and the MP4 (:mod:`bl_output`) and
reports through events (:mod:`task`) on the file descriptor named by ``$ANIM4D_RENDER_EVENTS``
(stdout when unset). Anything that goes wrong becomes one ``error`` event with a message that
names the result; the exit status is then 1.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import TextIO

from backend.blender_render import framing
from backend.blender_render.task import EVENTS_ENV, RenderTask, encode_event
from shared.errors import Anim4DError
from shared.manifest import read_manifest


def timing(task: RenderTask) -> tuple[float, int, int]:
    """``(fps, first frame, last frame)``: the option's fps or the first result's own; frames
    spanning the longest result (or the ``frames`` option)."""
    manifests = [read_manifest(f) for f in task.inputs]
    fps = task.options.fps or framing.result_fps(manifests[0].fps, manifests[0].frame_times)
    duration = max((m.frame_times[-1] - m.frame_times[0]) if m.frame_times else 0.0
                   for m in manifests)
    start, end = framing.frame_range(duration, fps, task.options.frames)
    return fps, start, end


def run_task(task: RenderTask, out: TextIO) -> dict:
    """Render ``task``; events go to ``out``. Returns the ``done`` event's content."""

    def emit(kind: str, **content) -> None:
        out.write(encode_event(kind, **content) + "\n")
        out.flush()

    t0 = time.perf_counter()
    emit("stage", stage="importing", message=", ".join(Path(f).name for f in task.inputs))
    fps, start, end = timing(task)
    from backend.blender_render import bl_output, bl_scene  # bpy loads here

    t_bpy = time.perf_counter()
    scene, placed = bl_scene.build_scene([Path(f) for f in task.inputs], task.options, fps,
                                         start, end, task.blend)
    for notice in [n for p in placed for n in p.notices] + bl_output.setup_render(scene,
                                                                                task.options):
        emit("notice", message=notice)
    t_setup = time.perf_counter()
    emit("stage", stage="rendering", message=f"frames {start}-{end} at {fps:g} fps")
    frames = bl_output.render_frames(scene, task.frames_dir,
                                     lambda done, total: emit("frame", done=done, total=total))
    t_render = time.perf_counter()
    emit("stage", stage="encoding", message=task.video.name)
    bl_output.encode_video(frames, task.video, scene)
    blend = bl_output.save_blend(task.blend) if task.blend is not None else None
    t_end = time.perf_counter()
    result = {"frames": [str(f) for f in frames], "video": str(task.video),
              "blend": str(blend) if blend else None, "fps": fps, "first_frame": start,
              "load_s": t_bpy - t0, "setup_s": t_setup - t_bpy, "render_s": t_render - t_setup,
              "encode_s": t_end - t_render}
    emit("done", **result)
    return result


def main(argv: list[str]) -> int:
    fd = os.environ.get(EVENTS_ENV)
    out = os.fdopen(int(fd), "w", buffering=1) if fd else sys.stdout
    if len(argv) != 1:
        out.write(encode_event("error", message="usage: python -m backend.blender_render "
                               "TASK.json", code="bad_param") + "\n")
        return 2
    task = RenderTask.from_json(Path(argv[0]).read_text())
    try:
        run_task(task, out)
    except Anim4DError as err:
        out.write(encode_event("error", message=str(err), code=err.code) + "\n")
        return 1
    except Exception as err:  # a Blender or data problem: say what, not where in our code
        out.write(encode_event("error", message=f"{type(err).__name__}: {err}",
                               code="render_failed") + "\n")
        return 1
    finally:
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
