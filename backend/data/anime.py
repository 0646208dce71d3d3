"""DeformingThings4D ``.anime`` files: read and write.

Layout (little-endian, no padding)::

    int32 nf, nv, nt
    float32 [nv, 3]          vertices of frame 0
    int32   [nt, 3]          triangles (0-based)
    float32 [nf - 1, nv, 3]  offsets of frames 1..nf-1 relative to frame 0

The format stores no frame rate: times are ``arange(nf) / fps`` with ``fps`` given by the caller
(DeformingThings4D was rendered at 30 fps, hence the default). No UVs, no colours.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from shared.errors import FormatError
from shared.meshseq import MeshSequence

HEADER_BYTES = 12
DEFAULT_FPS = 30.0


def anime_size(nf: int, nv: int, nt: int) -> int:
    """Exact byte size of an ``.anime`` file with this header."""
    return HEADER_BYTES + 12 * nv + 12 * nt + 12 * (nf - 1) * nv


def read_anime(path: str | os.PathLike, fps: float = DEFAULT_FPS) -> MeshSequence:
    """Read an ``.anime`` file into a sequence sampled at ``fps`` (times from 0).

    Raises :class:`FormatError` naming the file on a bad header, a size mismatch (expected vs
    found byte counts) or face indices out of range.
    """
    path = Path(path)
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise FormatError(f"{path}: cannot read ({err.strerror})") from None
    if len(data) < HEADER_BYTES:
        raise FormatError(
            f"{path}: truncated .anime header: expected {HEADER_BYTES} bytes, found {len(data)}"
        )
    nf, nv, nt = (int(x) for x in np.frombuffer(data, "<i4", 3))
    if nf < 1 or nv < 1 or nt < 0:
        raise FormatError(
            f"{path}: bad .anime header (frames={nf}, vertices={nv}, triangles={nt}); expected "
            "frames >= 1, vertices >= 1, triangles >= 0"
        )
    expected = anime_size(nf, nv, nt)
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "trailing data in"
        raise FormatError(
            f"{path}: {what} .anime file: header (frames={nf}, vertices={nv}, triangles={nt}) "
            f"needs {expected} bytes, found {len(data)}"
        )
    pos = HEADER_BYTES
    base = np.frombuffer(data, "<f4", nv * 3, pos).reshape(nv, 3)
    pos += 12 * nv
    faces = np.frombuffer(data, "<i4", nt * 3, pos).reshape(nt, 3)
    pos += 12 * nt
    offsets = np.frombuffer(data, "<f4", (nf - 1) * nv * 3, pos).reshape(nf - 1, nv, 3)
    if faces.size and (faces.min() < 0 or faces.max() >= nv):
        raise FormatError(
            f"{path}: face indices must lie in [0, {nv - 1}], found "
            f"[{int(faces.min())}, {int(faces.max())}]"
        )
    verts = np.empty((nf, nv, 3), dtype=np.float32)
    verts[0] = base
    verts[1:] = base[None] + offsets
    try:
        return MeshSequence(
            vertices=verts, faces=faces, times=np.arange(nf, dtype=np.float64) / fps,
            name=path.stem, meta={"source": path.name, "fps_assumed": fps},
        )
    except FormatError as err:
        raise FormatError(f"{path}: {err}") from None


def write_anime(seq: MeshSequence, path: str | os.PathLike) -> Path:
    """Write ``seq`` as ``.anime`` (times, UVs and colours are not stored). Atomic."""
    path = Path(path)
    v = seq.vertices.astype("<f4")
    header = np.array([seq.frame_count, seq.vertex_count, seq.faces.shape[0]], dtype="<i4")
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(header.tobytes())
        fh.write(v[0].tobytes())
        fh.write(seq.faces.astype("<i4").tobytes())
        fh.write((v[1:] - v[0][None]).astype("<f4").tobytes())
    os.replace(tmp, path)
    return path
