"""Per-frame mesh files: Wavefront ``.obj`` (with ``vt`` when UVs exist) and binary ``.ply``.

A sequence becomes a folder of ``frame_0000.obj`` ... (or ``.ply``), one file per frame with the
same topology. Coordinates are written as they are (Y-up, right-handed).

- OBJ: ``v``, optional ``vt`` (UVs, bottom-left origin), ``f`` with 1-based indices
  (``a/a`` pairs when UVs exist). Colours are not written (OBJ has no standard for them).
- PLY: ``binary_little_endian`` with float ``x y z``, optional float ``s t`` (UVs) and uchar
  ``red green blue alpha``; colours are linear in memory and written as 8-bit sRGB, which is what
  Blender's PLY importer assumes by default; reading converts back to linear.

The readers handle what these writers produce (and the common variants of the same layout); they
are not general-purpose OBJ/PLY parsers.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from shared.errors import FormatError
from shared.meshseq import MeshSequence

FRAME_PATTERN = "frame_{:04d}"


def linear_to_srgb(c: np.ndarray) -> np.ndarray:
    c = np.clip(np.asarray(c, dtype=np.float64), 0.0, 1.0)
    return np.where(c <= 0.0031308, 12.92 * c, 1.055 * np.power(c, 1 / 2.4) - 0.055)


def srgb_to_linear(c: np.ndarray) -> np.ndarray:
    c = np.clip(np.asarray(c, dtype=np.float64), 0.0, 1.0)
    return np.where(c <= 0.04045, c / 12.92, np.power((c + 0.055) / 1.055, 2.4))


def _atomic_write(path: Path, payload: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(payload)
    os.replace(tmp, path)


def write_obj(path: str | os.PathLike, verts: np.ndarray, faces: np.ndarray,
              uvs: np.ndarray | None = None) -> Path:
    """One mesh: ``verts`` ``[V, 3]``, ``faces`` ``[F, 3]`` 0-based, ``uvs`` ``[V, 2]``."""
    path = Path(path)
    lines = ["# Anim4D mesh frame (Y-up, right-handed)"]
    lines += [f"v {x:.7g} {y:.7g} {z:.7g}" for x, y, z in np.asarray(verts, dtype=np.float64)]
    f1 = np.asarray(faces, dtype=np.int64) + 1
    if uvs is not None:
        lines += [f"vt {u:.7g} {v:.7g}" for u, v in np.asarray(uvs, dtype=np.float64)]
        lines += [f"f {a}/{a} {b}/{b} {c}/{c}" for a, b, c in f1]
    else:
        lines += [f"f {a} {b} {c}" for a, b, c in f1]
    _atomic_write(path, ("\n".join(lines) + "\n").encode("ascii"))
    return path


def read_obj(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(verts ``[V, 3]`` float32, faces ``[F, 3]`` int32, uvs ``[V, 2]`` or None).

    Polygons are fanned into triangles; UVs are kept only when they map one-to-one onto
    vertices (as :func:`write_obj` writes them).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as err:
        raise FormatError(f"{path}: cannot read ({err.strerror})") from None
    verts: list[list[float]] = []
    uvs: list[list[float]] = []
    faces: list[tuple[int, int, int]] = []
    uv_of: dict[int, int] = {}
    try:
        for line in text.splitlines():
            parts = line.split()
            if not parts:
                continue
            if parts[0] == "v":
                verts.append([float(x) for x in parts[1:4]])
            elif parts[0] == "vt":
                uvs.append([float(x) for x in parts[1:3]])
            elif parts[0] == "f":
                ids = []
                for token in parts[1:]:
                    fields = token.split("/")
                    vi = int(fields[0])
                    vi = vi - 1 if vi > 0 else len(verts) + vi
                    if len(fields) > 1 and fields[1]:
                        ti = int(fields[1])
                        uv_of[vi] = ti - 1 if ti > 0 else len(uvs) + ti
                    ids.append(vi)
                faces += [(ids[0], ids[k], ids[k + 1]) for k in range(1, len(ids) - 1)]
    except (ValueError, IndexError):
        raise FormatError(f"{path}: malformed OBJ line {line!r}") from None
    if not verts:
        raise FormatError(f"{path}: OBJ has no vertices")
    v = np.asarray(verts, dtype=np.float32)
    f = np.asarray(faces, dtype=np.int32).reshape(-1, 3)
    if f.size and (f.min() < 0 or f.max() >= len(v)):
        raise FormatError(f"{path}: face index out of range for {len(v)} vertices")
    uv = None
    if uvs and len(uv_of) == len(v) and all(uv_of[i] == i for i in uv_of):
        uv = np.asarray(uvs, dtype=np.float32)[: len(v)]
    return v, f, uv


def write_ply(path: str | os.PathLike, verts: np.ndarray, faces: np.ndarray,
              colors: np.ndarray | None = None, uvs: np.ndarray | None = None) -> Path:
    """Binary little-endian PLY of one mesh (``colors`` linear RGBA ``[V, 4]``)."""
    path = Path(path)
    v = np.asarray(verts, dtype=np.float32)
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    if uvs is not None:
        fields += [("s", "<f4"), ("t", "<f4")]
    if colors is not None:
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1"), ("alpha", "u1")]
    rec = np.zeros(v.shape[0], dtype=fields)
    rec["x"], rec["y"], rec["z"] = v[:, 0], v[:, 1], v[:, 2]
    if uvs is not None:
        rec["s"], rec["t"] = uvs[:, 0], uvs[:, 1]
    if colors is not None:
        c = np.asarray(colors, dtype=np.float64)
        rgb = np.round(linear_to_srgb(c[:, :3]) * 255).astype(np.uint8)
        alpha = np.round(np.clip(c[:, 3], 0, 1) * 255).astype(np.uint8)
        rec["red"], rec["green"], rec["blue"], rec["alpha"] = rgb[:, 0], rgb[:, 1], rgb[:, 2], alpha
    f = np.asarray(faces, dtype=np.int32)
    frec = np.zeros(f.shape[0], dtype=[("n", "u1"), ("i", "<i4", (3,))])
    frec["n"] = 3
    frec["i"] = f
    props = "".join(
        f"property {'float' if dt == '<f4' else 'uchar'} {name}\n" for name, dt in fields
    )
    header = (
        "ply\nformat binary_little_endian 1.0\ncomment Anim4D mesh frame (Y-up, right-handed)\n"
        f"element vertex {v.shape[0]}\n{props}"
        f"element face {f.shape[0]}\nproperty list uchar int vertex_indices\nend_header\n"
    )
    _atomic_write(path, header.encode("ascii") + rec.tobytes() + frec.tobytes())
    return path


_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "<i2", "int16": "<i2",
    "ushort": "<u2", "uint16": "<u2", "int": "<i4", "int32": "<i4", "uint": "<u4",
    "uint32": "<u4", "float": "<f4", "float32": "<f4", "double": "<f8", "float64": "<f8",
}


def read_ply(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, np.ndarray | None,
                                                np.ndarray | None]:
    """(verts ``[V, 3]``, faces ``[F, 3]``, colors linear ``[V, 4]`` or None, uvs or None) of a
    binary little-endian triangle PLY."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise FormatError(f"{path}: cannot read ({err.strerror})") from None
    end = data.find(b"end_header\n")
    if not data.startswith(b"ply\n") or end < 0:
        raise FormatError(f"{path}: not a PLY file (no 'ply' ... 'end_header' header)")
    header = data[:end].decode("ascii", errors="replace").splitlines()
    if "format binary_little_endian 1.0" not in header:
        raise FormatError(f"{path}: only binary_little_endian PLY is read")
    elements: list[list] = []
    for line in header:
        tok = line.split()
        if tok[:1] == ["element"]:
            elements.append([tok[1], int(tok[2]), []])
        elif tok[:1] == ["property"] and elements:
            elements[-1][2].append(tok[1:])
    pos = end + len(b"end_header\n")
    verts = faces = colors = uvs = None
    for name, count, props in elements:
        if any(p[0] == "list" for p in props):
            if name != "face" or len(props) != 1 or props[0][0] != "list":
                raise FormatError(f"{path}: unsupported PLY list element {name!r}")
            _, ct, it, _ = props[0]
            dt = np.dtype([("n", _PLY_TYPES[ct]), ("i", _PLY_TYPES[it], (3,))])
            need = dt.itemsize * count
            if pos + need > len(data):
                raise FormatError(f"{path}: truncated PLY faces: expected {need} bytes, found "
                                  f"{len(data) - pos}")
            rec = np.frombuffer(data, dt, count, pos)
            if count and np.any(rec["n"] != 3):
                raise FormatError(f"{path}: only triangle faces are read")
            faces = rec["i"].astype(np.int32)
        else:
            try:
                dt = np.dtype([(p[1], _PLY_TYPES[p[0]]) for p in props])
            except (KeyError, IndexError):
                raise FormatError(f"{path}: unsupported PLY property in {name!r}") from None
            need = dt.itemsize * count
            if pos + need > len(data):
                raise FormatError(f"{path}: truncated PLY {name}: expected {need} bytes, found "
                                  f"{len(data) - pos}")
            rec = np.frombuffer(data, dt, count, pos)
            if name == "vertex":
                verts = np.stack([rec["x"], rec["y"], rec["z"]], 1).astype(np.float32)
                names = rec.dtype.names or ()
                if {"red", "green", "blue"} <= set(names):
                    rgb = np.stack([rec["red"], rec["green"], rec["blue"]], 1) / 255.0
                    a = rec["alpha"] / 255.0 if "alpha" in names else np.ones(count)
                    colors = np.concatenate([srgb_to_linear(rgb), a[:, None]], 1)
                    colors = colors.astype(np.float32)
                if {"s", "t"} <= set(names):
                    uvs = np.stack([rec["s"], rec["t"]], 1).astype(np.float32)
        pos += need
    if verts is None:
        raise FormatError(f"{path}: PLY has no vertex element")
    if faces is None:
        faces = np.zeros((0, 3), dtype=np.int32)
    return verts, faces, colors, uvs


def write_frames(seq: MeshSequence, folder: str | os.PathLike, fmt: str) -> list[Path]:
    """Write one ``frame_NNNN.<fmt>`` per frame (``fmt`` is ``obj`` or ``ply``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for t in range(seq.frame_count):
        p = folder / (FRAME_PATTERN.format(t) + "." + fmt)
        if fmt == "obj":
            out.append(write_obj(p, seq.vertices[t], seq.faces, seq.uvs))
        elif fmt == "ply":
            out.append(write_ply(p, seq.vertices[t], seq.faces, seq.colors, seq.uvs))
        else:
            raise ValueError(f"per-frame format {fmt!r}: expected 'obj' or 'ply'")
    return out


def read_frames(folder: str | os.PathLike, fps: float = 30.0) -> MeshSequence:
    """Read a folder written by :func:`write_frames` back into a sequence (times ``t / fps``)."""
    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if re.fullmatch(r"frame_\d+\.(obj|ply)", p.name))
    if not files:
        raise FormatError(f"{folder}: no frame_NNNN.obj or frame_NNNN.ply files")
    frames, faces, colors, uvs = [], None, None, None
    for p in files:
        if p.suffix == ".obj":
            v, f, uvs = read_obj(p)
        else:
            v, f, colors, uvs = read_ply(p)
        if faces is None:
            faces = f
        elif f.shape != faces.shape or not np.array_equal(f, faces):
            raise FormatError(f"{p}: topology differs from {files[0].name}")
        if frames and v.shape != frames[0].shape:
            raise FormatError(f"{p}: {v.shape[0]} vertices, {files[0].name} has "
                              f"{frames[0].shape[0]}")
        frames.append(v)
    times = np.arange(len(frames), dtype=np.float64) / fps
    return MeshSequence(np.stack(frames), faces, times, uvs, colors, name=folder.name)
