"""Multi-view sources: per-frame images, masks and cameras for each view of a clip.

Cameras follow :mod:`backend.render.cameras`: ``viewmat`` [4, 4] world-to-camera with OpenCV axes
(+Z forward, +Y down) in the project's Y-up world, ``K`` [3, 3] in pixels of the view's images.
View 0 is always the input (real) view, named ``input``.

Two sources here (part 2 adds Zero123++ pseudo-views behind the same interface):

- :class:`SuppliedViews`: views the user gives with their cameras (e.g. rendered in Blender; the
  add-on converts each Blender camera with ``blender_addon/core/cameras.py``, the same model as
  ``backend.render.cameras.blender_to_viewmat`` / ``K_from_blender_lens`` plus render percentage
  and pixel aspect); :mod:`.view_files` builds one from a job's uploaded files.
- :class:`InputViewOnly`: the input view alone, on the STAG4D orbit camera (azimuth 0, elevation 0,
  radius 2, vertical FoV 49.1 degrees, looking at the origin); it warns that the unseen side of
  the object will be weak.
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from backend.render.cameras import STAG4D_FOV_DEG, STAG4D_RADIUS, intrinsics_from_fov, orbit_viewmat
from shared.errors import FormatError, ParamError

from .clip import Clip


class WeakViewsWarning(UserWarning):
    """Fewer views than the method wants: parts of the object will be poorly constrained."""


@dataclass
class View:
    """One view of the clip.

    Attributes:
        name: unique name ("input" for the real view).
        rgba: [T, H, W, 4] float32 in [0, 1], straight alpha (alpha = mask).
        viewmat: [4, 4] float64 world-to-camera (OpenCV axes); K: [3, 3] float64 in pixels.
        real: True for a filmed/rendered view, False for a generated (pseudo) one.
    """

    name: str
    rgba: np.ndarray
    viewmat: np.ndarray
    K: np.ndarray
    real: bool = True

    @property
    def masks(self) -> np.ndarray:
        """[T, H, W] alpha."""
        return self.rgba[..., 3]

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return int(self.rgba.shape[2]), int(self.rgba.shape[1])


class ViewSource(ABC):
    """A multi-view source: ``views()`` returns the views, input first, all with T frames."""

    @abstractmethod
    def views(self) -> list[View]:
        """The views, the input view first; every view has the same frame count."""

    @property
    @abstractmethod
    def times(self) -> np.ndarray:
        """[T] frame times in [0, 1]."""

    def stacked(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rgba [V, T, H, W, 4], viewmats [V, 4, 4], Ks [V, 3, 3]); views must share a size."""
        vs = self.views()
        sizes = {v.size for v in vs}
        if len(sizes) != 1:
            raise FormatError(f"views have different sizes {sorted(sizes)}; stack per view")
        return (np.stack([v.rgba for v in vs]), np.stack([v.viewmat for v in vs]),
                np.stack([v.K for v in vs]))


def default_input_camera(size: int) -> tuple[np.ndarray, np.ndarray]:
    """The input view's camera when none is given: STAG4D's front orbit camera."""
    return orbit_viewmat(0.0, 0.0, STAG4D_RADIUS), intrinsics_from_fov(STAG4D_FOV_DEG, size, size)


class InputViewOnly(ViewSource):
    """The input view alone (warns: the unseen side will be weak).

    ``viewmat`` / ``K`` (K in *source* pixels, moved through the clip's crop): the input camera
    when known; None: STAG4D's front orbit camera on the cropped clip.
    """

    def __init__(self, clip: Clip, viewmat: np.ndarray | None = None,
                 K: np.ndarray | None = None, warn: bool = True):
        self.clip = clip
        vm, k = default_input_camera(clip.size)
        if K is not None:
            k = clip.box.intrinsics(_check_K("input", K), clip.size)
        self._view = View("input", clip.rgba, _check_viewmat("input", vm if viewmat is None
                                                              else viewmat), k)
        self.message = ("only the input view is available: the side of the object the camera "
                        "does not see will be weak (guessed, not reconstructed); supply more "
                        "views for a better back")
        if warn:
            warnings.warn(self.message, WeakViewsWarning, stacklevel=2)

    def views(self) -> list[View]:
        return [self._view]

    @property
    def times(self) -> np.ndarray:
        return self.clip.times


@dataclass
class ViewSpec:
    """A user-supplied view before checking: rgba [T, H, W, 4] (or [H, W, 4] for a still view
    repeated over the clip), its camera (viewmat [4, 4], K [3, 3] in its pixels)."""

    name: str
    rgba: np.ndarray
    viewmat: np.ndarray
    K: np.ndarray


class SuppliedViews(ViewSource):
    """The input view plus views the user supplies with their cameras.

    Args:
        clip: the input clip (:func:`.clip.load_clip`).
        extra: the supplied views; each must have the clip's frame count (or a single frame).
        input_viewmat, input_K: the input camera, K in *source* pixels (it is moved through the
            clip's crop and resample); None: STAG4D's front orbit camera on the cropped clip.
        min_mask_pixels: a supplied frame with fewer object pixels (alpha > 0.5) is an error.
    """

    def __init__(self, clip: Clip, extra: Sequence[ViewSpec],
                 input_viewmat: np.ndarray | None = None, input_K: np.ndarray | None = None,
                 min_mask_pixels: int = 4):
        self.clip = clip
        if input_K is not None:
            K0 = clip.box.intrinsics(_check_K("input", input_K), clip.size)
        else:
            K0 = default_input_camera(clip.size)[1]
        vm0 = default_input_camera(clip.size)[0] if input_viewmat is None else input_viewmat
        self._views = [View("input", clip.rgba, _check_viewmat("input", vm0), K0)]
        names = {"input"}
        T = clip.num_frames
        for spec in extra:
            if spec.name in names:
                raise ParamError(f"view name {spec.name!r} is used twice; names must be unique")
            names.add(spec.name)
            rgba = np.asarray(spec.rgba)
            if rgba.dtype == np.uint8:
                rgba = rgba.astype(np.float32) / 255.0
            if rgba.ndim == 3:
                rgba = np.repeat(rgba[None], T, axis=0)
            if rgba.ndim != 4 or rgba.shape[-1] != 4:
                raise FormatError(f"view {spec.name!r}: images must be RGBA [T, H, W, 4] (alpha "
                                  f"= mask), got shape {list(rgba.shape)}")
            if rgba.shape[0] != T:
                raise FormatError(f"view {spec.name!r} has {rgba.shape[0]} frames but the input "
                                  f"clip has {T}: supply one image per input frame")
            counts = (rgba[..., 3] > 0.5).reshape(T, -1).sum(1)
            for t in np.flatnonzero(counts < min_mask_pixels):
                raise FormatError(f"view {spec.name!r} frame {t}: the object mask is empty")
            self._views.append(View(spec.name, rgba.astype(np.float32),
                                    _check_viewmat(spec.name, spec.viewmat),
                                    _check_K(spec.name, spec.K)))

    def views(self) -> list[View]:
        return list(self._views)

    @property
    def times(self) -> np.ndarray:
        return self.clip.times


def _check_viewmat(name: str, vm) -> np.ndarray:
    m = np.asarray(vm, dtype=np.float64)
    if m.shape != (4, 4) or not np.isfinite(m).all():
        raise ParamError(f"view {name!r}: world_to_camera must be a finite 4x4 matrix, got "
                         f"shape {list(m.shape)}")
    R = m[:3, :3]
    if (np.abs(R @ R.T - np.eye(3)).max() > 1e-4 or np.linalg.det(R) < 0
            or np.abs(m[3] - [0, 0, 0, 1]).max() > 1e-6):
        raise ParamError(f"view {name!r}: world_to_camera must be a rigid transform (rotation "
                         "with determinant +1, no scale, last row 0 0 0 1), OpenCV axes")
    return m


def _check_K(name: str, K) -> np.ndarray:
    k = np.asarray(K, dtype=np.float64)
    if k.shape != (3, 3) or not np.isfinite(k).all() or k[0, 0] <= 0 or k[1, 1] <= 0:
        raise ParamError(f"view {name!r}: K must be a 3x3 pinhole matrix with fx, fy > 0")
    return k
