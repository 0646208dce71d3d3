"""A Gaussian sequence imports as splats played by Geometry Nodes and renders in Cycles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from addon_helpers import gaussian_sequence, write_gaussian_folder

pytestmark = pytest.mark.blender


def _instances(bpy, obj) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Evaluated ``(scales [N, 3], alphas [N], positions [N, 3])`` of the splat instances."""
    dg = bpy.context.evaluated_depsgraph_get()
    geo = bpy.types.GeometrySet.from_evaluated_object(obj.evaluated_get(dg))
    pc = geo.instances_pointcloud()
    n = len(pc.points)
    mats = np.empty(n * 16, np.float32)
    pc.attributes["instance_transform"].data.foreach_get("value", mats)
    mats = mats.reshape(n, 4, 4)  # column-major: rows 0-2 of each column hold the axes
    alpha = np.empty(n, np.float32)
    pc.attributes["g_alpha"].data.foreach_get("value", alpha)
    return np.linalg.norm(mats[:, :3, :3], axis=2), alpha, mats[:, 3, :3]


def _render(bpy, path: Path) -> np.ndarray:
    scene = bpy.context.scene
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)
    img = bpy.data.images.load(str(path))
    px = np.array(img.pixels[:], dtype=np.float32).reshape(64, 64, 4)
    bpy.data.images.remove(img)
    return px[..., :3]


def _camera_and_cycles(bpy) -> None:
    scene = bpy.context.scene
    cam = bpy.data.objects.new("cam", bpy.data.cameras.new("cam"))
    scene.collection.objects.link(cam)
    cam.location, cam.rotation_euler = (0.15, -4.0, 0.0), (np.pi / 2, 0.0, 0.0)
    scene.camera = cam
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = 4
    scene.cycles.use_denoising = False
    scene.render.resolution_x = scene.render.resolution_y = 64
    scene.render.resolution_percentage = 100
    scene.render.image_settings.file_format = "PNG"


def test_splats_animate_and_render_in_cycles(bpy_clean, tmp_path: Path) -> None:
    from blender_addon.bl import importer, timecurve

    bpy = bpy_clean
    folder = write_gaussian_folder(tmp_path / "g", frames=3, count=150)
    obj, _ = importer.import_folder(folder)
    seq = gaussian_sequence(3, 150)
    fc = timecurve.find_fcurve(obj)
    assert fc is not None and [k.interpolation for k in fc.keyframe_points] == ["LINEAR"] * 3
    # 8 fps source on a 24 fps scene: samples on frames 1, 4, 7
    scene = bpy.context.scene
    scene.frame_set(1)
    s1, a1, p1 = _instances(bpy, obj)
    scene.frame_set(7)
    s3, a3, p3 = _instances(bpy, obj)
    assert len(a1) == 150
    assert np.allclose(s1, seq.frames[0].scales, rtol=1e-4)
    assert np.allclose(s3, seq.frames[2].scales, rtol=1e-4)
    assert np.allclose(a1, seq.frames[0].opacities, atol=1e-5)
    assert np.allclose(a3, seq.frames[2].opacities, atol=1e-5)
    means = seq.frames[2].means
    assert np.allclose(p3, np.stack([means[:, 0], -means[:, 2], means[:, 1]], 1), atol=1e-5)
    scene.frame_set(4, subframe=0.5)  # halfway between samples 1 and 2: interpolated
    s_mid, a_mid, _ = _instances(bpy, obj)
    w = 0.5 / 3  # half a scene frame of the 3 between samples
    blend = (1 - w) * seq.frames[1].scales + w * seq.frames[2].scales
    assert np.allclose(s_mid, blend, rtol=1e-4)
    assert np.all((a_mid > a1.max()) & (a_mid < a3.min()))

    _camera_and_cycles(bpy)
    scene.frame_set(1)
    img1 = _render(bpy, tmp_path / "f1.png")
    scene.frame_set(7)
    img3 = _render(bpy, tmp_path / "f7.png")
    assert img1.max() > 0.05 and img3.max() > 0.05  # something rendered
    assert np.abs(img3 - img1).mean() > 0.01  # visibly different frames
    assert img3.mean() > img1.mean()  # larger, more opaque splats cover more


def test_unequal_counts_step_without_interpolating(bpy_clean, tmp_path: Path) -> None:
    from blender_addon.bl import import_gaussians
    from blender_addon.core import import_plan as plan
    from shared.gaussians import GaussianSequence

    bpy = bpy_clean
    seq = gaussian_sequence(2, 40)
    seq = GaussianSequence([seq.frames[0], gaussian_sequence(1, 25, seed=3).frames[0]],
                           seq.times)
    meta = plan.ResultMeta("g", "video.ds4d", "gaussian_sequence", times=list(seq.times))
    obj = import_gaussians.import_gaussian_sequence(seq, meta, correspond=True)
    bpy.context.scene.frame_set(2)  # between the samples at frames 1 and 4: still frame 0
    assert len(_instances(bpy, obj)[1]) == 40
    bpy.context.scene.frame_set(4)
    assert len(_instances(bpy, obj)[1]) == 25


def test_gaussian_stream_and_retime(bpy_clean, tmp_path: Path) -> None:
    from blender_addon.bl import importer, retime
    from blender_addon.core.retime_plan import RetimeSettings
    from shared.stream import ResultReader

    bpy = bpy_clean
    folder = write_gaussian_folder(tmp_path / "g", frames=3, count=30)
    chunks = list(ResultReader(folder))
    stream = importer.StreamImport("job-gauss-0001")
    stream.feed(chunks[0])
    stream.feed(chunks[1])
    assert stream.received == 1 and len(_instances(bpy, stream.obj)[1]) == 30
    obj = stream.complete_from_folder(folder)
    assert stream.received == 3 and obj["anim4d_complete"]
    retime.apply_retime(obj, RetimeSettings(speed=3.0))  # samples now on frames 1, 2, 3
    bpy.context.scene.frame_set(3)
    s, _, _ = _instances(bpy, obj)
    assert np.allclose(s, gaussian_sequence(3, 30).frames[2].scales, rtol=1e-4)
