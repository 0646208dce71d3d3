"""Import entry points: a result folder on disk, or result chunks streaming in from the backend.

Both paths build the same objects (``import_mesh`` / ``import_gaussians``): one per sequence of
the result (protocol 1.1 results may hold several), none for a ``video`` result. A stream adds
frames as chunks arrive; when the connection drops, the frames received so far stay in the scene
and a later :meth:`StreamImport.complete_from_folder` (after the fetch resumed) adds the rest.
"""

from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np

from ..core import import_plan as plan
from ..core._shared import errors, manifest, results
from .blend_slider import apply_blend_slider
from .import_gaussians import GaussianImport
from .import_mesh import MeshImport

OPTIONAL_ROLES = ("pc2",)  # files the importer never reads: a missing one is not an error


def open_result(folder: Path):
    """``shared.results.open_result``, tolerating missing optional files (e.g. ``files.pc2``)."""
    try:
        return results.open_result(folder)
    except errors.FormatError as err:
        roles = [r for r in OPTIONAL_ROLES if f"files.{r}" in str(err)]
        if not roles:
            raise
        m = manifest.read_manifest(folder)
        for role in roles:
            m.files.pop(role, None)
        results.check_result_files(folder, m)
        return results.ResultData(folder, m)


def import_result(folder: str | Path, *, storage: str = "AUTO", start: float | None = None,
                  scene: bpy.types.Scene | None = None
                  ) -> tuple[list[bpy.types.Object], list[str]]:
    """Import the result folder ``folder``: one object per sequence it holds (a result with
    ``files.sequences`` holds several), and notices for the artist. A ``video`` result adds no
    object: a notice names the video file.

    Raises ``shared.errors.Anim4DError`` (``FormatError``) with a message naming the folder and
    the problem for anything that is not a readable result; nothing is created then.
    """
    folder = Path(folder)
    res = open_result(folder)
    meta = plan.meta_from_manifest(res.manifest, source=str(folder))
    told = plan.manifest_notes(res.manifest)
    if res.representation == "video":
        return [], [plan.video_notice(res.manifest, str(folder)), *told]
    if res.representation == "mesh_sequence":
        metas = plan.sequence_metas(meta, res.manifest)
        seqs = [res.mesh_sequence(i) for i in range(len(metas))]  # read all before building
        slider = plan.blend_slider(res.manifest)
        objs, notices = [], list(told)
        for seq_meta, seq in zip(metas, seqs, strict=True):
            job = MeshImport(seq_meta, seq.faces, seq.times, seq.vertex_count, seq.uvs,
                             seq.colors, storage="SHAPE_KEYS" if slider else storage,
                             start=start, scene=scene)
            job.add_frames(0, seq.vertices)
            objs.append(job.finish())
            if slider is not None:
                apply_blend_slider(objs[-1], slider)
                notices.append(f"{objs[-1].name}: a blend; drag its '{slider.prop}' property "
                               "(Object properties > Custom Properties) from 0 to 1")
            notices += job.notices
        return objs, notices
    frames = [res.gaussian_frame(i) for i in range(res.frame_count)]  # read all before building
    gjob = GaussianImport(meta, np.asarray(res.manifest.frame_times),
                          correspond=plan.gaussians_correspond(res.manifest), start=start,
                          scene=scene)
    for i, frame in enumerate(frames):
        gjob.add_gaussian_frame(i, frame, rebuild=i == len(frames) - 1)
    return [gjob.finish()], list(told)


def import_folder(folder: str | Path, *, storage: str = "AUTO", start: float | None = None,
                  scene: bpy.types.Scene | None = None) -> tuple[bpy.types.Object, list[str]]:
    """:func:`import_result` for callers that expect one object: returns the first (further
    sequences are imported too); a video result is a ``FormatError`` here."""
    objs, notices = import_result(folder, storage=storage, start=start, scene=scene)
    if not objs:
        raise errors.FormatError(notices[0] if notices else f"{folder}: nothing to import")
    return objs[0], notices


def chunk_part(chunk) -> str:
    """``header``, ``frames`` or ``file`` (``shared.stream.Chunk.part``)."""
    return str(getattr(chunk, "part", None) or getattr(chunk, "kind", ""))


class StreamImport:
    """Feed ``shared.stream.Chunk`` objects (``.part``, ``.content``, ``.arrays``,
    ``.frame_start``) of one job into a growing object."""

    def __init__(self, job_id: str, *, storage: str = "AUTO", start: float | None = None,
                 scene: bpy.types.Scene | None = None):
        self.job_id = job_id
        self.storage = storage
        self.start = start
        self.scene = scene
        self.manifest: manifest.Manifest | None = None
        self.builder: MeshImport | GaussianImport | None = None
        #: every object of the result once complete (a result may hold several sequences)
        self.objects: list[bpy.types.Object] = []
        self._notices: list[str] = []

    @property
    def obj(self) -> bpy.types.Object | None:
        return None if self.builder is None else self.builder.obj

    @property
    def received(self) -> int:
        return 0 if self.builder is None else self.builder.received

    @property
    def notices(self) -> list[str]:
        return list(getattr(self.builder, "notices", [])) + self._notices

    def feed(self, chunk) -> None:
        """Add one chunk: the header creates the builder, frame chunks add frames."""
        part = chunk_part(chunk)
        if part == "header":
            self._header(chunk)
            return
        if part != "frames":
            return  # attachments (``file`` chunks) are written to disk by the fetch, not drawn
        if self.builder is None:
            raise errors.ProtocolError(
                f"job {self.job_id}: frames arrived before the result header")
        arrays = chunk.arrays
        if isinstance(self.builder, MeshImport):
            self.builder.add_frames(int(chunk.frame_start), arrays["vertices"])
        else:
            self.builder.add_frame(int(chunk.frame_start), **arrays)

    def _header(self, chunk) -> None:
        if self.builder is not None:
            return  # a resumed stream repeats the header
        m = manifest.Manifest.from_json(chunk.content["manifest"], f"job {self.job_id} header")
        self.manifest = m
        meta = plan.meta_from_manifest(m, source=f"job {self.job_id}")
        arrays = chunk.arrays
        times = np.asarray(arrays.get("times", m.frame_times), dtype=np.float64)
        if m.representation == "video":
            return  # nothing to draw: complete_from_folder reports the video file
        if m.representation == "mesh_sequence":
            # the stream carries the first sequence's frames; the others arrive as files
            meta = plan.sequence_metas(meta, m)[0]
            storage = "SHAPE_KEYS" if plan.blend_slider(m) else self.storage
            self.builder = MeshImport(
                meta, arrays["faces"], times, int(m.counts.get("vertices", 0)),
                arrays.get("uvs"), arrays.get("colors"), storage=storage,
                start=self.start, scene=self.scene)
        else:
            self.builder = GaussianImport(meta, times,
                                          correspond=plan.gaussians_correspond(m),
                                          start=self.start, scene=self.scene)

    def complete_from_folder(self, folder: str | Path) -> bpy.types.Object | None:
        """Add the frames not streamed yet from the fetched result ``folder``, then finish.

        Returns the (first) object, or None for a video result (a notice names its file); a
        result with several sequences imports the others from the folder (:attr:`objects`).
        """
        if self.builder is None:
            self.objects, notices = import_result(folder, storage=self.storage,
                                                  start=self.start, scene=self.scene)
            self._notices += notices
            return self.objects[0] if self.objects else None
        res = open_result(Path(folder))
        b = self.builder
        others: list[bpy.types.Object] = []
        if isinstance(b, MeshImport):
            if b.received < res.frame_count:
                b.add_frames(b.received, res.mesh.vertices[b.received:])
            meta = plan.meta_from_manifest(res.manifest, source=str(folder))
            for seq_meta in plan.sequence_metas(meta, res.manifest)[1:]:
                seq = res.mesh_sequence(seq_meta.sequence)
                job = MeshImport(seq_meta, seq.faces, seq.times, seq.vertex_count, seq.uvs,
                                 seq.colors, storage=self.storage, start=self.start,
                                 scene=self.scene)
                job.add_frames(0, seq.vertices)
                others.append(job.finish())
                self._notices += job.notices
        else:
            last = res.frame_count - 1
            for i in range(b.received, res.frame_count):
                b.add_gaussian_frame(i, res.gaussian_frame(i), rebuild=i == last)
        obj = b.finish()
        slider = plan.blend_slider(res.manifest)
        if slider is not None and isinstance(b, MeshImport):
            apply_blend_slider(obj, slider)
        obj["anim4d_source"] = str(folder)
        self.objects = [obj, *others]
        return obj
