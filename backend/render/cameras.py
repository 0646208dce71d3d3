"""Cameras: orbit cameras, pinhole intrinsics and conversion to and from Blender cameras.

Conventions, all in one place:

- **World** (the project's): right-handed, +Y up, +Z towards the viewer of the object's front
  (glTF). Blender's world is Z-up: our (x, y, z) is Blender's (x, -z, y)
  (:data:`OURS_TO_BLENDER`), the mapping Blender's glTF importer applies.
- **Camera** (gsplat / OpenCV): ``viewmat`` maps world to camera coordinates, the camera looks
  down +Z, +X is right, +Y is down. Blender cameras look down their local -Z with +Y up, so
  Blender-camera coordinates are OpenCV ones with y and z negated (:data:`CV_TO_BLENDER_CAM`).
- **Intrinsics** ``K = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]`` in pixels, pixel centres at +0.5;
  :func:`intrinsics_from_fov` takes a *vertical* field of view.
- **Orbit**: ``azimuth`` 0 puts the camera on +Z (looking at the front), 90 on +X (rotation about
  +Y, counterclockwise seen from above); ``elevation`` > 0 puts it above the target. This is the
  Zero123++ sense of elevation. STAG4D / DreamGaussian use the same azimuth but the opposite
  elevation sign ("from +y to -y is (-90, 90)"): pass ``convention="stag4d"`` for their numbers.
  The camera's up vector is world +Y (undefined exactly at the poles; a tiny tilt is used there).

Matrices are float64 numpy arrays; :func:`orbit_cameras` returns torch tensors for rendering.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

#: Our world -> Blender world (homogeneous): (x, y, z) -> (x, -z, y).
OURS_TO_BLENDER = np.array(
    [[1, 0, 0, 0], [0, 0, -1, 0], [0, 1, 0, 0], [0, 0, 0, 1]], dtype=np.float64
)
#: OpenCV camera axes <-> Blender camera axes (its own inverse).
CV_TO_BLENDER_CAM = np.diag([1.0, -1.0, -1.0, 1.0])

Convention = Literal["zero123pp", "stag4d"]

#: Zero123++ v1.2 output views: azimuths relative to the input view, absolute elevations, FoV.
ZERO123PP_V12_AZIMUTHS = (30.0, 90.0, 150.0, 210.0, 270.0, 330.0)
ZERO123PP_V12_ELEVATIONS = (20.0, -10.0, 20.0, -10.0, 20.0, -10.0)
ZERO123PP_V12_FOV_DEG = 30.0
#: Zero123++ v1.1 elevations (relative to the input view).
ZERO123PP_V11_ELEVATIONS = (30.0, -20.0, 30.0, -20.0, 30.0, -20.0)
#: STAG4D's rendering settings (camera radius, vertical FoV).
STAG4D_RADIUS = 2.0
STAG4D_FOV_DEG = 49.1


def _elevation(elevation_deg: float, convention: Convention) -> float:
    if convention == "zero123pp":
        return elevation_deg
    if convention == "stag4d":
        return -elevation_deg
    raise ValueError(f"convention must be 'zero123pp' or 'stag4d', got {convention!r}")


def orbit_position(
    azimuth_deg: float,
    elevation_deg: float,
    radius: float,
    target: Sequence[float] = (0.0, 0.0, 0.0),
    convention: Convention = "zero123pp",
) -> np.ndarray:
    """Camera centre [3] of an orbit camera (see the module docstring for the angles)."""
    az = math.radians(azimuth_deg)
    el = math.radians(_elevation(elevation_deg, convention))
    offset = radius * np.array(
        [math.cos(el) * math.sin(az), math.sin(el), math.cos(el) * math.cos(az)]
    )
    return np.asarray(target, dtype=np.float64) + offset


def look_at(
    eye: Sequence[float],
    target: Sequence[float] = (0.0, 0.0, 0.0),
    up: Sequence[float] = (0.0, 1.0, 0.0),
) -> np.ndarray:
    """World-to-camera matrix [4, 4] (OpenCV axes) of a camera at ``eye`` looking at ``target``."""
    eye = np.asarray(eye, dtype=np.float64)
    fwd = np.asarray(target, dtype=np.float64) - eye
    n = np.linalg.norm(fwd)
    if n == 0:
        raise ValueError("look_at: eye and target coincide")
    fwd /= n
    up = np.asarray(up, dtype=np.float64)
    right = np.cross(fwd, up)
    if np.linalg.norm(right) < 1e-9:  # looking straight along up: tilt the up vector slightly
        right = np.cross(fwd, up + np.array([0.0, 0.0, 1e-6]) + np.array([1e-6, 0.0, 0.0]))
    right /= np.linalg.norm(right)
    down = np.cross(fwd, right)
    R = np.stack([right, down, fwd])  # rows: camera x, y, z in world coordinates
    vm = np.eye(4)
    vm[:3, :3] = R
    vm[:3, 3] = -R @ eye
    return vm


def orbit_viewmat(
    azimuth_deg: float,
    elevation_deg: float,
    radius: float,
    target: Sequence[float] = (0.0, 0.0, 0.0),
    convention: Convention = "zero123pp",
) -> np.ndarray:
    """World-to-camera [4, 4] of an orbit camera looking at ``target``."""
    eye = orbit_position(azimuth_deg, elevation_deg, radius, target, convention)
    return look_at(eye, target)


def viewmat_to_orbit(
    viewmat: np.ndarray, target: Sequence[float] = (0.0, 0.0, 0.0),
    convention: Convention = "zero123pp",
) -> tuple[float, float, float]:
    """(azimuth_deg, elevation_deg, radius) of the camera centre relative to ``target``."""
    c = camera_center(viewmat) - np.asarray(target, dtype=np.float64)
    r = float(np.linalg.norm(c))
    el = math.degrees(math.asin(max(-1.0, min(1.0, c[1] / r))))
    az = math.degrees(math.atan2(c[0], c[2]))
    return az, (el if convention == "zero123pp" else -el), r


def camera_center(viewmat: np.ndarray) -> np.ndarray:
    """World position [3] of a camera from its world-to-camera matrix."""
    R, t = viewmat[:3, :3], viewmat[:3, 3]
    return -R.T @ t


def intrinsics_from_fov(fov_y_deg: float, width: int, height: int) -> np.ndarray:
    """Pinhole K [3, 3] with square pixels, principal point at the image centre."""
    if not 0 < fov_y_deg < 180:
        raise ValueError(f"vertical FoV must be in (0, 180) degrees, got {fov_y_deg}")
    f = 0.5 * height / math.tan(math.radians(fov_y_deg) / 2)
    return np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]], dtype=np.float64)


def fov_y_from_intrinsics(K: np.ndarray, height: int) -> float:
    """Vertical field of view in degrees (for a centred principal point)."""
    return math.degrees(2 * math.atan(0.5 * height / K[1, 1]))


# -- Blender ----------------------------------------------------------------------------------


def viewmat_to_blender(viewmat: np.ndarray) -> np.ndarray:
    """Blender camera ``matrix_world`` [4, 4] (Blender world, Z up) from our ``viewmat``."""
    return OURS_TO_BLENDER @ np.linalg.inv(viewmat) @ CV_TO_BLENDER_CAM


def blender_to_viewmat(matrix_world: np.ndarray) -> np.ndarray:
    """Our ``viewmat`` from a Blender camera ``matrix_world`` (scale is removed first)."""
    M = np.array(matrix_world, dtype=np.float64)
    scale = np.linalg.norm(M[:3, :3], axis=0)
    if np.any(scale <= 0):
        raise ValueError("camera matrix_world has a zero scale")
    M[:3, :3] /= scale
    return CV_TO_BLENDER_CAM @ np.linalg.inv(M) @ OURS_TO_BLENDER


@dataclass(frozen=True)
class BlenderLens:
    """Blender camera data settings equivalent to a pinhole K (``pixel_aspect`` 1)."""

    lens: float  # mm
    sensor_width: float  # mm
    sensor_height: float  # mm
    sensor_fit: str  # "AUTO", "HORIZONTAL" or "VERTICAL"
    shift_x: float
    shift_y: float


def _fit_axis(sensor_fit: str, width: int, height: int, sensor_w: float, sensor_h: float):
    if sensor_fit == "AUTO":
        return (width, sensor_w) if width >= height else (height, sensor_w)
    if sensor_fit == "HORIZONTAL":
        return width, sensor_w
    if sensor_fit == "VERTICAL":
        return height, sensor_h
    raise ValueError(f"unknown sensor_fit {sensor_fit!r}")


def blender_lens_from_K(
    K: np.ndarray, width: int, height: int, sensor_height: float = 24.0
) -> BlenderLens:
    """Blender lens settings that reproduce K (vertical sensor fit). K must have fx == fy."""
    fx, fy = float(K[0, 0]), float(K[1, 1])
    if abs(fx - fy) > 1e-6 * max(fx, fy):
        raise ValueError(f"Blender cameras need square pixels (fx == fy), got {fx} and {fy}")
    return BlenderLens(
        lens=fy * sensor_height / height,
        sensor_width=36.0,
        sensor_height=sensor_height,
        sensor_fit="VERTICAL",
        shift_x=(width / 2 - float(K[0, 2])) / height,
        shift_y=(float(K[1, 2]) - height / 2) / height,
    )


def K_from_blender_lens(lens: BlenderLens, width: int, height: int) -> np.ndarray:
    """Pinhole K [3, 3] of a Blender camera rendering ``width`` x ``height`` pixels."""
    dim, sensor = _fit_axis(lens.sensor_fit, width, height, lens.sensor_width, lens.sensor_height)
    f = lens.lens / sensor * dim
    cx = width / 2 - lens.shift_x * dim
    cy = height / 2 + lens.shift_y * dim
    return np.array([[f, 0, cx], [0, f, cy], [0, 0, 1]], dtype=np.float64)


# -- batches ------------------------------------------------------------------------------------


def orbit_cameras(
    azimuths_deg: Sequence[float],
    elevations_deg: Sequence[float],
    radius: float,
    fov_y_deg: float,
    width: int,
    height: int,
    target: Sequence[float] = (0.0, 0.0, 0.0),
    convention: Convention = "zero123pp",
):
    """Torch ``(viewmats [C, 4, 4], Ks [C, 3, 3])`` float32 for a ring of orbit cameras."""
    import torch

    if len(azimuths_deg) != len(elevations_deg):
        raise ValueError("azimuths and elevations must have the same length")
    vms = [orbit_viewmat(a, e, radius, target, convention)
           for a, e in zip(azimuths_deg, elevations_deg, strict=True)]
    K = intrinsics_from_fov(fov_y_deg, width, height)
    viewmats = torch.tensor(np.stack(vms), dtype=torch.float32)
    Ks = torch.tensor(np.stack([K] * len(vms)), dtype=torch.float32)
    return viewmats, Ks


def zero123pp_cameras(
    input_azimuth_deg: float = 0.0,
    radius: float = STAG4D_RADIUS,
    width: int = 320,
    height: int = 320,
    version: Literal["1.1", "1.2"] = "1.2",
    input_elevation_deg: float = 0.0,
    fov_y_deg: float = ZERO123PP_V12_FOV_DEG,
):
    """The six Zero123++ output views as orbit cameras (grid order: view k at row k // 2).

    v1.2 elevations are absolute; v1.1 ones are relative to ``input_elevation_deg``. Azimuths are
    relative to the input view's azimuth.
    """
    az = [input_azimuth_deg + a for a in ZERO123PP_V12_AZIMUTHS]
    if version == "1.2":
        el = list(ZERO123PP_V12_ELEVATIONS)
    elif version == "1.1":
        el = [input_elevation_deg + e for e in ZERO123PP_V11_ELEVATIONS]
    else:
        raise ValueError(f"Zero123++ version must be '1.1' or '1.2', got {version!r}")
    return orbit_cameras(az, el, radius, fov_y_deg, width, height)
