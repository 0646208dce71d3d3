"""Blender cameras -> the protocol's OpenCV cameras (``blender_addon/core/cameras.py``): points
projected with ``K @ world_to_camera`` land where Blender's ``world_to_camera_view`` puts them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from blender_addon.core import cameras as bcam
from blender_addon.core.import_plan import to_blender_points
from shared.cameras import read_cameras

# (resolution x, y, percentage, pixel aspect x, y, sensor fit, shift x, shift y, lens)
CASES = [
    (64, 48, 100, 1.0, 1.0, "AUTO", 0.0, 0.0, 50.0),  # landscape
    (48, 64, 100, 1.0, 1.0, "AUTO", 0.0, 0.0, 35.0),  # portrait: AUTO spans the height
    (64, 48, 100, 1.0, 1.0, "HORIZONTAL", 0.0, 0.0, 50.0),
    (48, 64, 100, 1.0, 1.0, "HORIZONTAL", 0.0, 0.0, 50.0),
    (64, 48, 100, 1.0, 1.0, "VERTICAL", 0.0, 0.0, 40.0),
    (48, 64, 100, 1.0, 1.0, "VERTICAL", 0.0, 0.0, 40.0),
    (64, 48, 100, 1.0, 1.0, "AUTO", 0.12, -0.07, 50.0),  # lens shift
    (48, 64, 100, 1.0, 1.0, "VERTICAL", -0.1, 0.15, 30.0),
    (120, 80, 50, 1.0, 1.0, "AUTO", 0.05, 0.05, 50.0),  # render percentage
    (64, 48, 100, 1.0, 2.0, "AUTO", 0.1, 0.1, 50.0),  # non-square pixels
    (48, 64, 100, 2.0, 1.0, "AUTO", -0.05, 0.08, 45.0),
]


def _pose(rng) -> np.ndarray:
    """A random camera matrix_world (Z-up) with a non-unit scale."""
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    w, x, y, z = q
    R = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                  [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                  [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])
    M = np.eye(4)
    M[:3, :3] = R * rng.uniform(0.5, 2.0)
    M[:3, 3] = rng.normal(size=3) * 2
    return M


@pytest.mark.blender
@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}x{c[1]}-{c[5]}-shift{c[6]}-asp{c[4]}"
                                             for c in CASES])
def test_projection_matches_blender(bpy_clean, case):
    bpy = bpy_clean
    from bpy_extras.object_utils import world_to_camera_view
    from mathutils import Matrix, Vector

    from blender_addon.bl.camera_export import camera_dict

    rx, ry, pct, ax, ay, fit, sx, sy, lens = case
    rng = np.random.default_rng(CASES.index(case))
    scene = bpy.context.scene
    data = bpy.data.cameras.new("cam")
    obj = bpy.data.objects.new("cam", data)
    scene.collection.objects.link(obj)
    r = scene.render
    r.resolution_x, r.resolution_y, r.resolution_percentage = rx, ry, pct
    r.pixel_aspect_x, r.pixel_aspect_y = ax, ay
    data.lens, data.sensor_fit, data.shift_x, data.shift_y = lens, fit, sx, sy
    data.sensor_width, data.sensor_height = 36.0, 24.0
    worst = 0.0
    for _ in range(3):
        obj.matrix_world = Matrix(_pose(rng).tolist())
        bpy.context.view_layer.update()
        d = camera_dict("input", obj, scene)
        W, H = d["width"], d["height"]
        assert (W, H) == (rx * pct // 100, ry * pct // 100)
        vm, K = np.array(d["world_to_camera"]), np.array(d["K"])
        # world points in front of the camera, in the result's Y-up frame
        for _ in range(8):
            pc = np.array([*rng.uniform(-0.4, 0.4, 2), 1.0]) * rng.uniform(1.0, 6.0)  # OpenCV
            p = np.linalg.solve(vm[:3, :3], pc - vm[:3, 3])  # Y-up world
            uvw = K @ (vm[:3, :3] @ p + vm[:3, 3])
            uv = uvw[:2] / uvw[2]
            pb = to_blender_points(p[None].astype(np.float64))[0]
            ndc = world_to_camera_view(scene, obj, Vector(np.asarray(pb, float).tolist()))
            ub, vb = ndc.x * W, (1 - ndc.y) * H
            worst = max(worst, abs(ub - uv[0]), abs(vb - uv[1]))
            assert ndc.z == pytest.approx(pc[2], rel=1e-5)  # depth along the view axis
    assert worst < 1e-3, (case, worst)


def test_axis_map_is_the_importers_inverse():
    """A camera at Blender (0, -3, 0) looking along +Y (the default front view) sees the
    result's origin at the image centre, from +Z in the result's Y-up frame."""
    M = np.array([[1, 0, 0, 0], [0, 0, -1, -3], [0, 1, 0, 0], [0, 0, 0, 1]], float)  # rx 90
    vm = bcam.world_to_camera(M)
    centre = -vm[:3, :3].T @ vm[:3, 3]
    np.testing.assert_allclose(centre, [0, 0, 3], atol=1e-12)  # Blender -Y = Y-up +Z
    np.testing.assert_allclose(vm[:3, :3] @ [0, 1, 0], [0, -1, 0], atol=1e-12)  # up is -y (cv)
    np.testing.assert_allclose(bcam.ours_to_blender_matrix()[:3, :3] @ [1, 2, 3],
                               to_blender_points(np.array([1.0, 2, 3])), atol=1e-6)


def test_views_cameras_file(tmp_path):
    M = np.eye(4)
    M[:3, 3] = [0, -3, 1]
    cams = {"input": bcam.BlenderCamera(M, 50.0, resolution_x=64, resolution_y=48),
            "left": bcam.BlenderCamera(M * [1, 1, 1, 1], 35.0, sensor_fit="VERTICAL",
                                       resolution_x=48, resolution_y=64)}
    path = bcam.write_views_cameras(tmp_path / "cams.json", cams)
    back = read_cameras(path)
    assert [c.name for c in back] == ["input", "left"] and (back[1].width, back[1].height) == (
        48, 64)
    assert json.loads(path.read_text())[0]["K"][0][0] == pytest.approx(50 / 36 * 64)
    with pytest.raises(ValueError, match="named 'input'"):
        bcam.write_views_cameras(tmp_path / "x.json", {"left": cams["left"]})
    with pytest.raises(ValueError, match="ORTHO camera has no pinhole model"):
        bcam.opencv_camera("o", bcam.BlenderCamera(M, 50.0, type="ORTHO"))
    with pytest.raises(ValueError, match="mirrors"):
        bcam.world_to_camera(np.diag([1.0, 1, -1, 1]))


@pytest.mark.blender
def test_operator_writes_the_active_and_selected_cameras(bpy_clean, tmp_path):
    bpy = bpy_clean
    from mathutils import Matrix

    from blender_addon.bl import camera_export

    scene = bpy.context.scene
    objs = []
    for name, x in (("front", 0.0), ("left", -3.0), ("back", 0.5)):
        data = bpy.data.cameras.new(name)
        obj = bpy.data.objects.new(name, data)
        scene.collection.objects.link(obj)
        obj.matrix_world = Matrix.Translation((x, -3.0, 1.0))
        objs.append(obj)
    bpy.context.view_layer.update()
    bpy.utils.register_class(camera_export.ANIM4D_OT_export_view_cameras)
    try:
        path = tmp_path / "cams.json"
        with pytest.raises(RuntimeError, match="no active camera"):  # reported as an error
            bpy.ops.anim4d.export_view_cameras(filepath=str(path))
        scene.camera = objs[0]  # the input's
        for o in objs[:2]:
            o.select_set(True)
        assert bpy.ops.anim4d.export_view_cameras(filepath=str(path)) == {"FINISHED"}
    finally:
        bpy.utils.unregister_class(camera_export.ANIM4D_OT_export_view_cameras)
    back = read_cameras(path)
    assert [c.name for c in back] == ["input", "left"]  # 'back' is not selected
    np.testing.assert_allclose(back[1].world_to_camera,
                               camera_export.camera_dict("left", objs[1], scene)[
                                   "world_to_camera"])
    np.testing.assert_allclose(-back[1].world_to_camera[:3, :3].T @ back[1].world_to_camera[
        :3, 3], [-3.0, 1.0, 3.0], atol=1e-6)  # Blender (x, y, z) -> Y-up (x, z, -y)


def test_agrees_with_the_backends_blender_camera_model():
    """Square pixels at 100 %: the same K and pose as ``backend.render.cameras``' model."""
    from backend.render import cameras as rc

    rng = np.random.default_rng(3)
    for fit, (w, h) in [("AUTO", (64, 48)), ("AUTO", (48, 64)), ("VERTICAL", (64, 48)),
                        ("HORIZONTAL", (48, 64))]:
        M = _pose(rng)
        lens = rc.BlenderLens(float(rng.uniform(20, 80)), 36.0, 24.0, fit,
                              float(rng.normal() * 0.1), float(rng.normal() * 0.1))
        cam = bcam.BlenderCamera(M, lens.lens, lens.sensor_width, lens.sensor_height, fit,
                                 lens.shift_x, lens.shift_y, w, h)
        np.testing.assert_allclose(bcam.intrinsics(cam), rc.K_from_blender_lens(lens, w, h),
                                   atol=1e-9)
        np.testing.assert_allclose(bcam.world_to_camera(M), rc.blender_to_viewmat(M), atol=1e-9)
