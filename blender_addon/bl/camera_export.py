"""Read a Blender camera object into :class:`..core.cameras.BlenderCamera` (the conversion to the
protocol's OpenCV cameras is bpy-free, in ``core/cameras.py``)."""

from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np
from bpy.props import StringProperty

from ..core._shared import cameras as shared_cameras
from ..core._shared import errors
from ..core.cameras import BlenderCamera, opencv_camera


def from_bpy(obj, scene) -> BlenderCamera:
    """A camera object as seen through ``scene``'s render settings (resolution, percentage,
    pixel aspect)."""
    if obj is None or obj.type != "CAMERA":
        raise ValueError(f"{getattr(obj, 'name', None)!r} is not a camera object")
    cam, r = obj.data, scene.render
    return BlenderCamera(
        matrix_world=np.array([list(row) for row in obj.matrix_world], dtype=np.float64),
        lens=float(cam.lens), sensor_width=float(cam.sensor_width),
        sensor_height=float(cam.sensor_height), sensor_fit=str(cam.sensor_fit),
        shift_x=float(cam.shift_x), shift_y=float(cam.shift_y),
        resolution_x=int(r.resolution_x), resolution_y=int(r.resolution_y),
        resolution_percentage=int(r.resolution_percentage),
        pixel_aspect_x=float(r.pixel_aspect_x), pixel_aspect_y=float(r.pixel_aspect_y),
        type=str(cam.type))


def camera_dict(name: str, obj, scene) -> dict:
    """The protocol's camera dict (``shared/cameras.py``) of a camera object."""
    return opencv_camera(name, from_bpy(obj, scene))


def scene_view_cameras(scene, objects) -> list[dict]:
    """The scene's active camera as ``input``, then every other camera object of ``objects`` by
    its object name (the name its view's files must carry: ``<name>_0001.png`` or
    ``<name>.mp4``)."""
    active = scene.camera
    if active is None:
        raise ValueError("the scene has no active camera (the input clip's camera)")
    cams = [camera_dict("input", active, scene)]
    for obj in sorted((o for o in objects if o.type == "CAMERA" and o != active),
                      key=lambda o: o.name):
        cams.append(camera_dict(obj.name, obj, scene))
    return cams


class ANIM4D_OT_export_view_cameras(bpy.types.Operator):
    """Write the views' cameras file for Video to 4D: the active camera is the input clip's,
    the other selected cameras are the views (named after their objects)"""

    bl_idname = "anim4d.export_view_cameras"
    bl_label = "Export View Cameras"
    bl_options = {"REGISTER"}

    filepath: StringProperty(name="File", subtype="FILE_PATH", default="//cameras.json")

    def execute(self, context):
        try:
            path = Path(bpy.path.abspath(self.filepath))
            if path.suffix.lower() != ".json":
                path = path.with_suffix(".json")
            cams = scene_view_cameras(context.scene, context.selected_objects)
            shared_cameras.write_cameras(path, cams)
        except (ValueError, errors.Anim4DError) as err:
            self.report({"ERROR"}, str(err))
            return {"CANCELLED"}
        self.report({"INFO"}, f"{len(cams)} camera(s) written to {path}")
        return {"FINISHED"}


CLASSES = (ANIM4D_OT_export_view_cameras,)
