"""Render options (bpy-free): one dataclass shared by ``anim4d render``, the ``render.video`` job
kind and the scene-building subprocess, which receives it as JSON."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from shared.errors import ParamError

CAMERAS = ("fixed", "turntable")
DEVICES = ("cpu", "gpu", "auto")


@dataclass(frozen=True)
class RenderOptions:
    """How results are rendered.

    - ``resolution``: width and height of the square frames, pixels;
    - ``samples``: Cycles samples per pixel;
    - ``frames``: ``(start, end)`` scene frames to render, inclusive (frame 1 is the result's
      first sample); None renders the whole animation;
    - ``fps``: scene frame rate; 0 uses the (first) result's own, so one frame per result frame;
    - ``camera``: ``fixed`` (a 3/4 view) or ``turntable`` (one turn around the object over the
      rendered frames);
    - ``transparent``: transparent film (PNG alpha; the MP4, which has no alpha, shows the
      frames over grey); the ground still catches shadows;
    - ``blend``: also save the scene as ``<name>.blend``;
    - ``grid``: all results side by side in one scene and one video (``grid.mp4``);
    - ``device``: ``cpu``, ``gpu`` or ``auto`` (GPU when Cycles finds one, else CPU);
    - ``threads``: render threads, 0 = all cores;
    - ``denoise``: Cycles' denoiser (OpenImageDenoise) on the final frames.
    """

    resolution: int = 256
    samples: int = 32
    frames: tuple[int, int] | None = None
    fps: float = 0.0
    camera: str = "fixed"
    transparent: bool = False
    blend: bool = False
    grid: bool = False
    device: str = "cpu"
    threads: int = 0
    denoise: bool = False

    def __post_init__(self) -> None:
        if not 8 <= int(self.resolution) <= 8192:
            raise ParamError(f"resolution {self.resolution}: expected 8 to 8192 pixels")
        if not 1 <= int(self.samples) <= 65536:
            raise ParamError(f"samples {self.samples}: expected 1 to 65536")
        if self.fps < 0 or self.fps > 1000:
            raise ParamError(f"fps {self.fps:g}: expected 0 (the result's own) or up to 1000")
        if self.camera not in CAMERAS:
            raise ParamError(f"camera {self.camera!r}: expected one of {', '.join(CAMERAS)}")
        if self.device not in DEVICES:
            raise ParamError(f"device {self.device!r}: expected one of {', '.join(DEVICES)}")
        if self.threads < 0:
            raise ParamError(f"threads {self.threads}: expected 0 (all cores) or more")
        if self.frames is not None:
            start, end = self.frames
            if start < 1 or end < start:
                raise ParamError(f"frames {start}:{end}: expected START:END with "
                                 "1 <= START <= END (frame 1 is the result's first)")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["frames"] = list(self.frames) if self.frames else None
        return d

    @classmethod
    def from_dict(cls, d: dict) -> RenderOptions:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ParamError(f"render options: unknown {unknown}; accepted: {sorted(known)}")
        d = dict(d)
        if d.get("frames") is not None:
            d["frames"] = (int(d["frames"][0]), int(d["frames"][1]))
        return cls(**d)


def parse_frames(text: str | None) -> tuple[int, int] | None:
    """``"START:END"`` (inclusive scene frames, 1-based) -> ``(start, end)``; None or ``""``:
    the whole animation. ``"5"`` is frame 5 alone, ``"5:"`` from 5 to the end is refused (give
    the end)."""
    if not text:
        return None
    start, sep, end = text.partition(":")
    try:
        a = int(start)
        b = int(end) if sep else a
    except ValueError:
        raise ParamError(f"--frames {text!r}: expected START:END, e.g. 1:48") from None
    if a < 1 or b < a:
        raise ParamError(f"--frames {text!r}: expected 1 <= START <= END")
    return a, b
