"""Reading raw frames: a video file (PyAV) or an image sequence (a folder or a list of images).

Everything here returns uint8 arrays exactly as stored (no keying, no cropping): see
:mod:`.clip` for the rest of the input pipeline. Errors are :class:`shared.errors.FormatError`
naming the file, the frame and what is accepted.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shared.errors import FormatError

VIDEO_SUFFIXES = (".mp4", ".mov", ".webm", ".mkv", ".avi")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
#: Decoding stops with an error beyond this many frames (a clip, not a film).
MAX_FRAMES = 2000
#: Pixel formats whose decoded frames keep an alpha channel.
_ALPHA_PIX_FMTS = ("yuva", "rgba", "bgra", "argb", "abgr", "gbrap", "ya8", "ya16", "pal8")

Source = str | Path | Sequence[str | Path]


@dataclass
class RawFrames:
    """Frames as read.

    Attributes:
        pixels: [T, H, W, C] uint8, C = 3 (RGB) or 4 (RGBA, straight alpha).
        names: one label per frame for error messages ("clip.mp4 frame 3", "0012.png").
        fps: frames per second of a video (None for an image sequence).
    """

    pixels: np.ndarray
    names: list[str]
    fps: float | None = None

    @property
    def has_alpha(self) -> bool:
        return self.pixels.shape[-1] == 4


def natural_key(path: Path) -> list:
    """Sort key that orders ``2.png`` before ``10.png``."""
    return [int(s) if s.isdigit() else s.lower() for s in re.split(r"(\d+)", path.name)]


def list_images(folder: Path) -> list[Path]:
    """The image files of a folder in natural order (hidden files skipped)."""
    paths = [p for p in folder.iterdir()
             if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")]
    return sorted(paths, key=natural_key)


def read_frames(source: Source) -> RawFrames:
    """Read a video file, a folder of images or a list of image files.

    Raises:
        FormatError: missing or unreadable file, unknown suffix, zero frames, frames of
            different sizes or channel counts.
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists():
            raise FormatError(f"input {path} does not exist")
        if path.is_dir():
            images = list_images(path)
            if not images:
                raise FormatError(
                    f"input folder {path} holds no images (accepted: "
                    f"{', '.join(IMAGE_SUFFIXES)}); zero frames")
            return read_images(images)
        if path.suffix.lower() in VIDEO_SUFFIXES:
            return read_video(path)
        if path.suffix.lower() in IMAGE_SUFFIXES:
            return read_images([path])
        raise FormatError(
            f"input {path.name}: unknown file type {path.suffix!r}; accepted: a video "
            f"({', '.join(VIDEO_SUFFIXES)}), an image sequence ({', '.join(IMAGE_SUFFIXES)}) "
            "as a folder or a list of files")
    paths = [Path(p) for p in source]
    if not paths:
        raise FormatError("input: an empty list of images (zero frames)")
    return read_images(paths)


def read_images(paths: Sequence[Path]) -> RawFrames:
    """Read images (PNG/JPEG/WebP; gray, RGB or RGBA); all must share size and alpha."""
    from PIL import Image, UnidentifiedImageError

    frames, names = [], []
    for i, p in enumerate(paths):
        if p.suffix.lower() not in IMAGE_SUFFIXES:
            raise FormatError(f"frame {i} ({p.name}): not an image file; accepted: "
                              f"{', '.join(IMAGE_SUFFIXES)}")
        try:
            with Image.open(p) as im:
                has_alpha = im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info
                arr = np.asarray(im.convert("RGBA" if has_alpha else "RGB"))
        except FileNotFoundError:
            raise FormatError(f"frame {i} ({p}): file does not exist") from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
            raise FormatError(f"frame {i} ({p.name}): cannot be read as an image ({e})") from None
        if frames and arr.shape != frames[0].shape:
            raise FormatError(
                f"frame {i} ({p.name}) is {arr.shape[1]}x{arr.shape[0]} with {arr.shape[2]} "
                f"channels but frame 0 ({paths[0].name}) is {frames[0].shape[1]}x"
                f"{frames[0].shape[0]} with {frames[0].shape[2]}: every frame of a sequence "
                "must have the same size and the same alpha")
        frames.append(arr)
        names.append(p.name)
        if len(frames) > MAX_FRAMES:
            raise FormatError(f"image sequence has more than {MAX_FRAMES} frames")
    return RawFrames(np.stack(frames), names)


def _vpx_alpha_decoder(stream) -> str | None:
    """FFmpeg's own VP8/VP9 decoders drop the alpha of WebM files (Blender writes it as a side
    channel, ``alpha_mode=1``); libvpx's decoders keep it."""
    if str(stream.metadata.get("alpha_mode", stream.metadata.get("ALPHA_MODE", "0"))) != "1":
        return None
    name = {"vp9": "libvpx-vp9", "vp8": "libvpx"}.get(stream.codec_context.name)
    import av

    return name if name in av.codecs_available else None


def _decode(container, stream, decoder: str | None):
    """Frames of ``stream``, through the named decoder when given."""
    if decoder is None:
        yield from container.decode(stream)
        return
    import av

    ctx = av.CodecContext.create(decoder, "r")
    for packet in container.demux(stream):
        yield from ctx.decode(packet if packet.size else None)


def read_video(path: Path) -> RawFrames:
    """Decode every frame of a video with PyAV (RGBA when the stream carries alpha: QuickTime
    PNG / Animation / ProRes 4444, WebM VP8/VP9 with alpha)."""
    try:
        import av
    except ImportError as e:  # pragma: no cover - av is a dependency
        raise FormatError(f"{path.name}: reading videos needs PyAV (pip install av): {e}") from e
    frames: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise FormatError(f"{path.name} holds no video stream")
            stream = container.streams.video[0]
            pix = (stream.codec_context.pix_fmt or "").lower()
            vpx_alpha = _vpx_alpha_decoder(stream)
            fmt = "rgba" if vpx_alpha or pix.startswith(_ALPHA_PIX_FMTS) else "rgb24"
            fps = float(stream.average_rate) if stream.average_rate else None
            for frame in _decode(container, stream, vpx_alpha):
                arr = frame.to_ndarray(format=fmt)
                if frames and arr.shape != frames[0].shape:
                    raise FormatError(f"{path.name} frame {len(frames)} changes size "
                                      f"({arr.shape[1]}x{arr.shape[0]})")
                frames.append(arr)
                if len(frames) > MAX_FRAMES:
                    raise FormatError(f"{path.name} has more than {MAX_FRAMES} frames; "
                                      "trim the clip first")
    except FormatError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as e:
        where = f" at frame {len(frames)}" if frames else ""
        raise FormatError(f"{path.name} cannot be decoded as a video{where} ({e}); accepted: "
                          f"{', '.join(VIDEO_SUFFIXES)} files PyAV/FFmpeg can read") from None
    if not frames:
        raise FormatError(f"{path.name}: the video has zero frames")
    if fmt == "rgba" and bool((np.stack(frames)[..., 3] == 255).all()):
        frames = [f[..., :3] for f in frames]  # alpha-capable format, but no transparency
    names = [f"{path.name} frame {i}" for i in range(len(frames))]
    return RawFrames(np.stack(frames), names, fps)
