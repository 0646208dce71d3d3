"""Results over the wire: splitting a result folder into chunks, and assembling it back.

A result travels as ``count`` chunks, each one ``result`` message (see PROTOCOL.md):

- chunk 0, ``part="header"``: ``content["manifest"]`` plus the arrays that do not change per
  frame. Meshes: ``faces`` [F,3] int32, ``times`` [T] f64, optional ``uvs`` [V,2] and ``colors``
  [V,4], and, when the vertices are stored uncompressed, ``sequence_rest`` uint8 (every byte of
  ``sequence.npz`` outside the vertex data) with ``content["sequence_file"]`` = ``{"size",
  "data_offset"}``, so the client writes frames straight into the server's file, byte for byte.
  Gaussians: ``times`` [T].
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
from .framefile import FrameFile
from .manifest import Manifest, read_manifest, safe_member, write_manifest
from .meshseq import MeshSequence, save_npz
from .npzmap import npz_member, npz_memmap, npz_rest

DEFAULT_CHUNK_BYTES = 8 * 1024 * 1024
GAUSSIAN_ARRAYS = ("means", "quats", "log_scales", "opacity_logits", "sh_dc", "sh_rest")
DATA_ROLES = ("sequence", "frames")
PARTIAL_LOG = ".partial"  # in a result folder being fetched: what was received
SEQUENCE_PARTIAL = "sequence.npz"  # .partial-sequence.npz: the final file, being filled
VERTICES_PARTIAL = "vertices.npy"  # frames from a server that sent no layout, and ...
HEADER_PARTIAL = "header.npz"  # ... its header arrays


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
            self._vertex_member = npz_member(self._seq_path, "vertices")
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
            content = {"chunk": 0, "count": self.count, "part": "header",
                       "manifest": self.manifest.to_json(), "attachments": self.attachments}
            arrays = self._header_arrays()
            if self.manifest.representation == "mesh_sequence" and self._vertex_member.stored:
                # The file around the vertex data, so the client can rebuild it byte for byte.
                arrays["sequence_rest"] = npz_rest(self._seq_path, self._vertex_member)
                content["sequence_file"] = {
                    "size": int(arrays["sequence_rest"].size + self._vertex_member.nbytes),
                    "data_offset": self._vertex_member.offset}
            return Chunk(0, self.count, "header", content, arrays)
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

    While a fetch is unfinished, ``<out>/.partial`` logs what was received (one JSON line per
    chunk, the header's with its manifest, each written after the chunk's data):
    :attr:`next_chunk` says where to resume. Mesh frames are written straight into their place
    in the final ``.npz`` (``<out>/.partial-sequence.npz`` until done), rebuilt byte for byte from
    the header's ``sequence_rest``; from a server that does not send it, the frames go to a
    ``.npy`` turned into the ``.npz`` at the end. Gaussian frames and attachments go straight to
    their files. So memory stays bounded whatever the result's size, and nothing is written
    twice. Call :meth:`close` (or use ``with``) when not finishing.
    """

    def __init__(self, out_dir: str | os.PathLike):
        self.out_dir = Path(out_dir)
        self.partial = self.out_dir / PARTIAL_LOG
        if self.partial.is_dir():  # an older client's partial fetch: start again
            shutil.rmtree(self.partial)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.received: set[int] = set()
        self.count: int | None = None
        self._manifest: Manifest | None = None
        if self.partial.is_file():
            for line in self.partial.read_text().splitlines():
                try:
                    entry = json.loads(line)
                    index, count = int(entry["chunk"]), int(entry["count"])
                    if index == 0:
                        self._manifest = Manifest.from_json(entry["manifest"], str(self.partial))
                except (ValueError, KeyError, TypeError, FormatError):
                    continue  # a line cut short when the fetch stopped
                self.received.add(index)
                self.count = count
        self._log = open(self.partial, "a")  # noqa: SIM115 (closed by close())
        self._frames: FrameFile | None = None

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
            raise FormatError(f"{self.out_dir}: the result header (chunk 0) was not received")
        return self._manifest

    def add(self, chunk: Chunk) -> None:
        entry: dict = {"chunk": chunk.index, "count": chunk.count}
        if chunk.part == "header":
            entry["manifest"] = self._add_header(chunk).to_json()
        elif chunk.part == "file":
            self._add_file(chunk)
        else:
            self._add_frames(chunk)
        self.received.add(chunk.index)
        self.count = chunk.count
        self._log.write(json.dumps(entry) + "\n")  # after the data: resume is safe
        self._log.flush()

    def close(self) -> None:
        """Close the open files (what was received stays, to resume from)."""
        if self._frames is not None:
            self._frames.close()
            self._frames = None
        self._log.close()

    def __enter__(self) -> ResultAssembler:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _path(self, name: str) -> Path:
        return self.out_dir / f"{PARTIAL_LOG}-{name}"

    def _add_header(self, chunk: Chunk) -> Manifest:
        manifest = chunk.manifest
        if manifest is None:
            raise FormatError("result header chunk carries no manifest")
        if self._frames is not None:
            self._frames.close()
            self._frames = None
        for stale in (SEQUENCE_PARTIAL, VERTICES_PARTIAL, HEADER_PARTIAL):
            self._path(stale).unlink(missing_ok=True)
        layout = chunk.content.get("sequence_file")
        if (manifest.representation == "mesh_sequence" and isinstance(layout, dict)
                and "sequence_rest" in chunk.arrays):
            try:
                offset, size = int(layout["data_offset"]), int(layout["size"])
            except (KeyError, TypeError, ValueError):
                raise FormatError(f"result header: malformed sequence_file {layout!r}") from None
            self._frames = FrameFile.npz(self._path(SEQUENCE_PARTIAL),
                                         chunk.arrays["sequence_rest"], offset, size,
                                         len(manifest.frame_times), "result header")
        elif manifest.representation == "mesh_sequence":  # kept to build the .npz at the end
            np.savez(self._path(HEADER_PARTIAL), **{k: np.asarray(v)
                                                    for k, v in chunk.arrays.items()})
        self._manifest = manifest
        return manifest

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
            fh.write(memoryview(np.ascontiguousarray(data)))

    def _add_frames(self, chunk: Chunk) -> None:
        m = self.manifest
        a, b = chunk.frame_start, chunk.frame_stop
        if not 0 <= a < b <= len(m.frame_times):
            raise FormatError(f"result chunk {chunk.index}: frames [{a}, {b}) out of range")
        if m.representation == "mesh_sequence":
            verts = chunk.arrays.get("vertices")
            if verts is None or verts.ndim != 3 or verts.shape[0] != b - a:
                raise FormatError(f"result chunk {chunk.index}: no vertices [{b - a}, V, 3]")
            try:
                self._frame_file(verts.shape[1]).write(a, verts)
            except FormatError as err:
                raise FormatError(f"result chunk {chunk.index}: {err}") from None
        else:
            from .gsply import GaussianFrame, write_gsply

            missing = [n for n in GAUSSIAN_ARRAYS if n not in chunk.arrays]
            if missing:
                raise FormatError(f"result chunk {chunk.index}: missing arrays {missing}")
            frame = GaussianFrame(**{n: np.asarray(chunk.arrays[n]) for n in GAUSSIAN_ARRAYS})
            write_gsply(self.out_dir / m.files["frames"][a], frame)

    def _frame_file(self, v: int) -> FrameFile:
        """Where mesh frames go: the final ``.npz`` when the header sent its layout, else a
        ``.npy`` of ``[T, v, 3]`` (made here on the first frames)."""
        if self._frames is None:
            for name in (SEQUENCE_PARTIAL, VERTICES_PARTIAL):
                if self._path(name).is_file():
                    self._frames = FrameFile.reopen(self._path(name))
                    break
            else:
                t = len(self.manifest.frame_times)
                self._frames = FrameFile.npy(self._path(VERTICES_PARTIAL), (t, v, 3))
        return self._frames

    def header_array(self, name: str) -> np.ndarray | None:
        """A header array kept for a server that sent no file layout (else None)."""
        path = self._path(HEADER_PARTIAL)
        if not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as z:
            return z[name] if name in z.files else None

    def finish(self) -> Path:
        """Put the final files in place, then ``manifest.json``; remove the partial state;
        return the folder."""
        if not self.complete:
            raise FormatError(
                f"{self.out_dir}: result incomplete, {len(self.received)} of {self.count} chunks"
            )
        m = self.manifest
        if self._frames is not None:
            self._frames.close()
            self._frames = None
        leftovers = []
        if m.representation == "mesh_sequence":
            target = safe_member(self.out_dir, m.files["sequence"], "sequence")
            target.parent.mkdir(parents=True, exist_ok=True)
            if self._path(SEQUENCE_PARTIAL).is_file():
                os.replace(self._path(SEQUENCE_PARTIAL), target)
            else:  # a server that sent no layout: build the .npz from the arrays
                verts = np.load(self._path(VERTICES_PARTIAL), mmap_mode="r")
                seq = MeshSequence(verts, self.header_array("faces"), self.header_array("times"),
                                   self.header_array("uvs"), self.header_array("colors"))
                del verts
                save_npz(seq, target)
                leftovers = [self._path(VERTICES_PARTIAL), self._path(HEADER_PARTIAL)]
        write_manifest(self.out_dir, m)
        self.close()
        for path in [*leftovers, self.partial]:
            path.unlink(missing_ok=True)
        return self.out_dir
