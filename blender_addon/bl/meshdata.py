"""Bulk construction of Blender meshes and objects from numpy arrays (``foreach_set`` only)."""

from __future__ import annotations

from typing import Any

import bpy
import numpy as np

from ..core import import_plan as plan


def build_mesh(name: str, vertices: np.ndarray, faces: np.ndarray | None = None,
               uvs: np.ndarray | None = None, colors: np.ndarray | None = None) -> bpy.types.Mesh:
    """A mesh from Blender-space ``vertices`` ``[V, 3]`` and triangles ``faces`` ``[F, 3]``.

    ``uvs`` ``[V, 2]`` become the UV map ``UVMap`` (per corner), ``colors`` ``[V, 4]`` the point
    colour attribute ``Color``. ``faces`` None makes a vertex-only mesh (point clouds).
    """
    mesh = bpy.data.meshes.new(name)
    v = np.ascontiguousarray(vertices, dtype=np.float32)
    mesh.vertices.add(len(v))
    mesh.vertices.foreach_set("co", v.ravel())
    if faces is not None and len(faces):
        f = np.ascontiguousarray(faces, dtype=np.int32)
        mesh.loops.add(f.size)
        mesh.loops.foreach_set("vertex_index", f.ravel())
        mesh.polygons.add(len(f))
        mesh.polygons.foreach_set("loop_start", np.arange(0, f.size, 3, dtype=np.int32))
        if uvs is not None:
            layer = mesh.uv_layers.new(name="UVMap")
            layer.data.foreach_set("uv", plan.loop_uvs(uvs, f))
        if colors is not None:
            attr = mesh.color_attributes.new("Color", "FLOAT_COLOR", "POINT")
            attr.data.foreach_set("color", np.ascontiguousarray(colors, np.float32).ravel())
            mesh.color_attributes.active_color = attr
    mesh.update()
    return mesh


def set_point_attribute(mesh: bpy.types.Mesh, name: str, values: np.ndarray,
                        kind: str = "FLOAT") -> None:
    """Create or overwrite point attribute ``name`` (FLOAT, INT, FLOAT_VECTOR, FLOAT_COLOR,
    QUATERNION)."""
    attr = mesh.attributes.get(name)
    if attr is not None and (attr.data_type != kind or attr.domain != "POINT"):
        mesh.attributes.remove(attr)
        attr = None
    if attr is None:
        attr = mesh.attributes.new(name, kind, "POINT")
    key = {"FLOAT": "value", "INT": "value", "FLOAT_VECTOR": "vector",
           "FLOAT_COLOR": "color", "QUATERNION": "value"}[kind]
    dtype = np.int32 if kind == "INT" else np.float32
    attr.data.foreach_set(key, np.ascontiguousarray(values, dtype=dtype).ravel())


def link_object(name: str, data: Any, collection: bpy.types.Collection | None = None
                ) -> bpy.types.Object:
    """A new object holding ``data``, linked to ``collection`` (default: the scene's)."""
    obj = bpy.data.objects.new(name, data)
    (collection or bpy.context.scene.collection).objects.link(obj)
    return obj


def store_meta(obj: bpy.types.Object, meta: plan.ResultMeta, time_kind: str,
               base_frames: np.ndarray, start: float) -> None:
    """Record the result's metadata and the import-time keys on ``obj`` (custom properties)."""
    for key, value in meta.to_props().items():
        obj[key] = value
    obj["anim4d_time_kind"] = time_kind
    obj["anim4d_base_frames"] = [float(f) for f in base_frames]
    obj["anim4d_start"] = float(start)


def base_keys(obj: bpy.types.Object) -> tuple[np.ndarray, np.ndarray, float]:
    """``(frames, values, start)`` of the time curve as imported (before any retime)."""
    frames = np.asarray(obj.get("anim4d_base_frames", []), dtype=np.float64)
    kind = obj.get("anim4d_time_kind", "")
    values = plan.time_values(kind, len(frames))
    return frames, values, float(obj.get("anim4d_start", frames[0] if len(frames) else 1.0))
