"""``render_results``, the API under ``anim4d render`` and ``render.video``: a cancel stops the
subprocess, a crashed render fails alone, a turntable goes round the object."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest
from blender_render_helpers import render_processes, requires_bpy, write_mesh_result
from PIL import Image

from backend.blender_render.options import RenderOptions
from backend.blender_render.run import RenderCancelled, render_results
from shared.meshseq import MeshSequence

pytestmark = [requires_bpy, pytest.mark.blender]
needs_proc = pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs /proc")


@needs_proc
def test_a_crashed_render_fails_alone(tmp_path):
    first = write_mesh_result(tmp_path / "first", frames=24, vertices=40, fps=24.0)
    second = write_mesh_result(tmp_path / "second", frames=3, vertices=40, fps=24.0)
    killed: list[int] = []

    def progress(stage: str, fraction: float, message: str) -> None:
        if stage.startswith("first") and message.startswith("frame") and not killed:
            killed[:] = render_processes(os.getpid())
            for pid in killed:  # as a segfault would
                os.kill(pid, signal.SIGSEGV)

    outcomes = render_results([first, second], tmp_path / "out",
                              RenderOptions(resolution=32, samples=1), on_progress=progress)
    assert killed
    assert [o.name for o in outcomes] == ["first", "second"]
    assert not outcomes[0].ok and "first: Blender stopped (signal 11)" in outcomes[0].error
    assert outcomes[1].ok and len(outcomes[1].frames) == 3 and outcomes[1].video.is_file()


def test_turntable_goes_round_a_still_object(tmp_path):
    """A mesh that does not move: the fixed camera's frames are identical, the turntable's are
    not, and its last view (330 degrees on) is nearer its first than the middle one (180)."""
    still = write_mesh_result(tmp_path / "still", frames=2, vertices=40, fps=24.0)
    seq = np.load(still / "sequence.npz")
    verts = np.repeat(seq["vertices"][:1], 12, axis=0)
    write_mesh_result(tmp_path / "still", fps=24.0, seq=MeshSequence(
        verts, seq["faces"], np.arange(12) / 24.0, seq["uvs"], seq["colors"]))
    out = {}
    for camera in ("fixed", "turntable"):
        [o] = render_results([still], tmp_path / camera,
                             RenderOptions(resolution=48, samples=1, camera=camera))
        assert o.ok, o.error
        out[camera] = [np.asarray(Image.open(f), np.float64) / 255.0 for f in o.frames]
    assert len(out["turntable"]) == 12
    assert all(np.array_equal(out["fixed"][0], f) for f in out["fixed"][1:])
    turn = out["turntable"]
    diff = [np.abs(turn[0] - f).mean() for f in turn]
    assert min(diff[1:]) > 0.002
    assert diff[11] < diff[6]


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs /proc")
def test_render_results_stops_its_subprocess_when_cancelled(tmp_path):
    """The API itself (no server, whose worker exit would also end the render): a cancel
    raises RenderCancelled and leaves no render running."""
    folder = write_mesh_result(tmp_path / "m", frames=48, vertices=40, fps=24.0)
    seen: list[list[int]] = []

    def progress(stage: str, fraction: float, message: str) -> None:
        if message.startswith("frame") and not seen:
            seen.append(render_processes(os.getpid()))

    with pytest.raises(RenderCancelled, match="m: render cancelled"):
        render_results([folder], tmp_path / "out", RenderOptions(resolution=96, samples=64),
                       on_progress=progress, cancelled=lambda: bool(seen))
    assert seen and seen[0], "no render subprocess found while rendering"
    assert render_processes(os.getpid()) == []
    assert len(list((tmp_path / "out" / "m").glob("frame_*.png"))) < 48
