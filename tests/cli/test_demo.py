"""``anim4d demo`` (what ``make demo`` runs), small: a generated creature, fetched, rendered
to a turntable MP4 and a .blend, every path printed. The full-size run is ``make demo``."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from support import requires_bpy

from shared.results import open_result


@requires_bpy
@pytest.mark.blender
def test_demo_ends_with_a_video_a_blend_and_the_result(tmp_path):
    out = tmp_path / "demo"
    (out / "creature").mkdir(parents=True)
    (out / "creature" / "stale.txt").write_text("an earlier demo's")  # replaced on a rerun
    (out / "keep.txt").write_text("not the demo's")  # never touched
    done = subprocess.run([sys.executable, "-m", "backend.cli.main", "demo", "--out", str(out),
                           "--resolution", "32", "--samples", "1", "--frames", "4"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    printed = dict(re.findall(r"^(video|blender scene|result folder):\s+(\S+)", done.stdout,
                              re.M))
    assert "creature.sample" in done.stdout  # the DNF generator, not the procedural fallback
    video, blend, result = (Path(printed[k]) for k in ("video", "blender scene",
                                                       "result folder"))
    assert (out / "keep.txt").read_text() == "not the demo's"
    assert not (out / "creature" / "stale.txt").exists()
    assert blend.is_file() and blend.stat().st_size > 10_000
    data = open_result(result)
    assert data.frame_count == 4
    with av.open(str(video)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 4 and frames[0].shape == (32, 32, 3)
    # a turntable of a moving creature: no two consecutive frames alike
    assert all(np.abs(a.astype(int) - b.astype(int)).max() > 8 for a, b in zip(
        frames, frames[1:], strict=False))
