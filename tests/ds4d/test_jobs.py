"""video.to4d and video.resample over the wire on a real clip (tiny preset, fixed seed)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from backend.methods.ds4d import jobs as ds4d_jobs
from backend.methods.ds4d.presets import PRESETS
from blender_addon.core.client import Client
from shared.gaussians import read_gaussian_result
from shared.manifest import read_manifest
from shared.results import open_result

REPO = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("ANIM4D_SHARED_DATA", REPO / ".." / "shared" / "data")) / "videos"
CLIP = DATA / "cat_king_fg.mp4"
TREX = DATA / "roaring_t-rex"  # RGBA frames 0.png ... 31.png
pytestmark = pytest.mark.skipif(not CLIP.is_file(),
                                reason=f"real clip absent: {CLIP} (or set $ANIM4D_SHARED_DATA)")
ARRAYS = ("means", "quats", "log_scales", "opacity_logits", "sh_dc", "sh_rest")


def _frames(folder: Path):
    return read_gaussian_result(folder)



def test_preset_names_match_the_kind():
    assert ds4d_jobs.PRESET_NAMES == tuple(PRESETS)


def test_cli_tiny_job_then_resample_reproduces_it_exactly(served, tmp_path):
    out = tmp_path / "res"
    proc = subprocess.run(
        [sys.executable, "-m", "backend.cli.main", "submit", "video.to4d", "--server",
         served.address, "--input", str(CLIP), "--param", "preset=tiny", "--wait", "--out",
         str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    seq = _frames(out)
    m = read_manifest(out)
    assert m.kind == "video.to4d" and seq.frame_count == PRESETS["tiny"].frames
    assert len(set(seq.gaussian_counts)) == 1  # one set of Gaussians moved over time
    # the deformation moved them: frames differ (not a static copy)
    assert float(np.abs(seq.frames[0].means - seq.frames[-1].means).max()) > 1e-5
    cams = m.cameras
    assert [c["name"] for c in cams] == ["input"]
    vm, K = np.array(cams[0]["world_to_camera"]), np.array(cams[0]["K"])
    assert vm.shape == (4, 4) and K.shape == (3, 3) and cams[0]["width"] == PRESETS["tiny"].size
    # the front camera at radius 2 looks at the object (centres project inside the image)
    pc = seq.frames[0].means @ vm[:3, :3].T + vm[:3, 3]
    uv = pc[:, :2] / pc[:, 2:] * K[[0, 1], [0, 1]] + K[:2, 2]
    assert np.all(pc[:, 2] > 0) and np.mean((uv >= 0) & (uv < cams[0]["width"])) > 0.95
    assert "cancelled_at_step" not in m.extra and m.extra["features"] == "descriptor"
    assert m.extra["gaussians_correspond"] is True
    assert not (out / ds4d_jobs.STATE_FILE).exists()  # the state stays on the server
    assert m.resample == {"kind": "video.resample", "source": "",
                          "end": pytest.approx(m.extra["duration_s"])}

    job_id = m.job_id
    mid = [(a + b) / 2 for a, b in zip(m.frame_times, m.frame_times[1:], strict=False)]
    both = sorted([*m.frame_times, *mid])  # the result's own times, and times between them
    with Client(served.address, timeout=30) as c:
        again = c.submit("video.resample", {"source": job_id[:10], "times": both})
        assert c.wait(again).state == "done"
        c.fetch(again, tmp_path / "again")
        late = c.submit("video.resample", {"source": job_id, "times": [0.0, 1e5]})
        info = c.wait(late)
    assert info.state == "failed" and "past the clip's end" in info.error["message"]
    with Client(served.address, timeout=30) as c:  # the same result as a mesh sequence
        mesh_job = c.submit("video.mesh", {"source": job_id, "resolution": 32})
        assert c.wait(mesh_job).state == "done"
        mesh = open_result(c.fetch(mesh_job, tmp_path / "mesh")).mesh_sequence(0)
    assert mesh.frame_count == seq.frame_count and np.allclose(mesh.times, seq.times)
    assert mesh.colors is not None and len(mesh.faces) > 50
    assert float(np.abs(mesh.vertices[-1] - mesh.vertices[0]).max()) > 1e-5  # it moves
    lo, hi = seq.frames[0].means.min(0), seq.frames[0].means.max(0)
    pad = 0.25 * float((hi - lo).max())
    assert np.all(mesh.vertices[0] > lo - pad) and np.all(mesh.vertices[0] < hi + pad)
    res = _frames(tmp_path / "again")
    assert res.frame_count == len(both)
    assert read_manifest(tmp_path / "again").resample["times"] == pytest.approx(both)
    np.testing.assert_array_equal(res.times[::2], seq.times)
    for a, b in zip(seq.frames, res.frames[::2], strict=True):
        for name in ARRAYS:
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    # a new time is a new evaluation, not a copy of a neighbouring frame
    for k, half in enumerate(res.frames[1::2]):
        assert np.abs(half.means - seq.frames[k].means).max() > 0
        assert np.abs(half.means - seq.frames[k + 1].means).max() > 0


def test_previews_arrive_and_cancel_keeps_a_usable_result(served, tmp_path):
    """On an uploaded RGBA image sequence (alpha is the mask)."""
    if not TREX.is_dir():
        pytest.skip(f"real frames absent: {TREX}")
    previews, seen_dynamic = [], threading.Event()
    frames = [TREX / f"{i}.png" for i in (14, 0, 2, 4, 6, 8, 10, 12)]  # sorted by the job
    with Client(served.address, timeout=30) as c:
        job = c.submit("video.to4d", {"preset": "tiny", "steps": 100_000, "preview_every": 3},
                       frames)

        def on_preview(p):
            previews.append(p)
            if p.stage == "dynamic" and p.step >= PRESETS["tiny"].static_steps + 6:
                seen_dynamic.set()

        info = c.wait(job, on_preview=on_preview, cancel=seen_dynamic.is_set)
        assert info.state == "done", info
        c.fetch(job, tmp_path / "res")
    m = read_manifest(tmp_path / "res")
    step = m.extra["cancelled_at_step"]
    assert PRESETS["tiny"].static_steps + 6 <= step < 100_000
    # 8 images at the default 24 fps: the working frames span 7 / 24 s
    assert m.extra["mask_source"] == "alpha" and m.frame_times[-1] == pytest.approx(7 / 24)
    seq = _frames(tmp_path / "res")
    assert seq.frame_count == PRESETS["tiny"].frames and min(seq.gaussian_counts) > 0
    assert all(np.isfinite(f.means).all() for f in seq.frames)
    assert len(previews) >= 3
    steps = [p.step for p in previews]
    assert steps == sorted(steps) and all(s % 3 == 0 for s in steps)
    p = previews[-1]
    assert p.stage == "dynamic" and len(p.times) == PRESETS["tiny"].preview_times
    assert p.arrays["means"].shape == (len(p.times), p.count, 3)
    assert p.times[0] == 0.0 and p.times[-1] == pytest.approx(m.frame_times[-1])
