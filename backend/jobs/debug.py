"""Diagnostic job kinds (``anim4d serve --debug-kinds``): they exercise the job engine.

``debug.sleep`` reports progress for a while (and can be told to ignore cancel), then returns a
waving strip of ``frames`` x ``vertices``; ``debug.crash``
kills its own worker process the way a segfault or the out-of-memory killer would;
``debug.fail`` raises an error; ``debug.echo`` turns an uploaded file into a one-frame result
whose vertex count is the file's byte count; ``debug.resample`` takes a finished job (protocol
1.1's ``job`` type) and a list of times (``floats``) and returns two sequences: the source's first
sequence at those times, and a copy of it moved along x; ``debug.resident`` loads a "model" (a
file named by path, read and hashed) through the process's model cache
(:mod:`backend.models.cache`), then runs as ``debug.sleep``: a kind declared resident, so with
``--executor ray`` it runs on a resident actor (its result's ``extra`` says whether the load hit
the cache, and in which process).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np

from backend.jobs.api import JobContext, mesh_result, mesh_sequences_result
from shared.errors import JobError
from shared.manifest import Manifest
from shared.meshseq import MeshSequence
from shared.params import InputSpec, KindSpec, ParamSpec

SLEEP = KindSpec(
    name="debug.sleep", title="Sleep", section="Debug", representation="mesh_sequence",
    description="Reports progress for `seconds`, then returns a one-triangle result.",
    params=(
        ParamSpec("seconds", "float", 1.0, "how long to run", 0.0, 3600.0),
        ParamSpec("steps", "int", 10, "progress steps", 1, 10000),
        ParamSpec("ignore_cancel", "bool", False, "keep running when cancelled"),
        ParamSpec("frames", "int", 1, "frames in the result (a waving strip)", 1, 100000),
        ParamSpec("vertices", "int", 3, "vertices per frame", 3, 10_000_000),
        ParamSpec("keep_on_cancel", "float", 0.0, "on cancel, spend this many seconds saving "
                  "the latest state and end done (extra.cancelled_at_step); 0: end cancelled",
                  0.0, 600.0),
        ParamSpec("write_first", "bool", False,
                  "write the result files before sleeping (a job stopped mid-way then leaves a "
                  "partial result behind)"),
        ParamSpec("preview", "bool", False,
                  "send a preview event (one Gaussian at x = the step) at each step"),
    ),
)
CRASH = KindSpec(
    name="debug.crash", title="Crash", section="Debug", representation="mesh_sequence",
    description="Kills its worker process (as a segfault or the OOM killer would).",
    params=(ParamSpec("after", "float", 0.1, "seconds before the crash", 0.0, 60.0),),
)
FAIL = KindSpec(
    name="debug.fail", title="Fail", section="Debug", representation="mesh_sequence",
    description="Raises a job error with the given message.",
    params=(ParamSpec("message", "str", "failed on purpose", "the error message"),),
)
ECHO = KindSpec(
    name="debug.echo", title="Echo", section="Debug", representation="mesh_sequence",
    description="One-frame result whose vertex count is the uploaded file's size in bytes.",
    inputs=(InputSpec("file", (), "any file"),),
)

RESIDENT_KIND = KindSpec(
    name="debug.resident", title="Resident (test)", section="Debug",
    representation="mesh_sequence",
    description="Loads `model_file` (read and hashed) through the worker process's model cache, "
                "then runs as debug.sleep; extra: model_loads, model_hits (this job's), pid.",
    params=(
        ParamSpec("model_file", "str", "", "a file on the worker's disk, loaded as a model"),
        *(p for p in SLEEP.params if p.name in ("seconds", "steps", "ignore_cancel")),
    ),
)

RESAMPLE = KindSpec(
    name="debug.resample", title="Resample (test)", section="Debug",
    representation="mesh_sequence",
    description="A finished mesh result at new times (linear between its frames), twice: as is "
                "and moved by `offset` along x.",
    params=(
        ParamSpec("source", "job", "", "the finished job whose result is resampled"),
        ParamSpec("times", "floats", (0.0,), "seconds into the source, increasing", 0.0, 1e6,
                  max_items=10_000),
        ParamSpec("offset", "float", 1.0, "x offset of the second sequence", -1e6, 1e6),
    ),
)


def _triangle(n: int = 3) -> MeshSequence:
    verts = np.zeros((1, max(n, 3), 3), np.float32)
    verts[0, :, 0] = np.arange(max(n, 3))
    verts[0, 1, 1] = 1.0
    return MeshSequence(verts, np.array([[0, 1, 2]]), np.zeros(1))


def _strip(frames: int, vertices: int, fps: float = 24.0) -> MeshSequence:
    """A strip of ``vertices`` points along x waving in y over ``frames`` frames."""
    x = np.arange(vertices, dtype=np.float32)
    t = np.arange(frames) / fps
    verts = np.zeros((frames, vertices, 3), np.float32)
    verts[:, :, 0] = x
    verts[:, :, 1] = np.sin(x[None, :] * 0.1 + t[:, None] * 2 * np.pi).astype(np.float32)
    verts[:, 1::2, 2] = 1.0
    i = np.arange(vertices - 2)
    faces = np.stack([i, i + 1, i + 2], axis=1)
    return MeshSequence(verts, faces, t)


def _step_preview(step: int, steps: int) -> dict:
    return {"stage": "sleeping", "step": step + 1, "steps": steps, "times": [0.0], "count": 1,
            "total": 1}


def _one_gaussian(step: int) -> dict[str, np.ndarray]:
    """A preview's arrays (see PROTOCOL.md): one Gaussian at (step, 0, 0), one time."""
    means = np.zeros((1, 1, 3), np.float32)
    means[0, 0, 0] = step
    return {"means": means, "quats": np.array([[[1, 0, 0, 0]]], np.float32),
            "log_scales": np.zeros((1, 1, 3), np.float32),
            "opacity_logits": np.zeros(1, np.float32), "sh_dc": np.zeros((1, 3), np.float32)}


def run_sleep(ctx: JobContext, params: dict, inputs: list[Path]) -> Manifest:
    steps, seconds = params["steps"], params["seconds"]
    manifest = None
    if params["write_first"]:
        manifest = mesh_result(ctx, _strip(params["frames"], params["vertices"]), SLEEP.name,
                               params)
    for i in range(steps):
        if params["keep_on_cancel"] > 0 and ctx.cancelled():
            ctx.finishing()
            time.sleep(params["keep_on_cancel"])
            return mesh_result(ctx, _strip(params["frames"], params["vertices"]), SLEEP.name,
                               params, extra={"cancelled_at_step": i})
        if params["ignore_cancel"]:
            ctx.sink("sleeping", i / steps, "ignoring cancel")
        else:
            ctx.progress("sleeping", i / steps, f"step {i + 1} of {steps}", force=True)
        if params["preview"]:
            ctx.preview(_step_preview(i, steps), _one_gaussian(i))
        time.sleep(seconds / steps)
    if manifest is not None:
        return manifest
    return mesh_result(ctx, _strip(params["frames"], params["vertices"]), SLEEP.name, params)


def _load_model_file(path: str) -> str:
    """A "model load": the file read whole and hashed."""
    import hashlib

    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError as err:
        raise JobError(f"model_file {path!r}: cannot read it ({err.strerror})") from None


def run_resident(ctx: JobContext, params: dict, inputs: list[Path]) -> Manifest:
    from backend.models import cache

    before = cache.stats()
    path = str(Path(params["model_file"]).resolve())
    ctx.progress("load", 0.0, "loading the model", force=True)
    sha = cache.cached(("debug.model", path), [path], lambda: _load_model_file(path))
    after = cache.stats()
    sleep = {**{p.name: p.default for p in SLEEP.params}, "seconds": params["seconds"],
             "steps": params["steps"], "ignore_cancel": params["ignore_cancel"]}
    manifest = run_sleep(ctx, sleep, inputs)
    manifest.kind = RESIDENT_KIND.name
    manifest.extra.update(model_sha256=sha, model_loads=after.loads - before.loads,
                          model_hits=after.hits - before.hits, pid=os.getpid())
    return manifest


def run_crash(ctx: JobContext, params: dict, inputs: list[Path]) -> Manifest:
    ctx.progress("about to crash", 0.5, force=True)
    time.sleep(params["after"])
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("unreachable")


def run_fail(ctx: JobContext, params: dict, inputs: list[Path]) -> Manifest:
    ctx.progress("failing", 0.5, force=True)
    raise JobError(params["message"])


def run_echo(ctx: JobContext, params: dict, inputs: list[Path]) -> Manifest:
    size = inputs[0].stat().st_size
    ctx.progress("echo", 1.0, f"{size} bytes", force=True)
    return mesh_result(ctx, _triangle(size), ECHO.name, params, extra={"input_bytes": size})


def resample_vertices(seq: MeshSequence, times: np.ndarray) -> np.ndarray:
    """``seq``'s vertices at ``times`` (seconds from its first sample), linear between frames.

    Returns float32 ``[len(times), V, 3]``; raises :class:`JobError` for times outside the
    sequence or not increasing.
    """
    t = seq.times - seq.times[0]
    if np.any(np.diff(times) <= 0):
        raise JobError(f"times must increase, got {times.tolist()}")
    if times[0] < 0 or times[-1] > t[-1] + 1e-9:
        raise JobError(f"times must lie in [0, {t[-1]:g}] s, the source's duration; got "
                       f"{times.tolist()}")
    hi = np.clip(np.searchsorted(t, times, side="right"), 1, max(len(t) - 1, 1))
    lo = hi - 1
    if len(t) == 1:
        return np.repeat(seq.vertices[:1], len(times), axis=0)
    w = np.clip((times - t[lo]) / (t[hi] - t[lo]), 0.0, 1.0)[:, None, None]
    v = seq.vertices.astype(np.float64)
    return ((1.0 - w) * v[lo] + w * v[hi]).astype(np.float32)


def run_resample(ctx: JobContext, params: dict, inputs: list[Path]) -> Manifest:
    source = ctx.open_source(params["source"])
    if source.representation != "mesh_sequence":
        raise JobError(f"job {params['source']} holds a {source.representation}; "
                       "debug.resample needs a mesh_sequence")
    seq = source.mesh
    times = np.asarray(params["times"], dtype=np.float64)
    ctx.progress("resampling", 0.5, f"{len(times)} times", force=True)
    verts = resample_vertices(seq, times)
    moved = verts.copy()
    moved[..., 0] += np.float32(params["offset"])
    seqs = [MeshSequence(v, seq.faces, times, seq.uvs, seq.colors, name)
            for v, name in ((verts, "resampled"), (moved, "offset"))]
    return mesh_sequences_result(ctx, seqs, RESAMPLE.name, params,
                                 extra={"source_job": params["source"]})


KINDS = [(SLEEP, "run_sleep"), (CRASH, "run_crash"), (FAIL, "run_fail"), (ECHO, "run_echo"),
         (RESAMPLE, "run_resample"), (RESIDENT_KIND, "run_resident")]
#: the debug kinds declared resident (JobKind.resident), by name
RESIDENT = {RESIDENT_KIND.name: "debug"}
