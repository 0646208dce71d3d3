"""What a job method sees: its context (progress, cancel, folders) and how it returns a result.

A method is a function ``run(ctx: JobContext, params: dict, inputs: list[Path]) -> Manifest``. It
runs inside a worker process, writes its result files into ``ctx.out_dir`` and returns the
:class:`~shared.manifest.Manifest` describing them (the engine fills in ``job_id`` and writes the
manifest last). It reports progress through ``ctx.progress``; that call raises
:class:`JobCancelled` when the job was cancelled, so cancellation is checked at every step.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from shared import __version__
from shared.errors import FormatError, JobError, ParamError
from shared.manifest import MANIFEST_NAME, Manifest
from shared.meshseq import MeshSequence, save_npz
from shared.params import KindSpec
from shared.results import ResultData, open_result


def inputs_by_slot(spec: KindSpec, inputs: list[Path]) -> dict[str, list[Path]]:
    """A job's input files grouped by the kind's inputs (``spec.inputs`` names, in order).

    The server stores a file sent for the kind's first input by its name and one sent for
    another input (``submit.inputs[i].input``, ``shared/PROTOCOL.md``) in a folder named after
    that input, so a file whose folder is named after a later input belongs to it.
    """
    names = [s.name for s in spec.inputs]
    out: dict[str, list[Path]] = {n: [] for n in names}
    for p in inputs:
        p = Path(p)
        slot = p.parent.name if p.parent.name in names[1:] else (names[0] if names else "")
        out.setdefault(slot, []).append(p)
    return out


class JobCancelled(Exception):
    """Raised inside a method by :meth:`JobContext.progress` once the job is cancelled."""


ProgressSink = Callable[[str, float, str], None]
#: ``preview_sink(content, arrays)``: a ``preview`` event (the latest replaces older ones).
PreviewSink = Callable[[dict, dict], None]


@dataclass
class JobContext:
    """Per-job handle given to a method.

    ``progress(stage, fraction, message)``: ``fraction`` in [0, 1] of the whole job.
    ``models``: ``{name: folder}`` of the models of this kind's method on this server (see
    :mod:`backend.models.registry`); :meth:`model_folder` resolves the ``model`` parameter.
    """

    job_id: str
    out_dir: Path
    work_dir: Path
    sink: ProgressSink = lambda stage, fraction, message: None
    cancelled: Callable[[], bool] = lambda: False
    min_interval: float = 0.05
    models: dict[str, str] = field(default_factory=dict)
    preview_sink: PreviewSink = lambda content, arrays: None
    finishing_sink: Callable[[], None] = lambda: None
    _last: float = field(default=0.0, repr=False)

    def source(self, job_id: str) -> Path:
        """The result folder of the finished job ``job_id``, the value of a ``job`` parameter.

        The server checked at submit time that the job exists and is done; job folders sit side
        by side in the server's store (``<data>/jobs/<id>/result``), so the folder is found from
        this job's own. Raises :class:`JobError` naming the job if it is gone since.
        """
        if not (isinstance(job_id, str) and 8 <= len(job_id) <= 64
                and set(job_id) <= set("0123456789abcdef")):
            raise JobError(f"{job_id!r} is not a job id")
        folder = self.out_dir.parent.parent / job_id / "result"
        if not (folder / MANIFEST_NAME).is_file():
            raise JobError(f"the result of job {job_id} is no longer on the server "
                           "(deleted or interrupted since this job was submitted)")
        return folder

    def open_source(self, job_id: str) -> ResultData:
        """:meth:`source`, opened (``shared.results.open_result``); errors name the job, not
        the server's folder."""
        folder = self.source(job_id)
        try:
            return open_result(folder)
        except FormatError as err:
            raise JobError(str(err).replace(str(folder), f"the result of job {job_id}"),
                           "bad_file") from None

    def model_folder(self, name: str) -> Path:
        """The folder of model ``name``; the error names the choices, never a path."""
        if name not in self.models:
            have = ", ".join(self.models) or "none"
            raise ParamError(f"this server has no model {name!r}; it has: {have}",
                             "unknown_model")
        return Path(self.models[name])

    def preview(self, content: dict, arrays: dict[str, np.ndarray]) -> None:
        """Send a ``preview`` event (JSON ``content`` + numpy ``arrays``); a newer preview
        replaces one a client has not received yet. Does not check for cancel."""
        self.preview_sink(content, arrays)

    def finishing(self) -> None:
        """Say that the method saw the cancel and is saving its latest state as the result
        (it then returns a manifest with ``extra.cancelled_at_step``): the server waits for it
        (up to its ``finish_grace_s``) instead of killing it after the cancel grace."""
        self.finishing_sink()

    def check_cancel(self) -> None:
        if self.cancelled():
            raise JobCancelled(self.job_id)

    def progress(self, stage: str, fraction: float, message: str = "", force: bool = False) -> None:
        """Report progress (rate-limited to ``min_interval``) and raise if cancelled."""
        self.check_cancel()
        now = time.monotonic()
        if force or fraction >= 1.0 or now - self._last >= self.min_interval:
            self._last = now
            self.sink(stage, float(min(max(fraction, 0.0), 1.0)), message)


def mesh_result(
    ctx: JobContext,
    seq: MeshSequence,
    kind: str,
    params: dict,
    seed: int | None = None,
    checkpoint_sha256: str | None = None,
    units: str = "source",
    extra: dict | None = None,
) -> Manifest:
    """Save ``seq`` as ``sequence.npz`` in ``ctx.out_dir`` and return its manifest.

    ``seq.times`` are shifted to start at 0 (the manifest's convention).
    """
    times = seq.times - seq.times[0]
    seq = MeshSequence(seq.vertices, seq.faces, times, seq.uvs, seq.colors, seq.name)
    save_npz(seq, ctx.out_dir / "sequence.npz")
    fps = seq.fps or float(params.get("fps", 0.0) or 0.0)
    return Manifest(
        kind=kind,
        representation="mesh_sequence",
        frame_times=[float(x) for x in times],
        fps=fps,
        files={"sequence": "sequence.npz"},
        params=dict(params),
        job_id=ctx.job_id,
        seed=seed,
        checkpoint_sha256=checkpoint_sha256,
        counts={
            "frames": seq.frame_count,
            "vertices": seq.vertex_count,
            "faces": int(seq.faces.shape[0]),
            "has_uvs": seq.uvs is not None,
            "has_colors": seq.colors is not None,
        },
        units=units,
        software_version=__version__,
        extra=dict(extra or {}),
    )



def mesh_sequences_result(
    ctx: JobContext,
    seqs: list[MeshSequence],
    kind: str,
    params: dict,
    **kwargs,
) -> Manifest:
    """Several mesh sequences sampled at the same times (e.g. n creatures) as one result.

    Sequence 0 is ``sequence.npz`` (``files.sequence``, what a protocol 1.0 reader imports), the
    others ``sequence_1.npz``, ...; ``files.sequences`` lists all in order and ``counts.sequences``
    their sizes. Each may have its own topology; ``kwargs`` as :func:`mesh_result`.
    """
    if not seqs:
        raise ValueError("a result needs at least one sequence")
    manifest = mesh_result(ctx, seqs[0], kind, params, **kwargs)
    names, counts = ["sequence.npz"], []
    for i, seq in enumerate(seqs):
        if seq.frame_count != seqs[0].frame_count or not np.allclose(
                seq.times - seq.times[0], manifest.frame_times, rtol=0, atol=1e-9):
            raise ValueError(f"sequence {i} is not sampled at the times of sequence 0")
        if i:
            times = np.asarray(manifest.frame_times, dtype=np.float64)
            names.append(f"sequence_{i}.npz")
            save_npz(MeshSequence(seq.vertices, seq.faces, times, seq.uvs, seq.colors, seq.name),
                     ctx.out_dir / names[-1])
        counts.append({"vertices": seq.vertex_count, "faces": int(seq.faces.shape[0])})
    manifest.files["sequences"] = names
    manifest.counts["sequences"] = counts
    return manifest
