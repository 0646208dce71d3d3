"""Open result folders of any representation, and find them under a root folder.

:func:`open_result` reads and checks ``manifest.json`` and that every file it names exists; the
geometry itself loads lazily, on first access to :attr:`ResultData.mesh` or
:attr:`ResultData.gaussians` (or one Gaussian frame at a time with
:meth:`ResultData.gaussian_frame`). A result with several mesh sequences (``files.sequences``)
gives them all with :meth:`ResultData.mesh_sequence`; a ``video`` result holds no geometry, only
:attr:`ResultData.video`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .errors import FormatError
from .gaussians import GaussianSequence, gaussian_frame_paths, load_gaussian_frames, member_path
from .gsply import GaussianFrame, read_gsply
from .manifest import MANIFEST_NAME, Manifest, read_manifest
from .meshseq import MeshSequence, load_npz


@dataclass(eq=False)
class ResultData:
    """An opened result folder: its :class:`Manifest` and lazily loaded geometry."""

    folder: Path
    manifest: Manifest
    _mesh: MeshSequence | None = field(default=None, init=False, repr=False)
    _gaussians: GaussianSequence | None = field(default=None, init=False, repr=False)

    @property
    def representation(self) -> str:
        """``mesh_sequence`` or ``gaussian_sequence``."""
        return self.manifest.representation

    @property
    def frame_count(self) -> int:
        return len(self.manifest.frame_times)

    @property
    def name(self) -> str:
        return self.manifest.job_id or self.folder.name

    def file(self, role: str) -> Path:
        """Path of the single file named by ``files[role]`` (e.g. ``sequence``, ``pc2``)."""
        if role not in self.manifest.files:
            raise FormatError(f"{self.folder}: {MANIFEST_NAME} names no files.{role}")
        return member_path(self.folder, self.manifest.files[role], role)

    @property
    def mesh(self) -> MeshSequence:
        """The (first) mesh sequence (``files.sequence``), loaded on first access."""
        if self._mesh is None:
            self._mesh = self.mesh_sequence(0)
        return self._mesh

    @property
    def sequence_count(self) -> int:
        """How many mesh sequences the result holds (``files.sequences``; 0 for other kinds)."""
        return len(self.manifest.sequence_files)

    def mesh_sequence(self, index: int) -> MeshSequence:
        """Mesh sequence ``index`` of ``files.sequences`` (not cached), checked against the
        manifest's frame times."""
        self._require("mesh_sequence")
        names = self.manifest.sequence_files
        if not 0 <= index < len(names):
            raise FormatError(f"{self.folder}: no mesh sequence {index}; it holds {len(names)}")
        role = "sequences" if "sequences" in self.manifest.files else "sequence"
        seq = load_npz(member_path(self.folder, names[index], role))
        if seq.frame_count != self.frame_count:
            raise FormatError(
                f"{self.folder}: {names[index]} holds {seq.frame_count} "
                f"frames but {MANIFEST_NAME} lists {self.frame_count} frame_times"
            )
        return seq

    @property
    def video(self) -> Path:
        """The video file of a ``video`` result (``files.video``)."""
        self._require("video")
        return self.file("video")

    @property
    def gaussians(self) -> GaussianSequence:
        """Every Gaussian frame, loaded on first access (can be large: see gaussian_frame)."""
        if self._gaussians is None:
            self._require("gaussian_sequence")
            self._gaussians = load_gaussian_frames(self.folder, self.manifest)
        return self._gaussians

    def gaussian_frame(self, index: int) -> GaussianFrame:
        """Read Gaussian frame ``index`` alone (not cached)."""
        self._require("gaussian_sequence")
        return read_gsply(gaussian_frame_paths(self.folder, self.manifest)[index])

    def load(self) -> MeshSequence | GaussianSequence:
        """The geometry (the first mesh sequence, or the Gaussians); a video has none."""
        if self.representation == "video":
            raise FormatError(f"{self.folder}: holds a video ({self.manifest.files['video']}), "
                              "not geometry")
        return self.mesh if self.representation == "mesh_sequence" else self.gaussians

    def _require(self, representation: str) -> None:
        if self.representation != representation:
            raise FormatError(
                f"{self.folder}: holds a {self.representation!r} result, not {representation!r}"
            )


def check_result_files(folder: str | os.PathLike, manifest: Manifest) -> list[Path]:
    """Every file named in ``manifest.files`` (a name or a list of names per role, null = none):
    return their paths, or raise :class:`FormatError` naming the first missing one."""
    folder = Path(folder)
    paths: list[Path] = []
    for role, value in manifest.files.items():
        if value is None:
            continue
        names = value if isinstance(value, list) else [value]
        paths += [member_path(folder, nm, role) for nm in names]
    return paths


def open_result(folder: str | os.PathLike) -> ResultData:
    """Open a result folder: read and check its manifest and that every file it names exists."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    check_result_files(folder, manifest)
    return ResultData(folder, manifest)


@dataclass
class ResultScan:
    """What :func:`list_results` found: good ``results`` and ``broken`` (folder, reason) pairs."""

    results: list[ResultData]
    broken: list[tuple[Path, str]]


def list_results(root: str | os.PathLike) -> ResultScan:
    """Open every child folder of ``root`` that holds a ``manifest.json``, sorted by name.

    Folders without a manifest (unfinished or unrelated) are not results and are left out; folders
    whose manifest or files are broken are reported in ``broken`` with the reason.
    """
    root = Path(root)
    if not root.is_dir():
        raise FormatError(f"{root}: not a folder")
    scan = ResultScan([], [])
    for child in sorted(p for p in root.iterdir() if p.is_dir()):
        if not (child / MANIFEST_NAME).exists():
            continue
        try:
            scan.results.append(open_result(child))
        except FormatError as err:
            scan.broken.append((child, str(err)))
    return scan
