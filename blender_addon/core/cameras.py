"""Blender cameras -> the protocol's OpenCV cameras (no ``bpy`` here; ``bl/camera_export.py``
reads a camera object into a :class:`BlenderCamera`).

``video.to4d`` takes the views an artist renders in Blender with one cameras file
(``shared/cameras.py``): ``{name, world_to_camera (4x4, OpenCV axes: +X right, +Y down, +Z
forward), K (3x3, pixels), width, height}`` in the result's Y-up frame, the input clip's camera
named ``input``. This module converts a perspective Blender camera to that form:

- world: the inverse of the importer's axis map (:func:`.import_plan.to_blender_points`, Y-up
  (x, y, z) -> Z-up (x, -z, y)), so a reconstruction imports back where the cameras saw it;
- pose: ``matrix_world`` with its scale removed (as Blender does), camera axes from Blender's
  (+X right, +Y up, looking down -Z) to OpenCV's (y and z negated);
- intrinsics: Blender's view plane (``BKE_camera_params_compute_viewplane``): the render size is
  ``resolution * percentage / 100`` (whole pixels, rounded down); the sensor fit decides which
  side the sensor spans (AUTO: the wider one in pixel-aspect-corrected size, always with the
  sensor *width*; HORIZONTAL: width with the sensor width; VERTICAL: height with the sensor
  height); ``f = lens / sensor * span``, the shift moves the centre by ``shift * span`` pixels
  (x right, y up), and a pixel aspect ``ycor = pixel_aspect_y / pixel_aspect_x`` other than 1
  divides the vertical focal length and shift by ``ycor``.

Checked against ``bpy_extras.object_utils.world_to_camera_view`` in
``tests/addon/test_camera_export.py`` (worst error below 1e-3 px).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._shared import cameras as shared_cameras
from .import_plan import to_blender_points

SENSOR_FITS = ("AUTO", "HORIZONTAL", "VERTICAL")
#: Blender camera axes (+Y up, looking down -Z) -> OpenCV camera axes (+Y down, +Z forward).
_BLENDER_CAM_TO_CV = np.diag([1.0, -1.0, -1.0, 1.0])


def ours_to_blender_matrix() -> np.ndarray:
    """[4, 4] Y-up -> Z-up, the importer's axis map (:func:`.import_plan.to_blender_points`)."""
    m = np.eye(4)
    m[:3, :3] = to_blender_points(np.eye(3)).astype(np.float64).T  # columns: images of x, y, z
    return m


@dataclass
class BlenderCamera:
    """A perspective Blender camera and the render settings it is seen through.

    ``matrix_world`` [4, 4] in Blender's Z-up world (the object's, scale allowed); ``lens``,
    ``sensor_width``, ``sensor_height`` in mm; ``shift_x`` / ``shift_y`` in units of the larger
    sensor-fit side, as Blender shows them.
    """

    matrix_world: np.ndarray
    lens: float
    sensor_width: float = 36.0
    sensor_height: float = 24.0
    sensor_fit: str = "AUTO"
    shift_x: float = 0.0
    shift_y: float = 0.0
    resolution_x: int = 1920
    resolution_y: int = 1080
    resolution_percentage: int = 100
    pixel_aspect_x: float = 1.0
    pixel_aspect_y: float = 1.0
    type: str = "PERSP"

    def render_size(self) -> tuple[int, int]:
        """(width, height) in pixels of the images this camera renders."""
        pct = int(self.resolution_percentage)
        return (int(self.resolution_x) * pct // 100, int(self.resolution_y) * pct // 100)

    def check(self, name: str = "camera") -> None:
        if self.type != "PERSP":
            raise ValueError(f"{name}: a {self.type} camera has no pinhole model; use a "
                             "perspective camera")
        if self.sensor_fit not in SENSOR_FITS:
            raise ValueError(f"{name}: unknown sensor_fit {self.sensor_fit!r}; accepted: "
                             f"{', '.join(SENSOR_FITS)}")
        w, h = self.render_size()
        if w < 1 or h < 1:
            raise ValueError(f"{name}: the render size is {w}x{h} pixels")
        if min(self.lens, self.sensor_width, self.sensor_height, self.pixel_aspect_x,
               self.pixel_aspect_y) <= 0:
            raise ValueError(f"{name}: lens, sensor size and pixel aspect must be positive")


def intrinsics(cam: BlenderCamera) -> np.ndarray:
    """K [3, 3] (float64, pixels of :meth:`BlenderCamera.render_size`); see the module doc."""
    cam.check()
    W, H = cam.render_size()
    ax, ay = float(cam.pixel_aspect_x), float(cam.pixel_aspect_y)
    ycor = ay / ax
    fit = cam.sensor_fit
    if fit == "AUTO":
        fit = "HORIZONTAL" if ax * W >= ay * H else "VERTICAL"
        sensor = cam.sensor_width  # Blender: AUTO always uses the sensor width
    else:
        sensor = cam.sensor_width if fit == "HORIZONTAL" else cam.sensor_height
    span = W if fit == "HORIZONTAL" else ycor * H
    f = cam.lens / sensor * span
    return np.array([[f, 0.0, W / 2 - cam.shift_x * span],
                     [0.0, f / ycor, H / 2 + cam.shift_y * span / ycor],
                     [0.0, 0.0, 1.0]])


def world_to_camera(matrix_world) -> np.ndarray:
    """[4, 4] world-to-camera (OpenCV axes, Y-up world) of a Blender ``matrix_world``."""
    M = np.array(matrix_world, dtype=np.float64).reshape(4, 4)
    scale = np.linalg.norm(M[:3, :3], axis=0)
    if np.any(scale <= 1e-12) or not np.isfinite(M).all():
        raise ValueError("the camera's matrix_world has a zero scale or is not finite")
    M[:3, :3] /= scale
    if np.linalg.det(M[:3, :3]) < 0:
        raise ValueError("the camera's matrix_world mirrors (a negative scale); remove it")
    return _BLENDER_CAM_TO_CV @ np.linalg.inv(M) @ ours_to_blender_matrix()


def opencv_camera(name: str, cam: BlenderCamera) -> dict:
    """The protocol's camera dict (``shared/cameras.py``) of a Blender camera."""
    cam.check(name)
    W, H = cam.render_size()
    d = shared_cameras.camera_dict(name, world_to_camera(cam.matrix_world), intrinsics(cam), W,
                                   H)
    shared_cameras.check_camera(d, name)  # the backend will accept it
    return d


def write_views_cameras(path: str | Path, cameras: dict[str, BlenderCamera]
                        | Sequence[tuple[str, BlenderCamera]]) -> Path:
    """Write a views' cameras file for ``video.to4d``: ``{view name: camera}`` (the input
    clip's camera named ``input``)."""
    items = list(cameras.items()) if isinstance(cameras, dict) else list(cameras)
    if shared_cameras.INPUT_CAMERA not in [n for n, _ in items]:
        raise ValueError("the cameras need the input clip's camera, named 'input'")
    return shared_cameras.write_cameras(path, [opencv_camera(n, c) for n, c in items])
