"""``anim4d resample JOB (--times T,... | --fps F | --speed S)``: a finished result re-evaluated
exactly at new times by the kind its manifest names (``manifest.resample``, protocol 1.1).

- ``--times 0,0.1,0.25``: those seconds of the source (the result plays them as given);
- ``--fps F``: the source's span sampled at ``F`` (the result plays at ``F``);
- ``--speed S``: the source's span slowed (``S < 1``) or sped up, shown at the source's fps:
  source second ``i * S / fps`` on frame ``i`` (0.25 = quarter speed, four times the frames).

A result that was itself resampled is resampled again from its source job.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np

from blender_addon.core.client_types import HelloInfo, JobInfo
from shared.errors import Anim4DError, ParamError
from shared.resample import ResampleInfo, check_times, times_for_fps, times_for_speed

from .client_cmds import _fetch, _report, _wait_with_bar, connect, resolve_job


@dataclass(frozen=True)
class ResampleRequest:
    """What ``anim4d resample`` submits: ``kind`` with ``params`` (``source``, ``times``...)."""

    kind: str
    params: dict
    source: str
    times: np.ndarray
    #: the rate the frames are meant to play at (0: at the times given); ``timed`` when the
    #: kind writes it into the result (its ``fps`` parameter), else the caller should say so
    play_fps: float = 0.0
    timed: bool = True


def plan_request(job: JobInfo, hello: HelloInfo, times: str | None = None,
                 fps: float | None = None, speed: float | None = None) -> ResampleRequest:
    """The resample job for ``job`` (a finished job, its manifest in ``job.result``): one of
    ``times`` (text ``0,0.5``), ``fps`` or ``speed``. Errors name the job and what is wrong."""
    if job.state != "done" or not job.result:
        why = f" ({job.error['message']})" if job.error else ""
        raise Anim4DError(f"job {job.id[:12]} is {job.state}{why}; only a finished (done) job "
                          "can be resampled", "bad_param")
    manifest = job.result
    info = ResampleInfo.from_manifest(manifest)
    if info is None:
        able = sorted({k.name for k in hello.kinds if k.resample_kind})
        raise Anim4DError(f"job {job.id[:12]} ({job.kind}) cannot be re-evaluated at new times; "
                          "results of these kinds can: " + (", ".join(able) or "none here"),
                          "not_resamplable")
    spec = hello.kind(info.kind)
    src = info.source_times(manifest.get("frame_times") or [0.0])
    start, stop = float(src.min()), float(src.max())
    src_fps = float(manifest.get("fps") or 0.0)
    if src_fps <= 0:
        src_fps = (len(src) - 1) / (stop - start) if stop > start else 24.0
    if sum(x is not None for x in (times, fps, speed)) != 1:
        raise ParamError("give exactly one of --times, --fps, --speed")
    if times is not None:
        t = np.asarray(spec.param("times").coerce(times, info.kind), dtype=np.float64)
        play = 0.0
    elif fps is not None:
        t, play = times_for_fps(start, stop, fps), float(fps)
    else:
        t, play = times_for_speed(start, stop, src_fps, float(speed)), src_fps
    t = check_times(t, info.end, info.kind)
    params: dict = {"source": info.source, "times": [float(x) for x in t]}
    names = {p.name for p in spec.params}
    if "fps" in names:
        params["fps"] = play
    src_params = manifest.get("params") or {}
    for name in names - set(params):  # e.g. creature.resample's model: the source's
        if name in src_params:
            params[name] = src_params[name]
    return ResampleRequest(info.kind, spec.validate_params(params), info.source, t, play,
                           "fps" in names or play == 0)


def cmd_resample(args: argparse.Namespace) -> int:
    with connect(args) as client:
        hello = client.hello()
        job_id = resolve_job(client, args.id)
        req = plan_request(client.job(job_id), hello, args.times, args.fps, args.speed)
        new = client.submit(req.kind, req.params)
        print(f"submitted {req.kind} as job {new}: {len(req.times)} times, "
              f"{req.times[0]:g} to {req.times[-1]:g} s of job {req.source[:12]}", flush=True)
        if not req.timed:
            print(f"note: {req.kind} times its frames at the source's seconds; play them at "
                  f"{req.play_fps:g} fps for this speed", flush=True)
        if not args.wait:
            return 0
        _report(_wait_with_bar(client, new, req.kind))
        if args.out:
            _fetch(client, new, args.out)
    return 0
