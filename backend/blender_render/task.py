"""What one render subprocess does, and what it says back (bpy-free).

The caller (:mod:`backend.blender_render.run`) writes a :class:`RenderTask` as JSON and starts
``python -m backend.blender_render TASK.json``. The subprocess prints events on its stdout, one
line each, ``@anim4d-render {json}`` (Blender prints its own lines there too; they are not
events): ``stage`` (``{"stage", "message"}``), ``frame`` (``{"done", "total"}``, after each frame
is written), ``notice`` (``{"message"}``), ``error`` (``{"message", "code"}``: the task failed)
and ``done`` (``{"frames", "video", "blend", "setup_s", "render_s", "encode_s"}``).

Output layout for a result named ``NAME`` in ``OUT``: ``OUT/NAME/frame_0001.png`` ... (one PNG
per rendered scene frame, numbered by scene frame), ``OUT/NAME.mp4`` and, with ``--blend``,
``OUT/NAME.blend``. A ``--grid`` render is named ``grid``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from backend.blender_render.options import RenderOptions
from shared.errors import FormatError
from shared.manifest import read_manifest

EVENT_PREFIX = "@anim4d-render "
EVENTS_ENV = "ANIM4D_RENDER_EVENTS"  # the subprocess writes its events to this descriptor
FRAME_PREFIX = "frame_"
GRID_NAME = "grid"


@dataclass
class RenderTask:
    """One scene to render: ``inputs`` (result folders; several only for a grid) named
    ``name``, written under ``out_dir`` (see the module docstring)."""

    inputs: list[str]
    name: str
    out_dir: str
    options: RenderOptions = field(default_factory=RenderOptions)

    @property
    def frames_dir(self) -> Path:
        return Path(self.out_dir) / self.name

    @property
    def video(self) -> Path:
        return Path(self.out_dir) / f"{self.name}.mp4"

    @property
    def blend(self) -> Path | None:
        return Path(self.out_dir) / f"{self.name}.blend" if self.options.blend else None

    def to_json(self) -> str:
        return json.dumps({"inputs": self.inputs, "name": self.name, "out_dir": self.out_dir,
                           "options": self.options.to_dict()})

    @classmethod
    def from_json(cls, text: str) -> RenderTask:
        d = json.loads(text)
        return cls([str(p) for p in d["inputs"]], str(d["name"]), str(d["out_dir"]),
                   RenderOptions.from_dict(d["options"]))


def encode_event(kind: str, **content) -> str:
    return EVENT_PREFIX + json.dumps({"event": kind, **content})


def parse_event(line: str) -> dict | None:
    """The event on ``line``, or None for anything else (Blender's own output)."""
    if not line.startswith(EVENT_PREFIX):
        return None
    try:
        event = json.loads(line[len(EVENT_PREFIX):])
    except ValueError:
        return None
    return event if isinstance(event, dict) and "event" in event else None


def safe_name(text: str) -> str:
    """A file-name-safe form of ``text`` (letters, digits, ``-_.``; never empty)."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._")
    return name or "result"


def result_names(folders: list[Path]) -> list[str]:
    """One distinct output name per folder: its own name, ``_2``, ``_3``... on repeats."""
    seen: dict[str, int] = {}
    out = []
    for folder in folders:
        base = safe_name(Path(folder).resolve().name)
        seen[base] = seen.get(base, 0) + 1
        out.append(base if seen[base] == 1 else f"{base}_{seen[base]}")
    return out


def check_folder(folder: Path) -> None:
    """Raise :class:`FormatError` naming ``folder`` unless it is a result with something to
    render (its files are checked again, and read, by the render itself)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FormatError(f"{folder}: no such folder")
    manifest = read_manifest(folder)
    if manifest.representation == "video":
        raise FormatError(f"{folder}: is already a video ({manifest.files.get('video')}); "
                          "render takes mesh or Gaussian sequence results")


def rendered_frames(frames_dir: Path) -> list[Path]:
    """The PNG frames a task wrote, in frame order."""
    return sorted(Path(frames_dir).glob(f"{FRAME_PREFIX}[0-9]*.png"))
