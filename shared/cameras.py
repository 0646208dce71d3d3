"""Cameras as the protocol writes them: the manifest's ``cameras`` and a views' cameras file.

One camera is ``{"name", "world_to_camera" (4x4, OpenCV axes: +X right, +Y down, +Z forward),
"K" (3x3, pixels), "width", "height"}`` in the result's Y-up frame (``shared/PROTOCOL.md``). A
views' cameras file (the ``cameras`` input of ``video.to4d``) is a JSON list of such cameras (or
an object whose ``cameras`` member is that list); the input view's camera is named ``input``.

:func:`check_camera` validates one camera (finite matrices of the right shapes, a rigid
world-to-camera transform, a pinhole K, positive size); :func:`read_cameras` /
:func:`write_cameras` read and write a file. Errors are :class:`shared.errors.FormatError`
naming the file, the camera and what is accepted. stdlib + numpy only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import FormatError

INPUT_CAMERA = "input"
#: Largest |R R^T - I| (and |det R - 1|) accepted for a rotation read from a file.
RIGID_TOLERANCE = 1e-4


@dataclass
class Camera:
    """One pinhole camera: world_to_camera [4, 4] float64 (OpenCV axes, Y-up world), K [3, 3]
    float64 in pixels of a ``width`` x ``height`` image."""

    name: str
    world_to_camera: np.ndarray
    K: np.ndarray
    width: int
    height: int

    def to_json(self) -> dict[str, Any]:
        return camera_dict(self.name, self.world_to_camera, self.K, self.width, self.height)


def camera_dict(name: str, world_to_camera, K, width: int, height: int) -> dict[str, Any]:
    """The JSON form of one camera (nested lists of floats)."""
    return {"name": str(name),
            "world_to_camera": np.asarray(world_to_camera, dtype=np.float64).tolist(),
            "K": np.asarray(K, dtype=np.float64).tolist(), "width": int(width),
            "height": int(height)}


def check_camera(d: Any, where: str = "camera") -> Camera:
    """One camera dict -> :class:`Camera`, or a FormatError naming ``where`` and the problem."""
    if not isinstance(d, dict):
        raise FormatError(f"{where}: a camera must be an object {{name, world_to_camera, K, "
                          f"width, height}}, got {type(d).__name__}")
    missing = [k for k in ("name", "world_to_camera", "K", "width", "height") if k not in d]
    if missing:
        raise FormatError(f"{where}: camera {d.get('name', '?')!r} lacks {', '.join(missing)}")
    name = d["name"]
    if not isinstance(name, str) or not name:
        raise FormatError(f"{where}: a camera's name must be a non-empty string, got {name!r}")
    at = f"{where}: camera {name!r}"
    m = _matrix(d["world_to_camera"], (4, 4), f"{at}: world_to_camera")
    R = m[:3, :3]
    if (np.abs(R @ R.T - np.eye(3)).max() > RIGID_TOLERANCE
            or abs(np.linalg.det(R) - 1.0) > RIGID_TOLERANCE
            or np.abs(m[3] - [0, 0, 0, 1]).max() > 1e-6):
        raise FormatError(f"{at}: world_to_camera must be a rigid transform (a rotation with "
                          "determinant +1, no scale or shear, last row 0 0 0 1) with OpenCV "
                          "axes (+X right, +Y down, +Z forward)")
    K = _matrix(d["K"], (3, 3), f"{at}: K")
    if (K[0, 0] <= 0 or K[1, 1] <= 0 or K[1, 0] or K[0, 1]
            or np.abs(K[2] - [0, 0, 1]).max() > 1e-9):
        raise FormatError(f"{at}: K must be a pinhole matrix [[fx, 0, cx], [0, fy, cy], "
                          "[0, 0, 1]] with fx, fy > 0 (pixels)")
    size = []
    for key in ("width", "height"):
        v = d[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v != int(v) or v < 1:
            raise FormatError(f"{at}: {key} must be a positive whole number of pixels, "
                              f"got {v!r}")
        size.append(int(v))
    return Camera(name, m, K, size[0], size[1])


def _matrix(value: Any, shape: tuple[int, int], where: str) -> np.ndarray:
    try:
        m = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise FormatError(f"{where} must be a {shape[0]}x{shape[1]} matrix of numbers (a list "
                          "of rows)") from None
    if m.shape != shape:
        raise FormatError(f"{where} must be {shape[0]}x{shape[1]} (a list of rows), got shape "
                          f"{list(m.shape)}")
    if not np.isfinite(m).all():
        raise FormatError(f"{where} holds NaN or infinity")
    return m


def parse_cameras(data: Any, where: str = "cameras") -> list[Camera]:
    """A decoded cameras file (a list, or ``{"cameras": [...]}``) -> cameras; names unique."""
    if isinstance(data, dict) and "cameras" in data:
        data = data["cameras"]
    if not isinstance(data, list) or not data:
        raise FormatError(f"{where}: expected a non-empty JSON list of cameras {{name, "
                          "world_to_camera, K, width, height}} (or {\"cameras\": [...]})")
    cams = [check_camera(d, f"{where}[{i}]") for i, d in enumerate(data)]
    names = [c.name for c in cams]
    for n in names:
        if names.count(n) > 1:
            raise FormatError(f"{where}: camera name {n!r} is used {names.count(n)} times; "
                              "names must be unique")
    return cams


def read_cameras(path: str | Path) -> list[Camera]:
    """Read a views' cameras file (see the module docstring)."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FormatError(f"cameras file {p} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FormatError(f"{p.name}: cannot be read as JSON ({e})") from None
    return parse_cameras(data, p.name)


def write_cameras(path: str | Path, cameras: list[Camera] | list[dict]) -> Path:
    """Write cameras (checked first) as a JSON list; returns the path."""
    cams = [c if isinstance(c, Camera) else check_camera(c, f"camera {i}")
            for i, c in enumerate(cameras)]
    parse_cameras([c.to_json() for c in cams], Path(path).name)  # unique names, non-empty
    p = Path(path)
    p.write_text(json.dumps([c.to_json() for c in cams], indent=1), encoding="utf-8")
    return p
