"""Arrays stored uncompressed inside an ``.npz`` file: where they lie, and memory maps of them.

``numpy.load`` reads a whole ``.npz`` member into memory. A server streaming a 1 GB sequence in
chunks only needs one frame batch at a time, so it maps the member instead: ``np.savez`` stores
members uncompressed (ZIP_STORED), so each ``.npy`` member's data is a contiguous byte range of
the file. The same layout lets a client rebuild the server's file byte for byte: the bytes
outside that range (:func:`npz_rest`), then the array data written straight into its range.
"""

from __future__ import annotations

import contextlib
import os
import struct
import zipfile
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from .errors import FormatError


@dataclass(frozen=True)
class NpzMember:
    """Where member ``name`` of an ``.npz`` lies: its array data is ``[offset, offset + nbytes)``
    of the file when ``stored`` (ZIP_STORED); compressed members have no such range."""

    name: str
    offset: int
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran: bool
    stored: bool

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * self.dtype.itemsize


def npz_member(path: str | os.PathLike, name: str, file: BinaryIO | None = None) -> NpzMember:
    """The layout of member ``name`` (``name.npy``) of the ``.npz`` at ``path`` (read through
    ``file`` when given: an open, readable and seekable handle on it).

    Only the zip directory, the member's local header and its ``.npy`` header are read.
    """
    path = os.fspath(path)
    member = name if name.endswith(".npy") else name + ".npy"
    try:
        with zipfile.ZipFile(file or path) as zf:
            info = zf.getinfo(member)
            if info.compress_type != zipfile.ZIP_STORED:
                return NpzMember(name, -1, (), np.dtype(np.uint8), False, False)
            with open(path, "rb") if file is None else contextlib.nullcontext(file) as fh:
                fh.seek(info.header_offset)
                local = fh.read(30)
                if local[:4] != b"PK\x03\x04":
                    raise FormatError(f"{path}: corrupt zip local header for {member}")
                name_len, extra_len = struct.unpack("<HH", local[26:30])
                data_start = info.header_offset + 30 + name_len + extra_len
                fh.seek(data_start)
                version = np.lib.format.read_magic(fh)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
                else:
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
                offset = fh.tell()
    except KeyError:
        raise FormatError(f"{path}: no array {name!r} in this .npz") from None
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise FormatError(f"{path}: cannot map {name!r} ({err})") from None
    if dtype.hasobject:
        raise FormatError(f"{path}: array {name!r} holds Python objects, refused")
    member_end = data_start + info.file_size
    found = NpzMember(name, offset, tuple(int(s) for s in shape), dtype, bool(fortran), True)
    if offset + found.nbytes != member_end:
        raise FormatError(f"{path}: member {member} is {info.file_size} bytes, its .npy header "
                          f"says {found.nbytes} bytes of data after {offset - data_start}")
    return found


def npz_memmap(path: str | os.PathLike, name: str) -> np.ndarray:
    """Read-only memory map of member ``name`` (``name.npy``) of the ``.npz`` at ``path``.

    Falls back to loading into memory when the member is compressed.
    """
    m = npz_member(path, name)
    if not m.stored:
        with np.load(path, allow_pickle=False) as z:
            return z[name]
    if m.nbytes == 0:
        return np.zeros(m.shape, dtype=m.dtype)
    return np.memmap(path, dtype=m.dtype, mode="r", offset=m.offset, shape=m.shape,
                     order="F" if m.fortran else "C")


def npz_rest(path: str | os.PathLike, member: NpzMember) -> np.ndarray:
    """The bytes of the file at ``path`` outside ``member``'s data range, as uint8 ``[size -
    member.nbytes]``: the zip headers, the ``.npy`` header and every other member."""
    if not member.stored:
        raise FormatError(f"{path}: member {member.name!r} is compressed; it has no data range")
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        head = fh.read(member.offset)
        fh.seek(member.offset + member.nbytes)
        tail = fh.read()
    if len(head) + member.nbytes + len(tail) != size:
        raise FormatError(f"{path}: changed while it was read")
    return np.frombuffer(head + tail, dtype=np.uint8)
