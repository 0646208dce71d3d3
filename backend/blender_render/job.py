"""The ``render.video`` job kind: render a finished job's result to an MP4 on the server.

It takes the job through protocol 1.1's ``job`` parameter and returns a ``video`` result:
``files.video`` = ``render.mp4`` (H.264) and ``files.still`` = ``still.png`` (its middle
frame), ``frame_times`` the rendered frames' times, ``counts`` ``{frames, width, height}``. The
render runs in its own subprocess (:func:`backend.blender_render.run.render_results`); progress
is reported per frame and a cancel stops it. Offered only where ``bpy`` is installed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from backend.blender_render.options import CAMERAS, DEVICES, RenderOptions
from backend.blender_render.run import RenderCancelled, render_results
from backend.jobs.api import JobCancelled, JobContext
from shared import __version__
from shared.errors import JobError
from shared.manifest import Manifest
from shared.params import KindSpec, ParamSpec

VIDEO_NAME = "render.mp4"
STILL_NAME = "still.png"

RENDER_KIND = KindSpec(
    name="render.video", title="Render video", section="Render", representation="video",
    description="Render a finished job's result (mesh or Gaussian sequence) with Cycles to an "
                "MP4: a camera framing the whole animation, three-point lighting and a "
                "shadow-catching ground.",
    params=(
        ParamSpec("source", "job", "", "the finished job whose result is rendered"),
        ParamSpec("resolution", "int", 256, "width and height of the video, pixels", 16, 4096),
        ParamSpec("samples", "int", 32, "Cycles samples per pixel", 1, 4096),
        ParamSpec("camera", "enum", "fixed", "fixed 3/4 view, or one turn around the object",
                  choices=CAMERAS),
        ParamSpec("fps", "float", 0.0, "frame rate; 0: the result's own", 0.0, 240.0),
        ParamSpec("start", "int", 0, "first frame to render (1 = the result's first); "
                  "0: from the start", 0, 100000),
        ParamSpec("end", "int", 0, "last frame to render; 0: to the end", 0, 100000),
        ParamSpec("device", "enum", "auto", "Cycles device: the server's GPU when it has one",
                  choices=DEVICES),
    ),
)


def options_from_params(params: dict) -> RenderOptions:
    """The job's parameters as :class:`RenderOptions` (``start``/``end`` 0: the whole
    animation)."""
    start, end = int(params.get("start", 0)), int(params.get("end", 0))
    frames = None
    if start or end:
        if not (start and end):
            raise JobError(f"start {start}, end {end}: give both, or neither (0, 0) for the "
                           "whole animation")
        frames = (start, end)
    return RenderOptions(resolution=int(params["resolution"]), samples=int(params["samples"]),
                         camera=str(params["camera"]), fps=float(params["fps"]), frames=frames,
                         device=str(params["device"]))


def run_render_video(ctx: JobContext, params: dict, inputs: list[Path]) -> Manifest:
    source = ctx.source(params["source"])
    options = options_from_params(params)
    work = ctx.work_dir / "render"
    try:
        [outcome] = render_results(  # every event counts: a stage or a frame done
            [source], work, options, cancelled=ctx.cancelled,
            on_progress=lambda stage, fraction, message: ctx.progress(stage, fraction, message,
                                                                      force=True))
    except RenderCancelled:
        raise JobCancelled(ctx.job_id) from None
    if not outcome.ok:
        message = outcome.error.removeprefix(f"{outcome.name}: ")
        for path in {str(source.resolve()), str(source)}:  # clients see job ids, not paths
            message = message.replace(path, f"the result of job {params['source']}")
        raise JobError(message)
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(outcome.video, ctx.out_dir / VIDEO_NAME)
    shutil.copyfile(outcome.frames[len(outcome.frames) // 2], ctx.out_dir / STILL_NAME)
    times = [i / outcome.fps for i in range(len(outcome.frames))]  # from 0, as manifests are
    return Manifest(
        kind=RENDER_KIND.name, representation="video", frame_times=times, fps=outcome.fps,
        files={"video": VIDEO_NAME, "still": STILL_NAME}, params=dict(params),
        job_id=ctx.job_id,
        counts={"frames": len(outcome.frames), "width": options.resolution,
                "height": options.resolution},
        software_version=__version__,
        extra={"source_job": params["source"], "notices": outcome.notices,
               "first_frame": int(options.frames[0]) if options.frames else 1,
               "timings_s": {k: round(v, 3) for k, v in outcome.timings.items()}},
    )
