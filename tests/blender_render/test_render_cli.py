"""``anim4d render A BROKEN B --out DIR --resolution 64 --samples 2``: a mesh sequence and a
Gaussian sequence render to one PNG per result frame and an MP4 each; the broken folder is
reported by name and skipped; the exit status says something failed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from blender_render_helpers import requires_bpy, write_blob_result, write_mesh_result
from PIL import Image

pytestmark = [requires_bpy, pytest.mark.blender]

ANIM4D = [sys.executable, "-m", "backend.cli.main"]
CEILING = 600.0  # catches a hang only; nothing here asserts how fast a render is
FRAMES = {"mesh": 12, "blob": 8}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    root = tmp_path_factory.mktemp("render_cli")
    mesh = write_mesh_result(root / "mesh", frames=FRAMES["mesh"], vertices=40, fps=12.0)
    blob = write_blob_result(root / "blob", frames=FRAMES["blob"], fps=8.0)
    broken = root / "broken"
    broken.mkdir()
    (broken / "manifest.json").write_text('{"schema": 1, "kind": "x"')  # cut short
    out = root / "out"
    done = subprocess.run([*ANIM4D, "render", str(mesh), str(broken), str(blob), "--out",
                           str(out), "--resolution", "64", "--samples", "2", "--transparent"],
                          capture_output=True, text=True, timeout=CEILING)
    return out, done


def frames_of(out: Path, name: str) -> list[np.ndarray]:
    """The PNGs of ``name`` as float RGBA ``[64, 64, 4]`` in [0, 1], in frame order."""
    files = sorted((out / name).glob("frame_*.png"))
    assert [f.name for f in files] == [f"frame_{i:04d}.png" for i in range(1, len(files) + 1)]
    return [np.asarray(Image.open(f).convert("RGBA"), dtype=np.float64) / 255.0 for f in files]


def test_broken_folder_is_reported_by_name_and_the_others_render(rendered):
    out, done = rendered
    assert done.returncode == 1, done.stderr
    assert "broken" in done.stderr and "cannot read as JSON" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert "1 of 3 failed" in done.stderr
    assert not (out / "broken").exists() and not (out / "broken.mp4").exists()
    for name in FRAMES:
        assert f"{name}: {FRAMES[name]} frames" in done.stdout


@pytest.mark.parametrize("name", sorted(FRAMES))
def test_one_png_per_result_frame_with_the_object_in_view(rendered, name):
    out, _ = rendered
    frames = frames_of(out, name)
    assert len(frames) == FRAMES[name]
    for i, img in enumerate(frames):
        assert img.shape == (64, 64, 4)
        cover = float((img[..., 3] > 0.5).mean())
        assert 0.05 <= cover <= 0.80, f"{name} frame {i + 1}: the object covers {cover:.1%}"


@pytest.mark.parametrize("name", sorted(FRAMES))
def test_consecutive_frames_differ(rendered, name):
    # measured: at least 5.7 % (mesh) and 15 % (blob) of the pixels change by more than 0.02
    # between consecutive frames; a still object changes none (the sampling seed is fixed)
    frames = frames_of(rendered[0], name)
    for i, (a, b) in enumerate(zip(frames, frames[1:], strict=False)):
        changed = float((np.abs(a - b).max(axis=2) > 0.02).mean())
        assert changed >= 0.04, f"{name}: frames {i + 1} and {i + 2} differ in {changed:.1%}"


@pytest.mark.parametrize("name", sorted(FRAMES))
def test_mp4_opens_with_the_right_frame_count_and_size(rendered, name):
    out, _ = rendered
    with av.open(str(out / f"{name}.mp4")) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (64, 64)
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(decoded) == FRAMES[name]
    # the video shows the frames, in order: each decoded frame is within 0.03 (mean absolute
    # difference; measured at most 0.024, H.264 at 64 x 64 being lossy) of its PNG over grey,
    # and nearer its own PNG than the next one; grey alone is 0.036 to 0.072 away
    over_grey = [p[..., :3] * p[..., 3:] + 0.5 * (1.0 - p[..., 3:]) for p in frames_of(out, name)]
    dist = np.array([[np.abs(d / 255.0 - g).mean() for g in over_grey] for d in decoded])
    assert dist.diagonal().max() < 0.03
    assert np.all(dist.diagonal()[:-1] < dist.diagonal(1))


def test_grid_puts_every_result_in_one_video(tmp_path):
    """``--grid``: one scene holding every result (as its saved .blend shows), one ``grid.mp4``
    as long as the longest result."""
    mesh = write_mesh_result(tmp_path / "mesh", frames=6, vertices=40, fps=12.0)
    blob = write_blob_result(tmp_path / "blob", frames=4, fps=12.0)
    out = tmp_path / "out"
    done = subprocess.run([*ANIM4D, "render", str(mesh), str(blob), "--grid", "--blend", "--out",
                           str(out), "--resolution", "32", "--samples", "1"],
                          capture_output=True, text=True, timeout=CEILING)
    assert done.returncode == 0, done.stderr
    assert not (out / "mesh").exists() and not (out / "blob.mp4").exists()
    assert len(sorted((out / "grid").glob("frame_*.png"))) == 6
    with av.open(str(out / "grid.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 6
    probe = ("import bpy, sys; bpy.ops.wm.open_mainfile(filepath=sys.argv[1]); "
             "print(sorted(o.name for o in bpy.data.objects if o.name.startswith('Anim4D_')))")
    names = subprocess.run([sys.executable, "-c", probe, str(out / "grid.blend")],
                           capture_output=True, text=True, timeout=CEILING).stdout
    assert "job-mesh" in names and "job-blob" in names, names
