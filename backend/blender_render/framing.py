"""Camera, lights, grid and frame-range maths for headless renders (bpy-free: numpy only).

Everything is in Blender's space: Z up, right-handed, the front of a result (its +Z in the
Y-up result frame) facing -Y. A camera looks down its local -Z with +Y up, as Blender's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from blender_addon.core.import_plan import to_blender_points
from shared.errors import ParamError
from shared.results import ResultData

LENS_MM = 50.0
SENSOR_MM = 36.0
FIXED_AZIMUTH = 35.0  # degrees: the 3/4 view, right of the front
ELEVATION = 18.0  # degrees above the horizon
MARGIN = 0.85  # the box's projection fills at most this share of the half-frame
MIN_OPACITY = 0.05  # splats fainter than this do not count towards the bounds


@dataclass(frozen=True)
class Bounds:
    """Axis-aligned box ``lo``..``hi`` (``[3]`` each)."""

    lo: np.ndarray
    hi: np.ndarray

    @property
    def center(self) -> np.ndarray:
        return (np.asarray(self.lo) + np.asarray(self.hi)) / 2.0

    @property
    def size(self) -> np.ndarray:
        return np.asarray(self.hi) - np.asarray(self.lo)

    @property
    def radius(self) -> float:
        """Half the diagonal (at least a tiny positive number)."""
        return max(float(np.linalg.norm(self.size)) / 2.0, 1e-6)

    def corners(self) -> np.ndarray:
        """``[8, 3]``."""
        lo, hi = np.asarray(self.lo, float), np.asarray(self.hi, float)
        return np.array([[(lo, hi)[i][0], (lo, hi)[j][1], (lo, hi)[k][2]]
                         for i in (0, 1) for j in (0, 1) for k in (0, 1)])

    def moved(self, offset: np.ndarray) -> Bounds:
        return Bounds(np.asarray(self.lo) + offset, np.asarray(self.hi) + offset)

    @staticmethod
    def union(boxes: list[Bounds]) -> Bounds:
        return Bounds(np.min([b.lo for b in boxes], axis=0), np.max([b.hi for b in boxes], axis=0))


def bounds_of_points(points: np.ndarray, radii: np.ndarray | None = None) -> Bounds:
    """Box around ``points`` ``[..., 3]``, each grown by its ``radii`` ``[...]`` if given."""
    p = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    finite = np.all(np.isfinite(p), axis=1)
    if not finite.any():
        raise ParamError("nothing to frame: no finite positions")
    r = np.zeros(len(p)) if radii is None else np.asarray(radii, np.float64).reshape(-1)
    p, r = p[finite], np.where(np.isfinite(r[finite]), r[finite], 0.0)[:, None]
    return Bounds((p - r).min(axis=0), (p + r).max(axis=0))


def result_bounds(res: ResultData) -> Bounds:
    """The box holding a result over all its frames, in Blender space: every vertex of every
    sequence, or every splat centre grown by its largest axis (splats with opacity under
    :data:`MIN_OPACITY` left out)."""
    if res.representation == "mesh_sequence":
        boxes = [bounds_of_points(to_blender_points(res.mesh_sequence(i).vertices))
                 for i in range(res.sequence_count)]
        return Bounds.union(boxes)
    if res.representation != "gaussian_sequence":
        raise ParamError(f"{res.folder}: a {res.representation} result has nothing to render")
    boxes = []
    for i in range(res.frame_count):
        f = res.gaussian_frame(i)
        keep = 1.0 / (1.0 + np.exp(-np.asarray(f.opacity_logits, np.float64))) >= MIN_OPACITY
        if keep.any():
            boxes.append(bounds_of_points(to_blender_points(f.means[keep]),
                                          np.exp(f.log_scales[keep].max(axis=1))))
    if not boxes:
        raise ParamError(f"{res.folder}: every splat is (nearly) transparent: nothing to frame")
    return Bounds.union(boxes)


def result_fps(manifest_fps: float, frame_times: list[float]) -> float:
    """The result's frame rate: the manifest's, else from its sample spacing, else 24."""
    if manifest_fps and manifest_fps > 0:
        return float(manifest_fps)
    steps = np.diff(np.asarray(frame_times, dtype=np.float64))
    steps = steps[steps > 0]
    return float(1.0 / np.median(steps)) if len(steps) else 24.0


def blender_fps(fps: float) -> tuple[int, float]:
    """``(render.fps, render.fps_base)`` for ``fps`` frames per second (fps / base = fps)."""
    whole = max(1, round(fps))
    return whole, whole / float(fps)


def frame_range(duration_s: float, fps: float,
                frames: tuple[int, int] | None = None) -> tuple[int, int]:
    """Scene frames ``(start, end)`` to render, inclusive: frame 1 is time 0, the last frame
    is the one nearest the end of the animation (``duration_s``). ``frames`` narrows it."""
    last = 1 + round(float(duration_s) * float(fps))
    if frames is None:
        return 1, last
    start, end = frames
    if start > last or end > last:
        raise ParamError(f"frames {start}:{end}: the animation spans frames 1:{last} at "
                         f"{fps:g} fps")
    return start, end


def view_direction(azimuth_deg: float, elevation_deg: float = ELEVATION) -> np.ndarray:
    """Unit vector from the target towards the camera; azimuth 0 is the front (-Y)."""
    a, e = math.radians(azimuth_deg), math.radians(elevation_deg)
    return np.array([math.sin(a) * math.cos(e), -math.cos(a) * math.cos(e), math.sin(e)])


def camera_axes(direction: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(right, up)`` of a camera looking along ``-direction`` with world Z up."""
    d = np.asarray(direction, float) / np.linalg.norm(direction)
    right = np.cross(-d, [0.0, 0.0, 1.0])
    if np.linalg.norm(right) < 1e-9:  # looking straight down or up
        right = np.array([1.0, 0.0, 0.0])
    right /= np.linalg.norm(right)
    return right, np.cross(right, -d)


def half_fov_tangents(width: int, height: int, lens: float = LENS_MM,
                      sensor: float = SENSOR_MM) -> tuple[float, float]:
    """``(tan(horizontal / 2), tan(vertical / 2))`` with Blender's sensor fit ``AUTO``."""
    t = sensor / 2.0 / lens
    return (t, t * height / width) if width >= height else (t * width / height, t)


def fit_distance(bounds: Bounds, direction: np.ndarray, tan_h: float, tan_v: float,
                 margin: float = MARGIN) -> float:
    """Smallest distance from ``bounds.center`` along ``direction`` at which every corner of
    the box projects inside ``margin`` of the frame."""
    d = np.asarray(direction, float) / np.linalg.norm(direction)
    right, up = camera_axes(d)
    q = bounds.corners() - bounds.center
    along = q @ d
    need_x = along + np.abs(q @ right) / (tan_h * margin)
    need_y = along + np.abs(q @ up) / (tan_v * margin)
    near = along + 0.05 * bounds.radius  # never closer than just in front of the box
    return float(max(need_x.max(), need_y.max(), near.max()))


def look_at(eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Blender camera ``matrix_world`` ``[4, 4]`` at ``eye`` looking at ``target``."""
    d = np.asarray(eye, float) - np.asarray(target, float)
    d /= np.linalg.norm(d)
    right, up = camera_axes(d)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = right, up, d, eye
    return m


def camera_matrices(bounds: Bounds, preset: str, count: int, width: int, height: int
                    ) -> list[np.ndarray]:
    """One camera matrix (``fixed``) or ``count`` of them (``turntable``: one full turn,
    starting at the 3/4 view, all at the one distance that frames every view)."""
    tan_h, tan_v = half_fov_tangents(width, height)
    if preset == "fixed":
        azimuths = [FIXED_AZIMUTH]
    elif preset == "turntable":
        azimuths = [FIXED_AZIMUTH + 360.0 * k / max(count, 1) for k in range(count)]
    else:
        raise ParamError(f"camera {preset!r}: expected fixed or turntable")
    dirs = [view_direction(a) for a in azimuths]
    dist = max(fit_distance(bounds, d, tan_h, tan_v) for d in dirs)
    c = bounds.center
    return [look_at(c + dist * d, c) for d in dirs]


def project(matrix: np.ndarray, points: np.ndarray, width: int, height: int) -> np.ndarray:
    """Pixel coordinates ``[N, 2]`` (x right, y up, 0..width/height) of world ``points``."""
    tan_h, tan_v = half_fov_tangents(width, height)
    inv = np.linalg.inv(matrix)
    p = (np.c_[points, np.ones(len(points))] @ inv.T)[:, :3]
    depth = -p[:, 2]
    x = (p[:, 0] / depth / tan_h + 1.0) / 2.0 * width
    y = (p[:, 1] / depth / tan_v + 1.0) / 2.0 * height
    return np.stack([x, y], axis=1)


@dataclass(frozen=True)
class LightSpec:
    """An area light: ``matrix`` ``[4, 4]`` (it shines along its local -Z), ``power`` W,
    ``size`` m."""

    name: str
    matrix: np.ndarray
    power: float
    size: float


# (name, azimuth relative to the camera, elevation, power per squared metre of distance)
THREE_POINT = (("key", -40.0, 45.0, 8.0), ("fill", 55.0, 20.0, 2.5),
               ("rim", 170.0, 50.0, 6.0))


def three_point_lights(bounds: Bounds, camera_azimuth: float = FIXED_AZIMUTH
                       ) -> list[LightSpec]:
    """Key (high, to one side of the camera), fill (low, the other side, weaker) and rim
    (behind), each at three radii from the centre and pointed at it."""
    r = bounds.radius
    dist = 3.0 * r
    out = []
    for name, az, el, per_m2 in THREE_POINT:
        eye = bounds.center + dist * view_direction(camera_azimuth + az, el)
        out.append(LightSpec(name, look_at(eye, bounds.center), per_m2 * dist * dist, r))
    return out


def grid_offsets(boxes: list[Bounds], gap: float = 0.25) -> list[np.ndarray]:
    """Offsets ``[3]`` that place each box in a cell of a near-square grid (row by row, left to
    right, first row at the back), centred on the origin in x and y, resting on z = 0.

    Cells are as large as the largest box plus ``gap`` of it, so no two boxes overlap.
    """
    n = len(boxes)
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    cell = max(max(float(b.size[0]), float(b.size[1])) for b in boxes) * (1.0 + gap)
    out = []
    for i, b in enumerate(boxes):
        row, col = divmod(i, cols)
        target = np.array([(col - (cols - 1) / 2.0) * cell, ((rows - 1) / 2.0 - row) * cell])
        out.append(np.array([target[0] - b.center[0], target[1] - b.center[1], -b.lo[2]]))
    return out
