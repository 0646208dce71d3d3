"""Memory-map an array stored uncompressed inside an ``.npz`` file.

``numpy.load`` reads a whole ``.npz`` member into memory. A server streaming a 1 GB sequence in
chunks only needs one frame batch at a time, so it maps the member instead: ``np.savez`` stores
members uncompressed (ZIP_STORED), so each ``.npy`` member is a contiguous byte range of the file.
"""

from __future__ import annotations

import os
import struct
import zipfile

import numpy as np

from .errors import FormatError


def npz_memmap(path: str | os.PathLike, name: str) -> np.ndarray:
    """Read-only memory map of member ``name`` (``name.npy``) of the ``.npz`` at ``path``.

    Falls back to loading into memory when the member is compressed.
    """
    path = os.fspath(path)
    member = name if name.endswith(".npy") else name + ".npy"
    try:
        with zipfile.ZipFile(path) as zf:
            info = zf.getinfo(member)
            if info.compress_type != zipfile.ZIP_STORED:
                with np.load(path, allow_pickle=False) as z:
                    return z[name]
            with open(path, "rb") as fh:
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
    if int(np.prod(shape)) == 0:
        return np.zeros(shape, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape,
                     order="F" if fortran else "C")
