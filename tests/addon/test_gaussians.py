"""A Gaussian sequence imports as splats played by Geometry Nodes and renders in Cycles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from addon_helpers import gaussian_sequence, write_gaussian_folder

from shared.gaussians import GaussianSequence
from shared.gsply import SH_C0

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


# -- rotated, anisotropic, coloured splats: every instance against the file --------------------

SOURCE_FPS = 8.0  # on the 24 fps scene: samples on frames 1, 4, 7


def _quat_matrix(q: np.ndarray) -> np.ndarray:
    """Rotation matrices ``[N, 3, 3]`` of quaternions ``[N, 4]`` (w x y z, any length)."""
    w, x, y, z = (q / np.linalg.norm(q, axis=1, keepdims=True)).T
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
    ], 1)


def _slerp(q0: np.ndarray, q1: np.ndarray, w: float) -> np.ndarray:
    """Shortest-path spherical interpolation of unit quaternions ``[N, 4]``."""
    q0 = q0 / np.linalg.norm(q0, axis=1, keepdims=True)
    q1 = q1 / np.linalg.norm(q1, axis=1, keepdims=True)
    dot = np.sum(q0 * q1, axis=1, keepdims=True)
    q1 = np.where(dot < 0, -q1, q1)
    angle = np.arccos(np.clip(np.abs(dot), -1.0, 1.0))
    s = np.sin(angle)
    return (np.sin((1 - w) * angle) * q0 + np.sin(w * angle) * q1) / s


# The axis map Y-up -> Z-up written out independently of the add-on: (x, y, z) -> (x, -z, y).
AXIS_MAP = np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])


def _posed_splats(count: int = 24, frames: int = 3, seed: int = 5) -> GaussianSequence:
    """Splats as a 3DGS file stores them: unnormalised w-x-y-z quaternions (some negated from one
    frame to the next: the same rotation), log scales with three clearly different axes, opacity
    logits and SH DC; every splat turns by up to 0.8 rad and changes size and colour per frame."""
    from shared.gsply import GaussianFrame

    rng = np.random.default_rng(seed)
    means = rng.normal(size=(count, 3)) * 0.5
    base_q = rng.normal(size=(count, 4))
    axis = rng.normal(size=(count, 3))
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    turn = rng.uniform(0.3, 0.8, count)  # radians per frame
    lengths = np.array([0.02, 0.06, 0.15]) * rng.uniform(0.8, 1.25, (count, 1))
    lengths = np.take_along_axis(lengths, np.argsort(rng.random((count, 3)), 1), 1)
    rgb = rng.uniform(0.1, 0.9, (count, 3))
    out = []
    for f in range(frames):
        half = 0.5 * turn * f
        step = np.concatenate([np.cos(half)[:, None], np.sin(half)[:, None] * axis], 1)
        w0, v0 = base_q[:, :1], base_q[:, 1:]
        w1, v1 = step[:, :1], step[:, 1:]
        q = np.concatenate([w1 * w0 - np.sum(v1 * v0, 1, keepdims=True),
                            w1 * v0 + w0 * v1 + np.cross(v1, v0)], 1)  # step * base
        q *= rng.uniform(0.5, 3.0, (count, 1)) * rng.choice([-1.0, 1.0], (count, 1))
        scale = lengths * (1.0 + 0.3 * f) * np.array([1.0, 1.0 + 0.1 * f, 1.0])
        opacity = 0.2 + 0.25 * f
        colour = np.clip(rgb + 0.1 * f * np.array([1.0, -1.0, 0.5]), 0.02, 0.98)
        out.append(GaussianFrame(
            means + np.array([0.1, 0.05, -0.1]) * f, q, np.log(scale),
            np.log(opacity / (1 - opacity)) + rng.normal(size=count) * 0.3,
            (colour - 0.5) / SH_C0))
    return GaussianSequence(out, np.arange(frames) / SOURCE_FPS)


def _expected(frame) -> dict[str, np.ndarray]:
    """What each instance must be for one stored frame, from the file's own numbers."""
    scales = np.exp(frame.log_scales.astype(np.float64))
    return {
        "linear": AXIS_MAP @ _quat_matrix(frame.quats.astype(np.float64)) * scales[:, None, :],
        "position": frame.means.astype(np.float64) @ AXIS_MAP.T,
        "color": 0.5 + SH_C0 * frame.sh_dc.astype(np.float64),
        "alpha": 1.0 / (1.0 + np.exp(-frame.opacity_logits.astype(np.float64))),
        "quat": frame.quats.astype(np.float64),
        "scale": scales,
    }


def _instance_state(bpy, obj) -> dict[str, np.ndarray]:
    """Every evaluated splat instance: its 3x3 linear part ``[N, 3, 3]`` (rotation times scale,
    columns = the splat's axes), position ``[N, 3]`` and the colour and opacity the material
    reads from the instancer."""
    dg = bpy.context.evaluated_depsgraph_get()
    geo = bpy.types.GeometrySet.from_evaluated_object(obj.evaluated_get(dg))
    pc = geo.instances_pointcloud()
    n = len(pc.points)
    mats = np.empty(n * 16, np.float32)
    pc.attributes["instance_transform"].data.foreach_get("value", mats)
    mats = mats.reshape(n, 4, 4).transpose(0, 2, 1).astype(np.float64)  # stored column-major
    color = np.empty(n * 4, np.float32)
    pc.attributes["g_color"].data.foreach_get("color", color)
    alpha = np.empty(n, np.float32)
    pc.attributes["g_alpha"].data.foreach_get("value", alpha)
    return {"linear": mats[:, :3, :3], "position": mats[:, :3, 3],
            "color": color.reshape(n, 4).astype(np.float64), "alpha": alpha.astype(np.float64),
            "names": set(pc.attributes.keys())}


def _assert_instances(got: dict, want: dict, where: str) -> None:
    """The worst element of each quantity, naming the splat.

    float32 storage and Blender's float32 maths: measured worst 3.4e-8 (axes), 0 (positions),
    3e-8 (colour), 3e-8 (opacity) on stored frames and 6-9e-8 in between; 1e-6 leaves room for
    other CPUs while a slerp replaced by a normalised lerp (1.2e-3 here) or any axis, sign or
    activation error (>= 1e-2) fails.
    """
    tol = 1e-6
    assert len(got["alpha"]) == len(want["alpha"]), f"{where}: {len(got['alpha'])} instances"
    for key in ("linear", "position", "color", "alpha"):
        g = got[key][:, :3] if key == "color" else got[key]
        err = np.abs(g - want[key]).reshape(len(g), -1).max(axis=1)
        assert err.max() < tol, f"{where}: {key} of splat {err.argmax()} off by {err.max():.3g}"
    assert np.all(got["color"][:, 3] == 1.0)


def test_rotated_anisotropic_splats_match_the_file(bpy_clean, tmp_path: Path) -> None:
    """Each instance's axes (rotation x per-axis scale), position, colour and opacity equal the
    file's on two stored frames and in between (rotation slerped, the rest mixed linearly)."""
    from blender_addon.bl import importer
    from shared.gaussians import read_gaussian_result, write_gaussian_result

    bpy = bpy_clean
    write_gaussian_result(tmp_path / "g", _posed_splats(), kind="video.ds4d", job_id="job-posed",
                          fps=SOURCE_FPS, extra={"gaussians_correspond": True})
    on_disk = read_gaussian_result(tmp_path / "g")  # what the file holds (float32)
    obj, _ = importer.import_folder(tmp_path / "g")
    scene = bpy.context.scene
    want = [_expected(f) for f in on_disk.frames]
    for scene_frame, k in ((1, 0), (7, 2)):
        scene.frame_set(scene_frame)
        _assert_instances(_instance_state(bpy, obj), want[k], f"frame {scene_frame}")

    scene.frame_set(5)  # a third of the way from sample 1 (frame 4) to sample 2 (frame 7)
    w = 1.0 / 3.0
    a, b = want[1], want[2]
    scale = (1 - w) * a["scale"] + w * b["scale"]
    rot = _quat_matrix(_slerp(a["quat"], b["quat"], w))
    mid = {"linear": AXIS_MAP @ rot * scale[:, None, :],
           "position": (1 - w) * a["position"] + w * b["position"],
           "color": (1 - w) * a["color"] + w * b["color"],
           "alpha": (1 - w) * a["alpha"] + w * b["alpha"]}
    got = _instance_state(bpy, obj)
    _assert_instances(got, mid, "frame 5 (between samples)")

    # the material shades each instance from the attributes checked above
    nodes = obj.data.materials[0].node_tree.nodes
    read = {(n.attribute_type, n.attribute_name) for n in nodes if n.type == "ATTRIBUTE"}
    assert read == {("INSTANCER", "g_color"), ("INSTANCER", "g_alpha")}
    assert {"g_color", "g_alpha"} <= got["names"]
