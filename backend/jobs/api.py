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

from shared import __version__
from shared.errors import ParamError
from shared.manifest import Manifest
from shared.meshseq import MeshSequence, save_npz


class JobCancelled(Exception):
    """Raised inside a method by :meth:`JobContext.progress` once the job is cancelled."""


ProgressSink = Callable[[str, float, str], None]


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
    _last: float = field(default=0.0, repr=False)

    def model_folder(self, name: str) -> Path:
        """The folder of model ``name``; the error names the choices, never a path."""
        if name not in self.models:
            have = ", ".join(self.models) or "none"
            raise ParamError(f"this server has no model {name!r}; it has: {have}",
                             "unknown_model")
        return Path(self.models[name])

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

