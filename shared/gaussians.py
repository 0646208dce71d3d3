"""Gaussian sequence results: one 3DGS ``.ply`` per frame plus ``manifest.json``.

A result folder holds ``frame_0000.ply``, ``frame_0001.ply``, ... (see :mod:`.gsply`) and a
``manifest.json`` with ``representation = "gaussian_sequence"``, ``files.frames`` (the frame file
names in time order), ``counts.frames`` and ``counts.gaussians`` (one count per frame).

The number of Gaussians may differ from frame to frame (a method may densify or prune while it
fits each frame), so a reader must never assume frame ``i`` and frame ``i + 1`` correspond splat by
splat unless the counts are equal and the producer says so. Every frame of a sequence has the same
SH degree. The manifest is written last: a folder without one is incomplete.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from .errors import FormatError
from .gsply import GaussianFrame, read_gsply, write_gsply
from .manifest import MANIFEST_NAME, Manifest, read_manifest, safe_member, write_manifest

REPRESENTATION = "gaussian_sequence"


def frame_file_name(index: int) -> str:
    """File name of frame ``index``: ``frame_0000.ply`` (wider past 9999)."""
    return f"frame_{index:04d}.ply"


@dataclass(eq=False)
class GaussianSequence:
    """Frames of Gaussians sampled at ``times`` (float64 ``[T]`` seconds, strictly increasing).

    ``frames[i].count`` may differ between frames; all frames share one SH degree.
    """

    frames: list[GaussianFrame]
    times: np.ndarray
    name: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.frames = list(self.frames)
        self.times = np.ascontiguousarray(self.times, dtype=np.float64)
        self.validate()

    @property
    def frame_count(self) -> int:
        return len(self.frames)

    @property
    def gaussian_counts(self) -> list[int]:
        """Gaussians per frame, ``[T]``."""
        return [f.count for f in self.frames]

    @property
    def sh_degree(self) -> int:
        return self.frames[0].sh_degree

    @property
    def fps(self) -> float:
        """Mean sampling rate (frames per second); 0 for a single frame."""
        return _mean_fps(self.times)

    def validate(self, where: str = "Gaussian sequence") -> None:
        """Raise :class:`FormatError` naming the first inconsistency found."""
        t = self.times
        if not self.frames:
            raise FormatError(f"{where}: a sequence needs at least one frame")
        if t.shape != (len(self.frames),):
            raise FormatError(
                f"{where}: times must be [T] = [{len(self.frames)}], got {list(t.shape)}"
            )
        if not np.all(np.isfinite(t)) or (t.size > 1 and not np.all(np.diff(t) > 0)):
            raise FormatError(f"{where}: times must be finite and strictly increasing")
        degrees = sorted({f.sh_degree for f in self.frames})
        if len(degrees) > 1:
            raise FormatError(f"{where}: all frames must share one SH degree, found {degrees}")


def _mean_fps(times: np.ndarray | list[float]) -> float:
    t = np.asarray(times, dtype=np.float64)
    if t.size < 2:
        return 0.0
    return float((t.size - 1) / (t[-1] - t[0]))


class GaussianResultWriter:
    """Write a Gaussian result folder one frame at a time (frames stream in over the network).

    ::

        with GaussianResultWriter(folder, kind="ds4d", params=params) as w:
            for frame, t in incoming:
                w.add_frame(frame, t)
        manifest = w.manifest           # finish() ran on a clean exit

    Each frame file is complete on disk when :meth:`add_frame` returns. :meth:`finish` writes the
    manifest (last). Leaving the ``with`` block by an exception writes no manifest, so the folder
    stays marked incomplete. An existing ``manifest.json`` is an error unless ``overwrite`` is
    true, in which case it is removed first (stale frame files it named are left in place).
    """

    def __init__(
        self,
        folder: str | os.PathLike,
        *,
        kind: str,
        params: dict[str, Any] | None = None,
        job_id: str = "",
        seed: int | None = None,
        checkpoint_sha256: str | None = None,
        units: str = "source",
        extra: dict[str, Any] | None = None,
        overwrite: bool = False,
    ):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        manifest_path = self.folder / MANIFEST_NAME
        if manifest_path.exists():
            if not overwrite:
                raise FileExistsError(f"{self.folder}: already holds a result ({MANIFEST_NAME})")
            manifest_path.unlink()
        self._fields: dict[str, Any] = dict(
            kind=kind, params=dict(params or {}), job_id=job_id, seed=seed,
            checkpoint_sha256=checkpoint_sha256, units=units, extra=dict(extra or {}),
        )
        self.names: list[str] = []
        self.times: list[float] = []
        self.counts: list[int] = []
        self._degree: int | None = None
        self.manifest: Manifest | None = None

    @property
    def frame_count(self) -> int:
        return len(self.names)

    def add_frame(self, frame: GaussianFrame, time: float) -> Path:
        """Write the next frame (at ``time`` seconds, later than the previous one); its path."""
        if self.manifest is not None:
            raise RuntimeError(f"{self.folder}: the result is already finished")
        index = len(self.names)
        time = float(time)
        if not np.isfinite(time) or (self.times and time <= self.times[-1]):
            raise FormatError(
                f"frame {index}: time {time} must be finite and later than the previous frame's "
                f"({self.times[-1] if self.times else None})"
            )
        if self._degree is not None and frame.sh_degree != self._degree:
            raise FormatError(
                f"frame {index}: SH degree {frame.sh_degree} differs from the sequence's "
                f"({self._degree})"
            )
        name = frame_file_name(index)
        path = write_gsply(self.folder / name, frame)
        self._degree = frame.sh_degree
        self.names.append(name)
        self.times.append(time)
        self.counts.append(frame.count)
        return path

    def finish(self, fps: float | None = None) -> Manifest:
        """Write ``manifest.json`` and return it; ``fps`` defaults to the mean frame rate."""
        if self.manifest is not None:
            return self.manifest
        if not self.names:
            raise FormatError(f"{self.folder}: a Gaussian result needs at least one frame")
        manifest = Manifest(
            representation=REPRESENTATION,
            frame_times=list(self.times),
            fps=float(_mean_fps(self.times) if fps is None else fps),
            files={"frames": list(self.names)},
            counts={"frames": len(self.names), "gaussians": list(self.counts)},
            created=datetime.now(UTC).isoformat(timespec="seconds"),
            **self._fields,
        )
        write_manifest(self.folder, manifest)
        self.manifest = manifest
        return manifest

    def __enter__(self) -> GaussianResultWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.finish()


def write_gaussian_result(
    folder: str | os.PathLike,
    seq: GaussianSequence,
    *,
    kind: str,
    params: dict[str, Any] | None = None,
    job_id: str = "",
    seed: int | None = None,
    checkpoint_sha256: str | None = None,
    fps: float | None = None,
    units: str = "source",
    extra: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> Manifest:
    """Write ``seq`` as ``folder/frame_0000.ply`` ... and ``folder/manifest.json`` (last)."""
    seq.validate()
    writer = GaussianResultWriter(
        folder, kind=kind, params=params, job_id=job_id, seed=seed,
        checkpoint_sha256=checkpoint_sha256, units=units, extra=extra, overwrite=overwrite,
    )
    for frame, t in zip(seq.frames, seq.times, strict=True):
        writer.add_frame(frame, float(t))
    return writer.finish(fps)


def gaussian_frame_paths(folder: str | os.PathLike, manifest: Manifest) -> list[Path]:
    """Paths of the frame files named in ``manifest``; each must exist inside ``folder``."""
    folder = Path(folder)
    if manifest.representation != REPRESENTATION:
        raise FormatError(
            f"{folder}: holds a {manifest.representation!r} result, not a {REPRESENTATION!r}"
        )
    return [member_path(folder, name, "frames") for name in manifest.files["frames"]]


def member_path(folder: Path, name: Any, role: str) -> Path:
    """``folder/name`` for a file named in a manifest: relative, inside ``folder``, existing."""
    path = safe_member(folder, name, role)
    if not path.is_file():
        raise FormatError(
            f"{folder}: file {name!r} (files.{role} in {MANIFEST_NAME}) is missing from the "
            "result folder"
        )
    return path


def load_gaussian_frames(folder: str | os.PathLike, manifest: Manifest) -> GaussianSequence:
    """Read every frame named in ``manifest`` (checked against ``counts.gaussians``)."""
    folder = Path(folder)
    paths = gaussian_frame_paths(folder, manifest)
    frames = [read_gsply(p) for p in paths]
    expected = manifest.counts.get("gaussians")
    counts = [f.count for f in frames]
    if isinstance(expected, list) and expected != counts:
        if len(expected) != len(counts):
            why = f"lists {len(expected)} counts for {len(counts)} frames"
        else:
            i = next(i for i, (a, b) in enumerate(zip(expected, counts, strict=True)) if a != b)
            why = f"says {expected[i]} Gaussians for {paths[i].name}, which holds {counts[i]}"
        raise FormatError(f"{folder}: counts.gaussians in {MANIFEST_NAME} {why}")
    try:
        return GaussianSequence(frames, np.asarray(manifest.frame_times), name=manifest.job_id)
    except FormatError as err:
        raise FormatError(f"{folder}: {err}") from None


def read_gaussian_result(folder: str | os.PathLike) -> GaussianSequence:
    """Read a folder written by :func:`write_gaussian_result` (all frames, eagerly)."""
    return load_gaussian_frames(folder, read_manifest(folder))
