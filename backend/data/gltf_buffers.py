"""glTF 2.0 documents and their binary data: GLB/JSON parsing, buffers and accessors.

pygltflib gives the typed JSON tree; the bytes are decoded here with numpy:

- ``.glb``: the 12-byte header and the JSON/BIN chunks are checked before parsing;
- ``.gltf``: buffers as ``data:`` URIs (base64) or as files beside the document (never outside
  its folder);
- accessors honour ``byteStride``, ``byteOffset``, normalised integers, the column padding of
  small-component matrices and sparse substitution; an accessor without a buffer view is zeros.

Every problem raises :class:`shared.errors.FormatError` naming the file and what is wrong.
"""

from __future__ import annotations

import base64
import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pygltflib

from shared.errors import FormatError

GLB_MAGIC = 0x46546C67  # b"glTF"
CHUNK_JSON = 0x4E4F534A
CHUNK_BIN = 0x004E4942

COMPONENT_DTYPES: dict[int, np.dtype] = {
    5120: np.dtype("<i1"),
    5121: np.dtype("<u1"),
    5122: np.dtype("<i2"),
    5123: np.dtype("<u2"),
    5125: np.dtype("<u4"),
    5126: np.dtype("<f4"),
}
# type -> (columns, rows): a VEC3 is one column of 3, a MAT4 four columns of 4.
TYPE_SHAPES: dict[str, tuple[int, int]] = {
    "SCALAR": (1, 1), "VEC2": (1, 2), "VEC3": (1, 3), "VEC4": (1, 4),
    "MAT2": (2, 2), "MAT3": (3, 3), "MAT4": (4, 4),
}
# Divisors of normalised integers (glTF 2.0, section 3.11), with clamping at -1 for signed types.
NORMALIZE_DIVISORS = {5120: 127.0, 5121: 255.0, 5122: 32767.0, 5123: 65535.0, 5125: 4294967295.0}
SUPPORTED_REQUIRED = {"KHR_mesh_quantization", "KHR_materials_unlit", "KHR_texture_transform"}


@dataclass
class GltfDocument:
    """A parsed glTF: ``gltf`` is pygltflib's tree, ``raw`` the JSON object (for the fields
    pygltflib drops, such as ``node.weights``), ``buffers`` the bytes of each buffer."""

    path: Path
    gltf: pygltflib.GLTF2
    raw: dict = field(default_factory=dict)
    buffers: list[bytes] = field(default_factory=list)

    def node_weights(self, node: int) -> list[float] | None:
        """The default morph weights of ``node`` (``nodes[i].weights``), if given."""
        nodes = self.raw.get("nodes") or []
        entry = nodes[node] if 0 <= node < len(nodes) else None
        w = entry.get("weights") if isinstance(entry, dict) else None
        return [float(x) for x in w] if isinstance(w, list) else None

    def fail(self, problem: str) -> FormatError:
        return FormatError(f"{self.path}: {problem}")

    def accessor(self, index: int) -> np.ndarray:
        """Decode accessor ``index``: ``[count, n]`` for scalars/vectors, ``[count, r, c]`` for
        matrices (row-major in memory here); float32 when normalised, else the component type."""
        return read_accessor(self, index)


def _parse_glb(path: Path, data: bytes) -> tuple[str, bytes | None]:
    if len(data) < 20:
        raise FormatError(f"{path}: truncated GLB: {len(data)} bytes, a header needs at least 20")
    magic, version, length = struct.unpack_from("<III", data, 0)
    if magic != GLB_MAGIC:
        raise FormatError(f"{path}: not a glTF binary (bad magic)")
    if version != 2:
        raise FormatError(f"{path}: GLB version {version} is not supported (expected 2)")
    if length > len(data):
        raise FormatError(
            f"{path}: truncated GLB: header says {length} bytes, found {len(data)} bytes"
        )
    json_text: str | None = None
    binary: bytes | None = None
    pos = 12
    while pos + 8 <= length:
        chunk_len, chunk_type = struct.unpack_from("<II", data, pos)
        start, end = pos + 8, pos + 8 + chunk_len
        if end > length:
            raise FormatError(
                f"{path}: truncated GLB chunk at byte {pos}: expected {chunk_len} bytes, "
                f"found {length - start}"
            )
        if chunk_type == CHUNK_JSON and json_text is None:
            try:
                json_text = data[start:end].decode("utf-8")
            except UnicodeDecodeError:
                raise FormatError(f"{path}: GLB JSON chunk is not UTF-8 text") from None
        elif chunk_type == CHUNK_BIN and binary is None:
            binary = data[start:end]
        pos = end + (-end % 4)
    if json_text is None:
        raise FormatError(f"{path}: GLB has no JSON chunk")
    return json_text, binary


def _load_buffer(doc: GltfDocument, index: int, buf: pygltflib.Buffer, glb_bin: bytes | None):
    uri = buf.uri
    if uri is None:
        if index != 0 or glb_bin is None:
            raise doc.fail(f"buffer {index} has no uri and there is no GLB binary chunk")
        data = glb_bin
    elif uri.startswith("data:"):
        header, sep, payload = uri.partition(",")
        if not sep or not header.endswith(";base64"):
            raise doc.fail(f"buffer {index}: only base64 data: URIs are supported")
        try:
            data = base64.b64decode(payload, validate=False)
        except ValueError as err:
            raise doc.fail(f"buffer {index}: bad base64 data URI ({err})") from None
    else:
        folder = doc.path.parent.resolve()
        target = (folder / unquote(uri)).resolve()
        if "://" in uri or not target.is_relative_to(folder):
            raise doc.fail(
                f"buffer {index}: uri {uri!r} must be a data: URI or a file in the glTF's folder"
            )
        try:
            data = target.read_bytes()
        except OSError as err:
            raise doc.fail(f"buffer {index}: cannot read {target.name} ({err.strerror})") from None
    if len(data) < (buf.byteLength or 0):
        raise doc.fail(
            f"buffer {index} is truncated: expected {buf.byteLength} bytes, found {len(data)}"
        )
    return data


def load_document(path: str | Path) -> GltfDocument:
    """Parse a ``.glb`` or ``.gltf`` file and load all its buffers."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise FormatError(f"{path}: cannot read ({err.strerror})") from None
    glb_bin: bytes | None = None
    if data[:4] == b"glTF":
        text, glb_bin = _parse_glb(path, data)
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise FormatError(f"{path}: not a glTF file (neither GLB nor JSON text)") from None
    try:
        tree = json.loads(text)
    except ValueError:
        raise FormatError(f"{path}: not a glTF file (invalid JSON)") from None
    if not isinstance(tree, dict) or not isinstance(tree.get("asset"), dict):
        raise FormatError(f"{path}: not a glTF file (no 'asset' object)")
    version = str(tree["asset"].get("version", ""))
    if not version.startswith("2."):
        raise FormatError(f"{path}: glTF version {version!r} is not supported (expected 2.x)")
    missing = sorted(set(tree.get("extensionsRequired") or []) - SUPPORTED_REQUIRED)
    if missing:
        raise FormatError(f"{path}: requires unsupported glTF extensions {missing}")
    try:
        gltf = pygltflib.GLTF2.from_json(text)
    except Exception as err:  # pygltflib raises assorted errors on malformed trees
        raise FormatError(f"{path}: malformed glTF ({type(err).__name__}: {err})") from None
    doc = GltfDocument(path=path, gltf=gltf, raw=tree)
    doc.buffers = [_load_buffer(doc, i, b, glb_bin) for i, b in enumerate(gltf.buffers or [])]
    return doc


def _view_bytes(doc: GltfDocument, view_index: int) -> tuple[bytes, int, int, int | None]:
    """(buffer bytes, start, length, byteStride) of a buffer view, bounds-checked."""
    views = doc.gltf.bufferViews or []
    if not 0 <= view_index < len(views):
        raise doc.fail(f"bufferView {view_index} does not exist ({len(views)} views)")
    view = views[view_index]
    if not 0 <= view.buffer < len(doc.buffers):
        raise doc.fail(f"bufferView {view_index} refers to missing buffer {view.buffer}")
    data = doc.buffers[view.buffer]
    start = view.byteOffset or 0
    if start + view.byteLength > len(data):
        raise doc.fail(
            f"bufferView {view_index} is truncated: expected {start + view.byteLength} bytes in "
            f"buffer {view.buffer}, found {len(data)}"
        )
    return data, start, view.byteLength, view.byteStride


def _strided(
    doc: GltfDocument, what: str, view_index: int, offset: int, count: int,
    dtype: np.dtype, cols: int, rows: int, allow_stride: bool = True,
) -> np.ndarray:
    """``[count, cols, rows]`` elements read from a buffer view (a copy)."""
    data, start, length, stride = _view_bytes(doc, view_index)
    comp = dtype.itemsize
    col_stride = rows * comp
    if cols > 1 and col_stride % 4:
        col_stride += 4 - col_stride % 4  # matrix columns start on 4-byte boundaries
    elem = col_stride * (cols - 1) + rows * comp
    stride = (stride if allow_stride and stride else 0) or col_stride * cols
    need = offset + (count - 1) * stride + elem if count else 0
    if need > length:
        raise doc.fail(
            f"{what} is truncated: expected {need} bytes in bufferView {view_index}, "
            f"found {length}"
        )
    if count == 0:
        return np.zeros((0, cols, rows), dtype=dtype)
    arr = np.ndarray(
        shape=(count, cols, rows), dtype=dtype, buffer=data, offset=start + offset,
        strides=(stride, col_stride, comp),
    )
    return np.array(arr)


def read_accessor(doc: GltfDocument, index: int) -> np.ndarray:
    """See :meth:`GltfDocument.accessor`."""
    accessors = doc.gltf.accessors or []
    if not 0 <= index < len(accessors):
        raise doc.fail(f"accessor {index} does not exist ({len(accessors)} accessors)")
    acc = accessors[index]
    what = f"accessor {index}"
    if acc.componentType not in COMPONENT_DTYPES or acc.type not in TYPE_SHAPES:
        raise doc.fail(f"{what}: unsupported component type {acc.componentType} / {acc.type}")
    dtype = COMPONENT_DTYPES[acc.componentType]
    cols, rows = TYPE_SHAPES[acc.type]
    if acc.bufferView is None:
        out = np.zeros((acc.count, cols, rows), dtype=dtype)
    else:
        out = _strided(doc, what, acc.bufferView, acc.byteOffset or 0, acc.count, dtype, cols, rows)
    sparse = acc.sparse
    if sparse is not None and sparse.count:
        idt = COMPONENT_DTYPES.get(sparse.indices.componentType)
        if idt is None or idt.kind != "u":
            raise doc.fail(f"{what}: sparse indices must be unsigned integers")
        idx = _strided(
            doc, f"{what} sparse indices", sparse.indices.bufferView,
            sparse.indices.byteOffset or 0, sparse.count, idt, 1, 1, allow_stride=False,
        ).reshape(-1).astype(np.int64)
        vals = _strided(
            doc, f"{what} sparse values", sparse.values.bufferView,
            sparse.values.byteOffset or 0, sparse.count, dtype, cols, rows, allow_stride=False,
        )
        if idx.size and idx.max() >= acc.count:
            raise doc.fail(f"{what}: sparse index {int(idx.max())} >= count {acc.count}")
        out[idx] = vals
    if acc.normalized and acc.componentType in NORMALIZE_DIVISORS:
        out = out.astype(np.float64) / NORMALIZE_DIVISORS[acc.componentType]
        out = np.maximum(out, -1.0).astype(np.float32)
    if cols == 1:
        return out.reshape(acc.count, rows)
    return np.swapaxes(out, 1, 2)  # column-major storage -> [count, rows, cols]
