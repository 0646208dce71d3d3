"""PC2 point caches (the format Blender's Mesh Cache modifier reads): numpy and stdlib only.

Layout (little-endian)::

    char[12] "POINTCACHE2\\0"
    int32    version (1)
    int32    number of points
    float32  start frame
    float32  sample rate (frames between two samples; 1.0 = one sample per frame)
    int32    number of samples
    float32  [samples, points, 3]

Coordinates are stored as given: Anim4D writes its Y-up right-handed coordinates and the add-on
maps the axes. :class:`PC2Writer` streams frames to disk (the header's sample count is kept
up to date after every append, so a partial file stays readable).
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from types import TracebackType

import numpy as np

from .errors import FormatError

SIGNATURE = b"POINTCACHE2\0"
VERSION = 1
HEADER = struct.Struct("<12siiffi")  # 32 bytes
_COUNT_OFFSET = HEADER.size - 4


def _frames_array(frames: np.ndarray) -> np.ndarray:
    arr = np.asarray(frames, dtype="<f4")
    if arr.ndim == 2 and arr.shape[1] == 3:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"PC2 frames must be [T, V, 3], got shape {list(arr.shape)}")
    return np.ascontiguousarray(arr)


def write_pc2(
    path: str | os.PathLike, frames: np.ndarray, start_frame: float = 0.0,
    sample_rate: float = 1.0,
) -> Path:
    """Write ``frames`` float32 ``[T, V, 3]`` to ``path`` atomically."""
    path = Path(path)
    arr = _frames_array(frames)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(HEADER.pack(SIGNATURE, VERSION, arr.shape[1], float(start_frame),
                             float(sample_rate), arr.shape[0]))
        fh.write(arr.tobytes())
    os.replace(tmp, path)
    return path


def read_pc2_header(path: str | os.PathLike) -> tuple[int, float, float, int]:
    """(points, start frame, sample rate, samples) after validating the header and file size."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(HEADER.size)
    except OSError as err:
        raise FormatError(f"{path}: cannot read ({err.strerror})") from None
    if len(head) < HEADER.size:
        raise FormatError(
            f"{path}: truncated PC2 header: expected {HEADER.size} bytes, found {len(head)}"
        )
    sig, version, points, start, rate, samples = HEADER.unpack(head)
    if sig != SIGNATURE:
        raise FormatError(f"{path}: not a PC2 point cache (signature {sig!r}, expected "
                          f"{SIGNATURE!r})")
    if version != VERSION:
        raise FormatError(f"{path}: PC2 version {version} is not supported (expected {VERSION})")
    if points < 0 or samples < 0:
        raise FormatError(f"{path}: bad PC2 header (points={points}, samples={samples})")
    expected = HEADER.size + 12 * points * samples
    if size != expected:
        what = "truncated" if size < expected else "trailing data in"
        raise FormatError(
            f"{path}: {what} PC2 file: header ({points} points x {samples} samples) needs "
            f"{expected} bytes, found {size}"
        )
    return points, float(start), float(rate), samples


def read_pc2(path: str | os.PathLike) -> tuple[np.ndarray, float, float]:
    """Return (frames float32 ``[T, V, 3]``, start frame, sample rate)."""
    points, start, rate, samples = read_pc2_header(path)
    data = np.fromfile(path, dtype="<f4", count=samples * points * 3, offset=HEADER.size)
    return data.reshape(samples, points, 3).astype(np.float32), start, rate


class PC2Writer:
    """Stream frames into a PC2 file: ``with PC2Writer(p, points) as w: w.append(frame)``.

    ``append`` takes ``[V, 3]`` or ``[k, V, 3]``; the header's sample count is rewritten after
    each append. The file is written in place (not atomically).
    """

    def __init__(
        self, path: str | os.PathLike, num_points: int, start_frame: float = 0.0,
        sample_rate: float = 1.0,
    ):
        self.path = Path(path)
        self.num_points = int(num_points)
        self.samples = 0
        self._fh = open(self.path, "wb")
        self._fh.write(HEADER.pack(SIGNATURE, VERSION, self.num_points, float(start_frame),
                                   float(sample_rate), 0))

    def append(self, frames: np.ndarray) -> None:
        arr = _frames_array(frames)
        if arr.shape[1] != self.num_points:
            raise ValueError(
                f"{self.path}: frame has {arr.shape[1]} points, the cache has {self.num_points}"
            )
        self._fh.seek(0, os.SEEK_END)
        self._fh.write(arr.tobytes())
        self.samples += arr.shape[0]
        self._fh.seek(_COUNT_OFFSET)
        self._fh.write(struct.pack("<i", self.samples))
        self._fh.flush()

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()

    def __enter__(self) -> PC2Writer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
