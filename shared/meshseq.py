"""Constant-topology mesh sequences: the in-memory type and its ``.npz`` file.

Coordinates are right-handed, Y-up (as glTF), in source units. A sequence is

- ``vertices``: float32 ``[T, V, 3]``, the positions at each sample,
- ``faces``: int32 ``[F, 3]``, triangles indexing ``V``, the same for every frame,
- ``times``: float64 ``[T]``, seconds, strictly increasing,
- ``uvs``: optional float32 ``[V, 2]``, ``colors``: optional float32 ``[V, 4]`` (linear RGBA, 0..1).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import FormatError

NPZ_SCHEMA = 1


@dataclass
class MeshSequence:
    """A deforming triangle mesh sampled at ``times`` (see module docstring for shapes)."""

    vertices: np.ndarray
    faces: np.ndarray
    times: np.ndarray
    uvs: np.ndarray | None = None
    colors: np.ndarray | None = None
    name: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.vertices = np.ascontiguousarray(self.vertices, dtype=np.float32)
        self.faces = np.ascontiguousarray(self.faces, dtype=np.int32)
        self.times = np.ascontiguousarray(self.times, dtype=np.float64)
        if self.uvs is not None:
            self.uvs = np.ascontiguousarray(self.uvs, dtype=np.float32)
        if self.colors is not None:
            self.colors = np.ascontiguousarray(self.colors, dtype=np.float32)
        self.validate()

    @property
    def frame_count(self) -> int:
        return int(self.vertices.shape[0])

    @property
    def vertex_count(self) -> int:
        return int(self.vertices.shape[1])

    @property
    def fps(self) -> float:
        """Mean sampling rate (frames per second); 0 for a single frame."""
        if self.frame_count < 2:
            return 0.0
        return float((self.frame_count - 1) / (self.times[-1] - self.times[0]))

    def validate(self, where: str = "mesh sequence") -> None:
        """Raise :class:`FormatError` naming the first inconsistency found."""
        v, f, t = self.vertices, self.faces, self.times
        if v.ndim != 3 or v.shape[2] != 3:
            raise FormatError(f"{where}: vertices must be [T, V, 3], got shape {list(v.shape)}")
        if v.shape[0] < 1:
            raise FormatError(f"{where}: a sequence needs at least one frame")
        if f.ndim != 2 or f.shape[1] != 3:
            raise FormatError(f"{where}: faces must be [F, 3] triangles, got shape {list(f.shape)}")
        if f.size and (f.min() < 0 or f.max() >= v.shape[1]):
            raise FormatError(
                f"{where}: face indices must lie in [0, {v.shape[1] - 1}], "
                f"found [{int(f.min())}, {int(f.max())}]"
            )
        if t.shape != (v.shape[0],):
            raise FormatError(f"{where}: times must be [T] = [{v.shape[0]}], got {list(t.shape)}")
        if t.size > 1 and not np.all(np.diff(t) > 0):
            raise FormatError(f"{where}: times must be strictly increasing")
        if not np.all(np.isfinite(v)):
            raise FormatError(f"{where}: vertices contain NaN or infinite values")
        for nm, arr, width in (("uvs", self.uvs, 2), ("colors", self.colors, 4)):
            if arr is not None and arr.shape != (v.shape[1], width):
                raise FormatError(
                    f"{where}: {nm} must be [V, {width}] = [{v.shape[1]}, {width}], "
                    f"got {list(arr.shape)}"
                )

    def bbox_diagonal(self) -> float:
        """Length of the diagonal of the bounding box over all frames."""
        lo = self.vertices.min(axis=(0, 1))
        hi = self.vertices.max(axis=(0, 1))
        return float(np.linalg.norm(hi - lo))

    def slice_frames(self, start: int, stop: int) -> MeshSequence:
        """Frames ``[start, stop)`` as a new sequence sharing topology and attributes."""
        return MeshSequence(
            self.vertices[start:stop], self.faces, self.times[start:stop],
            self.uvs, self.colors, self.name, dict(self.meta),
        )


def save_npz(seq: MeshSequence, path: str | os.PathLike) -> Path:
    """Write ``seq`` as an uncompressed ``.npz`` (members stored, so they can be memory-mapped)."""
    path = Path(path)
    arrays: dict[str, np.ndarray] = {
        "schema": np.array(NPZ_SCHEMA, dtype=np.int32),
        "vertices": seq.vertices,
        "faces": seq.faces,
        "times": seq.times,
        "name": np.array(seq.name),
    }
    if seq.uvs is not None:
        arrays["uvs"] = seq.uvs
    if seq.colors is not None:
        arrays["colors"] = seq.colors
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    os.replace(tmp, path)
    return path


def load_npz(path: str | os.PathLike) -> MeshSequence:
    """Read a sequence written by :func:`save_npz`; errors name the file and the problem."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ("vertices", "faces", "times") if k not in z.files]
            if missing:
                raise FormatError(f"{path}: not a mesh sequence, missing arrays {missing}")
            schema = int(z["schema"]) if "schema" in z.files else NPZ_SCHEMA
            if schema > NPZ_SCHEMA:
                raise FormatError(
                    f"{path}: mesh sequence schema {schema} is newer than this software "
                    f"understands ({NPZ_SCHEMA}); update Anim4D"
                )
            return MeshSequence(
                vertices=z["vertices"],
                faces=z["faces"],
                times=z["times"],
                uvs=z["uvs"] if "uvs" in z.files else None,
                colors=z["colors"] if "colors" in z.files else None,
                name=str(z["name"]) if "name" in z.files else "",
            )
    except FormatError as err:
        if str(path) in str(err):
            raise
        raise FormatError(f"{path}: {err}") from None
    except (OSError, ValueError, KeyError) as err:
        raise FormatError(f"{path}: cannot read as a mesh sequence .npz ({err})") from None
