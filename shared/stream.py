"""Results over the wire: splitting a result folder into chunks, and assembling it back.

A result travels as ``count`` chunks, each one ``result`` message (see PROTOCOL.md):

- chunk 0, ``part="header"``: ``content["manifest"]`` plus the arrays that do not change per
  frame. Meshes: ``faces`` [F,3] int32, ``times`` [T] f64, optional ``uvs`` [V,2] and ``colors``
  [V,4]. Gaussians: ``times`` [T].
- chunks 1.., ``part="frames"``, frames ``[frame_start, frame_stop)``. Meshes: ``vertices``
  [b,V,3] float32, as many frames per chunk as fit in ``chunk_bytes``. Gaussians: one frame per
  chunk, arrays ``means`` [N,3], ``quats`` [N,4], ``log_scales`` [N,3], ``opacity_logits`` [N],
  ``sh_dc`` [N,3], ``sh_rest`` [N,K,3].

- then, for every other file the manifest names (``files`` roles besides ``sequence`` and
  ``frames``, e.g. a fitted shape vector, the further mesh sequences of ``files.sequences`` or the
  ``.mp4`` of a ``video`` result, which has no frame chunks), ``part="file"`` chunks: ``role``,
  ``path``, ``offset``, ``size`` (the file's), and one ``data`` uint8 array of at most
  ``chunk_bytes``.
  The header lists them as ``attachments``: ``[{"role", "path", "size"}]``.

So a 1 GB result never sits in one message, a client can show frames as they arrive, and a
dropped connection resumes with ``fetch(from_chunk=...)`` (:attr:`ResultAssembler.next_chunk`).
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import FormatError
from .manifest import Manifest, read_manifest, safe_member, write_manifest
from .meshseq import MeshSequence, save_npz
from .npzmap import npz_memmap

DEFAULT_CHUNK_BYTES = 8 * 1024 * 1024
GAUSSIAN_ARRAYS = ("means", "quats", "log_scales", "opacity_logits", "sh_dc", "sh_rest")
DATA_ROLES = ("sequence", "frames")


@dataclass
class Chunk:
    """One result chunk: ``content`` is the JSON part, ``arrays`` the buffers."""

    index: int
    count: int
    part: str
    content: dict = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def frame_start(self) -> int:
        return int(self.content.get("frame_start", 0))

    @property
    def frame_stop(self) -> int:
        return int(self.content.get("frame_stop", 0))

    @property
    def manifest(self) -> Manifest | None:
        m = self.content.get("manifest")
        return Manifest.from_json(m, "result header") if m is not None else None

    @classmethod
    def from_message(cls, content: dict, arrays: dict[str, np.ndarray]) -> Chunk:
        return cls(int(content["chunk"]), int(content["count"]), str(content["part"]),
                   content, arrays)


class ResultReader:
    """Serves the chunks of a finished result folder (server side); frames are memory-mapped."""

    def __init__(self, folder: str | os.PathLike, chunk_bytes: int = DEFAULT_CHUNK_BYTES):
        self.folder = Path(folder)
        self.manifest = read_manifest(self.folder)
        self.frames = len(self.manifest.frame_times)
        if self.manifest.representation == "mesh_sequence":
            self._seq_path = self.folder / self.manifest.files["sequence"]
            self._vertices = npz_memmap(self._seq_path, "vertices")
            if self._vertices.ndim != 3 or self._vertices.shape[0] != self.frames:
                raise FormatError(f"{self._seq_path}: vertices do not match the manifest")
            per_frame = max(1, self._vertices.shape[1] * 12)
            self.batch = max(1, chunk_bytes // per_frame)
        else:
            self.batch = 1
        # a video travels whole as a file (files.video): no frame chunks
        video = self.manifest.representation == "video"
        self.frame_chunks = 0 if video else math.ceil(self.frames / self.batch)
        self.attachments: list[dict] = []
        self._file_chunks: list[tuple[dict, int, int]] = []  # (attachment, offset, length)
        for role, value in self.manifest.files.items():
            if role in DATA_ROLES or value is None:
                continue
            # files.sequences (1.1): the first is files.sequence, already sent as frames
            for name in value if isinstance(value, list) else [value]:
                if role == "sequences" and name == self.manifest.files.get("sequence"):
                    continue
                path = safe_member(self.folder, name, role)
                if not path.is_file():
                    raise FormatError(f"{self.folder}: file {name!r} (files.{role}) is missing")
                att = {"role": role, "path": name, "size": path.stat().st_size}
                self.attachments.append(att)
                self._file_chunks += [(att, off, min(chunk_bytes, att["size"] - off))
                                      for off in range(0, max(att["size"], 1), chunk_bytes)]
        self.count = 1 + self.frame_chunks + len(self._file_chunks)

    def chunk(self, index: int) -> Chunk:
        if not 0 <= index < self.count:
            raise FormatError(f"chunk {index} out of range [0, {self.count})")
        if index == 0:
            return Chunk(0, self.count, "header",
                         {"chunk": 0, "count": self.count, "part": "header",
                          "manifest": self.manifest.to_json(),
                          "attachments": self.attachments}, self._header_arrays())
        if index > self.frame_chunks:
            att, offset, length = self._file_chunks[index - 1 - self.frame_chunks]
            data = np.fromfile(self.folder / att["path"], dtype=np.uint8, count=length,
                               offset=offset)
            return Chunk(index, self.count, "file",
                         {"chunk": index, "count": self.count, "part": "file", **att,
                          "offset": offset}, {"data": data})
        start = (index - 1) * self.batch
        stop = min(self.frames, start + self.batch)
        content = {"chunk": index, "count": self.count, "part": "frames",
                   "frame_start": start, "frame_stop": stop}
        if self.manifest.representation == "mesh_sequence":
            arrays = {"vertices": self._vertices[start:stop]}
        else:
            from .gsply import read_gsply

            frame = read_gsply(self.folder / self.manifest.files["frames"][start])
            arrays = {name: getattr(frame, name) for name in GAUSSIAN_ARRAYS}
        return Chunk(index, self.count, "frames", content, arrays)

    def __iter__(self) -> Iterator[Chunk]:
        return (self.chunk(i) for i in range(self.count))

    def _header_arrays(self) -> dict[str, np.ndarray]:
        times = np.asarray(self.manifest.frame_times, dtype=np.float64)
        if self.manifest.representation != "mesh_sequence":
            return {"times": times}
        out = {"times": times}
        with np.load(self._seq_path, allow_pickle=False) as z:
            out["faces"] = z["faces"]
            for name in ("uvs", "colors"):
                if name in z.files:
                    out[name] = z[name]
        return out


class ResultAssembler:
    """Rebuilds a result folder from chunks (client side), resumably.

    Received chunks are recorded in ``<out>/.partial/``; :attr:`next_chunk` says where to resume.
    Mesh frames go straight into a memory-mapped ``[T, V, 3]`` file, Gaussian frames straight to
    their ``.ply``, so memory stays bounded whatever the result's size.
    """

    def __init__(self, out_dir: str | os.PathLike):
        self.out_dir = Path(out_dir)
        self.partial = self.out_dir / ".partial"
        self.partial.mkdir(parents=True, exist_ok=True)
        state = self.partial / "state.json"
        self._state = json.loads(state.read_text()) if state.is_file() else {"received": []}
        self.received: set[int] = set(self._state["received"])
        self.count: int | None = self._state.get("count")
        self._manifest: Manifest | None = None
        self._vertices: np.ndarray | None = None

    @property
    def next_chunk(self) -> int:
        i = 0
        while i in self.received:
            i += 1
        return i

    @property
    def complete(self) -> bool:
        return self.count is not None and len(self.received) >= self.count

    @property
    def manifest(self) -> Manifest:
        if self._manifest is None:
            path = self.partial / "manifest.json"
            if not path.is_file():
                raise FormatError(f"{self.out_dir}: the result header (chunk 0) was not received")
            self._manifest = Manifest.from_json(json.loads(path.read_text()), str(path))
        return self._manifest

    def add(self, chunk: Chunk) -> None:
        if chunk.part == "header":
            self._add_header(chunk)
        elif chunk.part == "file":
            self._add_file(chunk)
        else:
            self._add_frames(chunk)
        self.received.add(chunk.index)
        self.count = chunk.count
        self._state = {"received": sorted(self.received), "count": self.count}
        (self.partial / "state.json").write_text(json.dumps(self._state))

    def _add_header(self, chunk: Chunk) -> None:
        manifest = chunk.manifest
        if manifest is None:
            raise FormatError("result header chunk carries no manifest")
        (self.partial / "manifest.json").write_text(json.dumps(manifest.to_json()))
        self._manifest = manifest
        for name, arr in chunk.arrays.items():
            np.save(self.partial / f"{name}.npy", np.asarray(arr), allow_pickle=False)

    def _add_file(self, chunk: Chunk) -> None:
        c = chunk.content
        path = safe_member(self.out_dir, c.get("path"), str(c.get("role")))
        data = np.asarray(chunk.arrays.get("data", np.zeros(0, np.uint8)), dtype=np.uint8)
        offset, size = int(c.get("offset", -1)), int(c.get("size", -1))
        if not 0 <= offset <= offset + data.size <= size:
            raise FormatError(f"result chunk {chunk.index}: bytes [{offset}, "
                              f"{offset + data.size}) do not fit a file of {size}")
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "r+b" if path.exists() else "wb") as fh:
            fh.seek(offset)
            fh.write(data.tobytes())

    def _add_frames(self, chunk: Chunk) -> None:
        m = self.manifest
        a, b = chunk.frame_start, chunk.frame_stop
        if not 0 <= a < b <= len(m.frame_times):
            raise FormatError(f"result chunk {chunk.index}: frames [{a}, {b}) out of range")
        if m.representation == "mesh_sequence":
            verts = np.asarray(chunk.arrays["vertices"], dtype=np.float32)
            store = self._vertex_store(verts.shape[1])
            if verts.shape != (b - a, store.shape[1], 3):
                raise FormatError(
                    f"result chunk {chunk.index}: vertices {list(verts.shape)} do not match "
                    f"[{b - a}, {store.shape[1]}, 3]"
                )
            store[a:b] = verts
            store.flush()
        else:
            from .gsply import GaussianFrame, write_gsply

            missing = [n for n in GAUSSIAN_ARRAYS if n not in chunk.arrays]
            if missing:
                raise FormatError(f"result chunk {chunk.index}: missing arrays {missing}")
            frame = GaussianFrame(**{n: np.asarray(chunk.arrays[n]) for n in GAUSSIAN_ARRAYS})
            write_gsply(self.out_dir / m.files["frames"][a], frame)

    def _vertex_store(self, v: int) -> np.ndarray:
        if self._vertices is None:
            path = self.partial / "vertices.npy"
            t = len(self.manifest.frame_times)
            if path.is_file():
                self._vertices = np.lib.format.open_memmap(path, mode="r+")
            else:
                self._vertices = np.lib.format.open_memmap(
                    path, mode="w+", dtype=np.float32, shape=(t, v, 3))
        return self._vertices

    def header_array(self, name: str) -> np.ndarray | None:
        path = self.partial / f"{name}.npy"
        return np.load(path, allow_pickle=False) if path.is_file() else None

    def finish(self) -> Path:
        """Write the final files, then ``manifest.json``; remove ``.partial``; return the folder."""
        if not self.complete:
            raise FormatError(
                f"{self.out_dir}: result incomplete, {len(self.received)} of {self.count} chunks"
            )
        m = self.manifest
        if m.representation == "mesh_sequence":
            faces = self.header_array("faces")
            times = self.header_array("times")
            verts = self._vertex_store(int(m.counts.get("vertices", 0)))
            seq = MeshSequence(verts, faces, times, self.header_array("uvs"),
                               self.header_array("colors"))
            save_npz(seq, self.out_dir / m.files["sequence"])
            self._vertices = None
        write_manifest(self.out_dir, m)
        shutil.rmtree(self.partial, ignore_errors=True)
        return self.out_dir
