"""User-supplied views from files: view clips + one cameras file -> a :class:`.views.ViewSource`.

What ``video.to4d`` receives over the wire besides the input clip (its ``views`` and ``cameras``
inputs):

- view clips, one per view: a video (``left.mp4``: the view ``left``) or an image sequence
  (``left_0001.png``, ``left.0002.png``, ``left0003.png``: the view ``left``, the file name less
  its extension, its trailing frame number and the separator before it), every view with the
  input's frame count (frames are picked like the input's, so they stay in step). Each view is
  masked, cropped and resampled like the input (:func:`.clip.load_clip`; a named background is
  keyed out of the views too, otherwise their alpha or an automatically keyed background).
- one cameras file (:mod:`shared.cameras`): a JSON list of ``{name, world_to_camera (4x4,
  OpenCV), K (3x3), width, height}`` in the result's Y-up frame, one per view, plus the input's
  camera named ``input``; K in the pixels of that view's files (``width`` x ``height`` must be
  their size). The add-on writes it from Blender cameras (``blender_addon/core/cameras.py``).

With a cameras file naming only ``input`` (no views), the input camera replaces the default
STAG4D front camera. Views without a cameras file, a view without a camera, a camera without a
view (a misspelt name), a wrong size or frame count: :class:`~shared.errors.ParamError` naming the
view, the file and what is accepted.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from pathlib import Path

from shared.cameras import INPUT_CAMERA, Camera, read_cameras
from shared.errors import ParamError

from .clip import Clip, InputConfig, load_clip
from .keying import NAMED_BACKGROUNDS
from .video_io import VIDEO_SUFFIXES, natural_key
from .views import InputViewOnly, SuppliedViews, ViewSource, ViewSpec

_FRAME_SUFFIX = re.compile(r"[ ._-]*\d+\Z")


def view_name(path: Path) -> str:
    """The view a file belongs to: a video's stem, an image's stem less its frame number."""
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return path.stem
    name = _FRAME_SUFFIX.sub("", path.stem)
    if not name:
        raise ParamError(f"view image {path.name}: no view name before the frame number; name "
                         "a view's images <view>_<frame> (e.g. left_0001.png), one name per view")
    return name


def group_view_files(paths: Sequence[Path]) -> dict[str, Path | list[Path]]:
    """View name -> its video, or its images in natural order."""
    groups: dict[str, list[Path]] = {}
    for p in paths:
        groups.setdefault(view_name(Path(p)), []).append(Path(p))
    out: dict[str, Path | list[Path]] = {}
    for name, files in groups.items():
        videos = [f for f in files if f.suffix.lower() in VIDEO_SUFFIXES]
        if videos and len(files) > 1:
            raise ParamError(f"view {name!r}: give one video or image files, got "
                             f"{', '.join(f.name for f in files[:4])}")
        out[name] = videos[0] if videos else sorted(files, key=natural_key)
    return out


def _check_size(cam: Camera, size: tuple[int, int], what: str) -> None:
    if (cam.width, cam.height) != tuple(size):
        raise ParamError(f"camera {cam.name!r} is {cam.width}x{cam.height} but {what} is "
                         f"{size[0]}x{size[1]}: K, width and height must be in the pixels of "
                         "the view's own files")


def supplied_view_source(clip: Clip, view_files: Sequence[Path],
                         cameras_file: Path | None, config: InputConfig) -> ViewSource:
    """The views of a ``video.to4d`` job (see the module docstring); warns when the input view
    is alone (:class:`.views.WeakViewsWarning`)."""
    groups = group_view_files(view_files)
    if cameras_file is None:
        if groups:
            raise ParamError(f"{len(groups)} view(s) ({', '.join(sorted(groups))}) were given "
                             "without a cameras file: add a JSON list of {name, "
                             "world_to_camera, K, width, height}, one per view and 'input' "
                             "for the input")
        return InputViewOnly(clip)
    cams = {c.name: c for c in read_cameras(cameras_file)}
    where = Path(cameras_file).name
    if INPUT_CAMERA not in cams:
        raise ParamError(f"{where} has no camera named 'input' (the input clip's camera, in the "
                         f"views' frame); cameras there: {', '.join(cams)}")
    for name, files in groups.items():
        if name not in cams:
            first = files if isinstance(files, Path) else files[0]
            raise ParamError(f"view {name!r} ({first.name}) has no camera in {where}; cameras "
                             f"there: {', '.join(cams)}")
    extra = [n for n in cams if n != INPUT_CAMERA and n not in groups]
    if extra:
        raise ParamError(f"{where} has camera(s) {', '.join(map(repr, extra))} without a view; "
                         f"views given: {', '.join(groups) or 'none'} (a view's name is its "
                         "file name less the extension and frame number)")
    cam0 = cams[INPUT_CAMERA]
    _check_size(cam0, clip.source_size, "the input clip")
    if not groups:
        return InputViewOnly(clip, cam0.world_to_camera, cam0.K)
    bg = config.background if config.background in NAMED_BACKGROUNDS else "auto"
    specs = []
    for name in (n for n in cams if n in groups):  # the cameras file's order
        cam = cams[name]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                v = load_clip(groups[name], InputConfig(
                    size=config.size, frames=config.frames, fill=config.fill, background=bg,
                    key=config.key, mask_threshold=config.mask_threshold,
                    min_mask_pixels=config.min_mask_pixels))
        except ParamError as e:
            raise ParamError(f"view {name!r}: {e}") from None
        if v.source_frames != clip.source_frames:
            raise ParamError(f"view {name!r} has {v.source_frames} frames but the input clip has "
                             f"{clip.source_frames}: supply one image per input frame")
        _check_size(cam, v.source_size, f"view {name!r}")
        specs.append(ViewSpec(name, v.rgba, cam.world_to_camera, v.box.intrinsics(cam.K,
                                                                                   v.size)))
    return SuppliedViews(clip, specs, cam0.world_to_camera, cam0.K)
