"""Write a PC2 point cache frame batch by frame batch (frames arrive over the network).

PC2 layout (little-endian): ``b"POINTCACHE2\\0"``, int32 version (1), int32 point count, float32
start frame, float32 sample rate, int32 sample count, then float32 ``[samples, points, 3]``. The
add-on writes start 0 and rate 1, so Mesh Cache frame ``i`` is sample ``i``. Appending rewrites the
sample count in the header after the new data is on disk, so a reader never sees a count larger
than the data.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

MAGIC = b"POINTCACHE2\0"
_HEADER = struct.Struct("<12siiffi")
_COUNT_OFFSET = 28


class Pc2Appender:
    """Create (or truncate) a PC2 file for ``points`` vertices and append frames to it."""

    def __init__(self, path: str | os.PathLike, points: int):
        self.path = Path(path)
        self.points = int(points)
        self.samples = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "wb") as fh:
            fh.write(_HEADER.pack(MAGIC, 1, self.points, 0.0, 1.0, 0))

    def append(self, frames: np.ndarray) -> int:
        """Append ``frames`` ``[b, points, 3]`` (Blender space); returns the new sample count."""
        data = np.ascontiguousarray(frames, dtype="<f4")
        if data.ndim != 3 or data.shape[1:] != (self.points, 3):
            raise ValueError(f"PC2 frames must be [b, {self.points}, 3], got {list(data.shape)}")
        with open(self.path, "r+b") as fh:
            fh.seek(0, os.SEEK_END)
            fh.write(data.tobytes())
            fh.flush()
            self.samples += data.shape[0]
            fh.seek(_COUNT_OFFSET)
            fh.write(struct.pack("<i", self.samples))
        return self.samples


def read_pc2_header(path: str | os.PathLike) -> tuple[int, float, float, int]:
    """``(points, start, rate, samples)`` of a PC2 file (raises ValueError if not PC2)."""
    with open(path, "rb") as fh:
        raw = fh.read(_HEADER.size)
    if len(raw) < _HEADER.size:
        raise ValueError(f"{path}: too short for a PC2 header")
    magic, _version, points, start, rate, samples = _HEADER.unpack(raw)
    if magic != MAGIC:
        raise ValueError(f"{path}: not a PC2 file")
    return points, start, rate, samples
