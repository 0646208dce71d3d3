"""Export a :class:`~shared.meshseq.MeshSequence` to the formats artists and tools read.

``fmt``:

- ``obj`` / ``ply``: ``out_path`` is a folder of ``frame_0000.<fmt>`` ... (see
  :mod:`backend.data.frames_io`);
- ``pc2``: a point cache for Blender's Mesh Cache modifier (positions only; topology comes from
  a mesh exported separately, e.g. frame 0 as OBJ/PLY). The header's start frame is
  ``times[0] * scene_fps`` and its sample rate ``scene_fps / seq.fps`` frames per sample, with
  ``scene_fps`` defaulting to the sequence's own rate (one sample per frame);
- ``anime``: DeformingThings4D (positions and faces only);
- ``npz``: Anim4D's own sequence file (everything but ``meta``).

All coordinates are Anim4D's: right-handed, Y-up, as glTF. The PC2 file stores the same
coordinates; the add-on maps axes to Blender's Z-up.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from shared.meshseq import MeshSequence, save_npz
from shared.pc2 import write_pc2

from .anime import write_anime
from .frames_io import write_frames

EXPORT_FORMATS = ("obj", "ply", "pc2", "anime", "npz")


def export_sequence(
    seq: MeshSequence, fmt: str, out_path: str | os.PathLike, scene_fps: float | None = None
) -> list[Path]:
    """Write ``seq`` as ``fmt`` to ``out_path`` and return the files written."""
    out_path = Path(out_path)
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"export format {fmt!r}: expected one of {', '.join(EXPORT_FORMATS)}")
    if fmt in ("obj", "ply"):
        return write_frames(seq, out_path, fmt)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "pc2":
        rate = seq.fps or (scene_fps or 1.0)
        if seq.frame_count > 2 and not np.allclose(np.diff(seq.times), 1.0 / rate, rtol=1e-4):
            raise ValueError("PC2 needs uniformly spaced frames; this sequence's times are not")
        fps = scene_fps or rate
        return [write_pc2(out_path, seq.vertices, start_frame=float(seq.times[0] * fps),
                          sample_rate=float(fps / rate))]
    if fmt == "anime":
        return [write_anime(seq, out_path)]
    return [save_npz(seq, out_path)]
