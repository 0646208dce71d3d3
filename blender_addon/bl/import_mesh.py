"""Import a mesh sequence as one keyframed object: absolute shape keys or a PC2 Mesh Cache.

:class:`MeshImport` takes frames in order, in batches (a streaming fetch hands them over as they
arrive; a folder import hands them all at once), and keeps the object playable after every batch:
the time curve always spans the frames received so far. Everything is written in bulk.
"""

from __future__ import annotations

import os
from pathlib import Path

import bpy
import numpy as np

from ..core import import_plan as plan
from ..core.pc2_stream import Pc2Appender
from . import meshdata, timecurve


def cache_dir_for(job: str) -> tuple[str, Path]:
    """``(path stored in the modifier, absolute folder)`` of the PC2 cache for ``job``.

    Relative to the .blend (``//anim4d_cache/<job>/``) so the file travels to a render farm; an
    unsaved .blend gets an absolute folder in the temporary directory instead.
    """
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in job) or "local"
    if bpy.data.filepath:
        rel = f"//anim4d_cache/{safe}/"
        return rel, Path(bpy.path.abspath(rel))
    folder = Path(bpy.app.tempdir or os.environ.get("TMPDIR", "/tmp")) / "anim4d_cache" / safe
    return str(folder) + os.sep, folder


class MeshImport:
    """Build one object from a mesh sequence whose frames arrive in order.

    ``storage``: ``AUTO`` (shape keys up to ~200 MB of key data, else PC2), ``SHAPE_KEYS`` or
    ``PC2``. ``start`` defaults to the scene's first frame; the scene's fps is never changed.
    """

    def __init__(self, meta: plan.ResultMeta, faces: np.ndarray, times: np.ndarray,
                 vertex_count: int, uvs: np.ndarray | None = None,
                 colors: np.ndarray | None = None, *, storage: str = "AUTO",
                 start: float | None = None, scene: bpy.types.Scene | None = None,
                 collection: bpy.types.Collection | None = None):
        self.meta = meta
        self.scene = scene or bpy.context.scene
        self.faces = np.asarray(faces, dtype=np.int32)
        self.uvs, self.colors = uvs, colors
        self.vertex_count = int(vertex_count)
        self.start = float(self.scene.frame_start if start is None else start)
        render = self.scene.render
        self.frames = plan.scene_frames(times, render.fps, render.fps_base, self.start)
        self.requested_storage = storage
        self.storage = storage
        self.notices: list[str] = []
        if self.vertex_count > 0:
            self._choose_storage()
        self.collection = collection
        self.obj: bpy.types.Object | None = None
        self.received = 0
        self._pc2: Pc2Appender | None = None

    @property
    def time_kind(self) -> str:
        return plan.TIME_SHAPE_KEYS if self.storage == "SHAPE_KEYS" else plan.TIME_MESH_CACHE

    def add_frames(self, first: int, vertices: np.ndarray) -> None:
        """Add frames ``first ..`` (Y-up ``[b, V, 3]``); frames already added are skipped."""
        verts = np.asarray(vertices)
        if self.vertex_count <= 0 and verts.ndim == 3:  # header did not say: first batch does
            self.vertex_count = int(verts.shape[1])
            self._choose_storage()
        if verts.ndim != 3 or verts.shape[1:] != (self.vertex_count, 3):
            raise ValueError(f"frames must be [b, {self.vertex_count}, 3], got {list(verts.shape)}")
        if first > self.received:
            raise ValueError(f"frame {first} arrived before frame {self.received}")
        verts = verts[self.received - first:]
        if not len(verts):
            return
        verts = plan.to_blender_points(verts)
        if self.obj is None:
            self._create(verts[0])
        if self.storage == "SHAPE_KEYS":
            self._add_shape_keys(verts)
        else:
            self._add_cache_frames(verts)
        self.received += len(verts)
        self._update_curve()

    def finish(self) -> bpy.types.Object:
        """The finished object (all frames must have arrived)."""
        if self.obj is None or self.received < len(self.frames):
            raise ValueError(f"only {self.received} of {len(self.frames)} frames arrived")
        self.obj["anim4d_complete"] = True
        return self.obj

    # -- internals ----------------------------------------------------------------------------

    def _choose_storage(self) -> None:
        self.storage, notice = plan.choose_storage(len(self.frames), self.vertex_count,
                                                   self.requested_storage)
        if notice:
            self.notices.append(notice)

    def _create(self, first_frame: np.ndarray) -> None:
        name = plan.object_name(self.meta)
        mesh = meshdata.build_mesh(name, first_frame, self.faces, self.uvs, self.colors)
        obj = meshdata.link_object(name, mesh, self.collection)
        meshdata.store_meta(obj, self.meta, self.time_kind, self.frames, self.start)
        obj["anim4d_complete"] = False
        obj["anim4d_storage"] = self.storage
        self.obj = obj
        if self.storage == "SHAPE_KEYS":
            obj.shape_key_add(name="Basis", from_mix=False)
            mesh.shape_keys.use_relative = False
        else:
            stored, folder = cache_dir_for(self.meta.job_id or name)
            if not bpy.data.filepath:
                self.notices.append(
                    f"the .blend is not saved, so the PC2 cache went to {folder}; save the .blend "
                    "before importing to keep the cache beside it (//anim4d_cache/)")
            file_name = f"{name}.pc2"
            self._pc2 = Pc2Appender(folder / file_name, self.vertex_count)
            mod = obj.modifiers.new(timecurve.CACHE_MODIFIER, "MESH_CACHE")
            mod.cache_format = "PC2"
            mod.filepath = stored + file_name
            mod.play_mode = "CUSTOM"
            mod.time_mode = "FRAME"
            mod.interpolation = "LINEAR"
            mod.forward_axis, mod.up_axis = "POS_Y", "POS_Z"  # data is already Z-up
            obj["anim4d_cache_file"] = mod.filepath

    def _add_shape_keys(self, verts: np.ndarray) -> None:
        obj = self.obj
        key_blocks = obj.data.shape_keys.key_blocks
        for i, frame in enumerate(verts):
            index = self.received + i
            if index == 0:
                block = key_blocks[0]  # the basis is frame 0
            else:
                block = obj.shape_key_add(name=f"frame_{index:04d}", from_mix=False)
            block.interpolation = "KEY_LINEAR"
            block.data.foreach_set("co", frame.ravel())
        obj.data.update()

    def _add_cache_frames(self, verts: np.ndarray) -> None:
        assert self._pc2 is not None
        self._pc2.append(verts)
        self.obj.update_tag()

    def _update_curve(self) -> None:
        n = self.received
        values = plan.time_values(self.time_kind, n)
        timecurve.write_time_curve(self.obj, self.frames[:n], values)


def import_mesh_sequence(seq, meta: plan.ResultMeta, *, storage: str = "AUTO",
                         start: float | None = None, scene: bpy.types.Scene | None = None,
                         collection: bpy.types.Collection | None = None
                         ) -> tuple[bpy.types.Object, list[str]]:
    """Import a whole ``shared.meshseq.MeshSequence``; returns the object and notices."""
    job = MeshImport(meta, seq.faces, seq.times, seq.vertex_count, seq.uvs, seq.colors,
                     storage=storage, start=start, scene=scene, collection=collection)
    job.add_frames(0, seq.vertices)
    return job.finish(), job.notices
