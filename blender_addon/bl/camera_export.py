"""Read a Blender camera object into :class:`..core.cameras.BlenderCamera` (the conversion to the
protocol's OpenCV cameras is bpy-free, in ``core/cameras.py``)."""

from __future__ import annotations

import numpy as np

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
