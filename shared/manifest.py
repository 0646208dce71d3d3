"""``manifest.json``: what a result folder holds.

A result folder is self-describing: the add-on opens one with no backend. Fields:

- ``schema``: manifest schema version (int); ``software_version``: Anim4D version that wrote it.
- ``job_id``, ``kind``, ``params`` (complete, defaults filled), ``seed`` (or null),
  ``checkpoint_sha256`` (or null).
- ``representation``: ``mesh_sequence``, ``gaussian_sequence`` or (protocol 1.1) ``video``.
- ``frame_times``: seconds, one per frame, from 0; ``fps``: the nominal sampling rate.
- ``up_axis``: always ``"Y"`` (right-handed, as glTF); ``units``: ``"source"`` (the units of the
  input) or ``"meters"``.
- ``files``: role -> path relative to the folder (``sequence`` for meshes; ``frames`` a list of
  per-frame ``.ply`` for Gaussians; optional ``pc2``). Protocol 1.1: ``sequences``, a list of
  mesh sequence files sharing ``frame_times`` (several creatures in one result), whose first entry
  is ``files.sequence`` (so a 1.0 reader still finds one); ``video`` (an ``.mp4``) for a video.
- ``resample`` (1.1, optional): the kind that re-evaluates the result exactly at new times
  (:mod:`shared.resample`); empty when it cannot be re-evaluated.
- ``counts``: ``{"frames": T, "vertices": V, "faces": F}`` or ``{"frames": T, "gaussians": [...]}``.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from . import __version__
from .errors import FormatError

MANIFEST_NAME = "manifest.json"
MANIFEST_SCHEMA = 1
REPRESENTATIONS = ("mesh_sequence", "gaussian_sequence", "video")


@dataclass
class Manifest:
    kind: str
    representation: str
    frame_times: list[float]
    fps: float
    files: dict[str, Any]
    params: dict[str, Any] = field(default_factory=dict)
    job_id: str = ""
    seed: int | None = None
    checkpoint_sha256: str | None = None
    counts: dict[str, Any] = field(default_factory=dict)
    up_axis: str = "Y"
    units: str = "source"
    software_version: str = __version__
    schema: int = MANIFEST_SCHEMA
    created: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    # Cameras of the views a result was made from (video.to4d): a list of {name,
    # world_to_camera (4x4, OpenCV axes, Y-up world), K (3x3, pixels), width, height}.
    cameras: list[dict[str, Any]] = field(default_factory=list)
    # Protocol 1.1: how to re-evaluate this result exactly at new times (see shared.resample):
    # {"kind", "source" (job id; "" = this job), "end" (seconds or null: any t >= 0),
    # "times" (optional: the source second of each frame, when not frame_times)}; {} = cannot.
    resample: dict[str, Any] = field(default_factory=dict)

    def validate(self, where: str = MANIFEST_NAME) -> None:
        if self.representation not in REPRESENTATIONS:
            raise FormatError(
                f"{where}: representation {self.representation!r} is not one of {REPRESENTATIONS}"
            )
        if self.up_axis != "Y":
            raise FormatError(f"{where}: up_axis must be 'Y', got {self.up_axis!r}")
        t = self.frame_times
        if not t or any(b <= a for a, b in zip(t, t[1:], strict=False)):
            raise FormatError(f"{where}: frame_times must be a non-empty increasing list")
        if self.representation == "mesh_sequence" and "sequence" not in self.files:
            raise FormatError(f"{where}: a mesh_sequence needs files.sequence")
        seqs = self.files.get("sequences")
        if seqs is not None:
            if (self.representation != "mesh_sequence" or not isinstance(seqs, list) or not seqs
                    or not all(isinstance(n, str) and n for n in seqs)
                    or len(set(seqs)) != len(seqs) or seqs[0] != self.files.get("sequence")):
                raise FormatError(
                    f"{where}: files.sequences must be a list of distinct .npz names whose first "
                    f"is files.sequence, in a mesh_sequence result; got {seqs!r}")
        if self.representation == "video" and not isinstance(self.files.get("video"), str):
            raise FormatError(f"{where}: a video result needs files.video (an .mp4)")
        if self.resample and not (isinstance(self.resample.get("kind"), str)
                                  and self.resample["kind"]):
            raise FormatError(f"{where}: resample must name its kind, got {self.resample!r}")
        if self.representation == "gaussian_sequence":
            frames = self.files.get("frames")
            if not isinstance(frames, list) or len(frames) != len(t):
                raise FormatError(
                    f"{where}: a gaussian_sequence needs files.frames with one .ply per frame "
                    f"({len(t)})"
                )

    @property
    def sequence_files(self) -> list[str]:
        """The mesh sequence files, in order: ``files.sequences``, else ``[files.sequence]``."""
        if self.representation != "mesh_sequence":
            return []
        return list(self.files.get("sequences") or [self.files["sequence"]])

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict, where: str = MANIFEST_NAME) -> Manifest:
        if not isinstance(d, dict):
            raise FormatError(f"{where}: expected a JSON object")
        schema = d.get("schema", MANIFEST_SCHEMA)
        if not isinstance(schema, int) or schema > MANIFEST_SCHEMA:
            raise FormatError(
                f"{where}: manifest schema {schema!r} is newer than this software understands "
                f"({MANIFEST_SCHEMA}); update Anim4D"
            )
        try:
            m = cls(
                kind=str(d["kind"]), representation=str(d["representation"]),
                frame_times=[float(x) for x in d["frame_times"]], fps=float(d["fps"]),
                files=dict(d["files"]), params=dict(d.get("params") or {}),
                job_id=str(d.get("job_id", "")), seed=d.get("seed"),
                checkpoint_sha256=d.get("checkpoint_sha256"), counts=dict(d.get("counts") or {}),
                up_axis=str(d.get("up_axis", "Y")), units=str(d.get("units", "source")),
                software_version=str(d.get("software_version", "")), schema=schema,
                created=str(d.get("created", "")), extra=dict(d.get("extra") or {}),
                cameras=list(d.get("cameras") or []),
                resample=dict(d.get("resample") or {}),
            )
        except KeyError as err:
            raise FormatError(f"{where}: missing field {err.args[0]!r}") from None
        except (TypeError, ValueError) as err:
            raise FormatError(f"{where}: malformed field ({err})") from None
        m.validate(where)
        return m


def write_manifest(folder: str | os.PathLike, manifest: Manifest) -> Path:
    """Write ``folder/manifest.json`` atomically (it is written last: its presence marks done)."""
    manifest.validate()
    path = Path(folder) / MANIFEST_NAME
    tmp = path.with_name(MANIFEST_NAME + ".tmp")
    tmp.write_text(json.dumps(manifest.to_json(), indent=2))
    os.replace(tmp, path)
    return path


def read_manifest(folder: str | os.PathLike) -> Manifest:
    folder = Path(folder)
    path = folder / MANIFEST_NAME
    if not path.is_file():
        raise FormatError(f"{folder}: not a result folder (no {MANIFEST_NAME})")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise FormatError(f"{path}: cannot read as JSON ({err})") from None
    return Manifest.from_json(data, str(path))


def safe_member(folder: Path, name: Any, role: str) -> Path:
    """``folder/name`` for a file named in a manifest, refusing anything outside ``folder``.

    Results cross the network: absolute paths, ``..`` and drive letters are errors.
    """
    if not isinstance(name, str) or not name:
        raise FormatError(f"{folder}: files.{role} holds {name!r}, expected a file name")
    rel = PurePosixPath(name.replace("\\", "/"))
    if rel.is_absolute() or ".." in rel.parts or ":" in name:
        raise FormatError(
            f"{folder}: files.{role} names {name!r}; only paths inside the result folder are "
            "allowed"
        )
    return folder / rel
