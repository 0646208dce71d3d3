"""A preallocated file that mesh frames are written straight into, at their final place.

The client assembling a fetched result writes each received frame batch with one write at its
offset in the final file: no memory map (whose page faults cost more than the copy), no
flush per batch, no second pass over the data when the result completes.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .errors import FormatError
from .npzmap import npz_member

FRAME_DTYPE = np.dtype("<f4")


class FrameFile:
    """The region ``[offset, offset + T*V*12)`` of ``path`` holds float32 ``[T, V, 3]`` vertices
    (C order); :meth:`write` puts frames ``[a, a+b)`` there. The file stays open until
    :meth:`close`."""

    def __init__(self, path: str | os.PathLike, offset: int, shape: tuple[int, ...],
                 file: BinaryIO | None = None):
        self.path = Path(path)
        self.offset = int(offset)
        self.shape = tuple(int(s) for s in shape)
        self.frame_bytes = int(np.prod(self.shape[1:])) * FRAME_DTYPE.itemsize
        self._fh = file or open(self.path, "r+b", buffering=0)  # noqa: SIM115 (see close())

    @classmethod
    def npz(cls, path: str | os.PathLike, rest: np.ndarray, data_offset: int, size: int,
            frames: int, where: str) -> FrameFile:
        """Create ``path``, a stored ``.npz`` of ``size`` bytes, from ``rest``: its bytes outside
        the ``vertices`` data range ``[data_offset, data_offset + size - len(rest))`` (see
        :func:`shared.npzmap.npz_rest`); the range is left to :meth:`write`. Checks that the file
        really holds ``vertices`` float32 ``[frames, V, 3]`` in that range."""
        rest = np.ascontiguousarray(rest, dtype=np.uint8).reshape(-1)
        nbytes = size - rest.size
        if not (0 <= data_offset <= rest.size and nbytes >= 0):
            raise FormatError(f"{where}: a vertex range at byte {data_offset} of a {size}-byte "
                              f"file does not fit around the {rest.size} bytes sent")
        fh = open(path, "w+b", buffering=0)  # noqa: SIM115 (kept open for the frames)
        try:
            fh.write(memoryview(rest[:data_offset]))
            preallocate(fh, size)
            fh.seek(data_offset + nbytes)
            fh.write(memoryview(rest[data_offset:]))
            member = npz_member(path, "vertices", fh)
        except FormatError as err:
            fh.close()
            raise FormatError(f"{where}: the sequence file sent is not a usable .npz ({err})"
                              ) from None
        except BaseException:
            fh.close()
            raise
        if (not member.stored or member.offset != data_offset or member.nbytes != nbytes
                or member.dtype != FRAME_DTYPE or member.fortran or len(member.shape) != 3
                or member.shape[0] != frames or member.shape[2] != 3):
            fh.close()
            raise FormatError(
                f"{where}: the sequence file's vertices are {member.dtype} "
                f"{list(member.shape)} at byte {member.offset}; expected stored float32 "
                f"[{frames}, V, 3] at byte {data_offset}")
        return cls(path, data_offset, member.shape, fh)

    @classmethod
    def npy(cls, path: str | os.PathLike, shape: tuple[int, ...]) -> FrameFile:
        """Create ``path`` as a ``.npy`` of float32 ``shape`` whose data is still to be written
        (sparse where the file system allows)."""
        with open(path, "wb") as fh:
            np.lib.format.write_array_header_1_0(
                fh, {"descr": FRAME_DTYPE.str, "fortran_order": False, "shape": tuple(shape)})
            offset = fh.tell()
            preallocate(fh, offset + int(np.prod(shape)) * FRAME_DTYPE.itemsize)
        return cls(path, offset, shape)

    @classmethod
    def reopen(cls, path: str | os.PathLike) -> FrameFile:
        """Reopen a file made by :meth:`npz` or :meth:`npy` (a resumed fetch)."""
        path = Path(path)
        if path.suffix == ".npz":
            member = npz_member(path, "vertices")
            return cls(path, member.offset, member.shape)
        arr = np.load(path, mmap_mode="r")
        offset, shape = arr.offset, arr.shape
        del arr
        return cls(path, offset, shape)

    def write(self, start: int, vertices: np.ndarray) -> None:
        """Write ``vertices`` [b, V, 3] as frames ``[start, start + b)``."""
        if self._fh.closed:
            raise FormatError(f"{self.path}: written after it was closed")
        verts = np.ascontiguousarray(vertices, dtype=FRAME_DTYPE)
        b = verts.shape[0] if verts.ndim == len(self.shape) else -1
        if verts.shape[1:] != self.shape[1:] or not 0 <= start < start + b <= self.shape[0]:
            raise FormatError(
                f"{self.path.name}: frames from {start} of shape {list(verts.shape)} do not fit "
                f"{list(self.shape)}")
        view = memoryview(verts).cast("B")
        self._fh.seek(self.offset + start * self.frame_bytes)  # seek + write: Windows has no pwrite
        done = 0
        while done < len(view):
            done += self._fh.write(view[done:])

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> FrameFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def preallocate(fh: BinaryIO, size: int) -> None:
    """Make the file ``size`` bytes long, its blocks reserved up front where the file system can
    (Linux ``fallocate``): the frame writes then skip the block reservation page by page (about
    1.3x faster writes measured on ext4). Elsewhere, or where the file system cannot (NFS), the
    file is only extended (sparse): never zeros written, as ``posix_fallocate`` would emulate."""
    fh.truncate(size)
    fallocate = _fallocate()
    if fallocate is not None and size > 0:
        fallocate(fh.fileno(), 0, 0, size)  # an error (EOPNOTSUPP...) leaves the sparse file


@functools.cache
def _fallocate():
    """libc's ``fallocate(fd, mode, offset, len)`` on Linux, else None."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = getattr(libc, "fallocate64", None) or libc.fallocate
    except (OSError, AttributeError):
        return None
    fn.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64)
    fn.restype = ctypes.c_int
    return fn
