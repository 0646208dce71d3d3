"""Orbit cameras, intrinsics and the Blender conversion (axes!), with and without bpy."""

from __future__ import annotations

import math

import numpy as np
import pytest

from backend.render import cameras as cam


def _project(viewmat, K, p):
    q = viewmat[:3, :3] @ p + viewmat[:3, 3]
    uv = K @ (q / q[2])
    return uv[:2], q[2]


def _random_pose(rng):
    az, el = rng.uniform(-180, 180), rng.uniform(-80, 80)
    target = rng.normal(size=3) * 0.3
    return cam.orbit_viewmat(az, el, rng.uniform(1.0, 4.0), target), az, el, target


def test_orbit_positions_follow_the_documented_axes():
    assert np.allclose(cam.orbit_position(0, 0, 2), [0, 0, 2])
    assert np.allclose(cam.orbit_position(90, 0, 2), [2, 0, 0])
    assert np.allclose(cam.orbit_position(0, 90, 2), [0, 2, 0], atol=1e-12)
    stag4d = cam.orbit_position(30, -20, 2, convention="stag4d")
    assert np.allclose(cam.orbit_position(30, 20, 2), stag4d)
    with pytest.raises(ValueError, match="convention"):
        cam.orbit_position(0, 0, 1, convention="blender")


def test_front_camera_sees_up_as_up_and_right_as_right():
    vm = cam.orbit_viewmat(0, 0, 3)  # on +Z looking at the origin: the object's front
    K = cam.intrinsics_from_fov(49.1, 64, 48)
    centre, depth = _project(vm, K, np.zeros(3))
    assert np.allclose(centre, [32, 24]) and np.isclose(depth, 3)
    up, _ = _project(vm, K, np.array([0, 0.5, 0]))
    right, _ = _project(vm, K, np.array([0.5, 0, 0]))
    assert up[1] < 24 and np.isclose(up[0], 32)  # image y grows downwards
    assert right[0] > 32 and np.isclose(right[1], 24)


def test_viewmats_are_rigid_and_orbit_round_trips(seed):
    rng = np.random.default_rng(seed)
    for _ in range(50):
        vm, az, el, target = _random_pose(rng)
        R = vm[:3, :3]
        assert np.allclose(R @ R.T, np.eye(3), atol=1e-12) and np.isclose(np.linalg.det(R), 1)
        az2, el2, _ = cam.viewmat_to_orbit(vm, target)
        assert np.isclose(math.remainder(az2 - az, 360), 0, atol=1e-7), seed
        assert np.isclose(el2, el, atol=1e-7), seed
        # the target is on the optical axis
        uv, _ = _project(vm, cam.intrinsics_from_fov(40, 10, 10), target)
        assert np.allclose(uv, [5, 5], atol=1e-9), seed


def test_pole_cameras_are_defined():
    for el in (90, -90):
        vm = cam.orbit_viewmat(0, el, 2)
        assert np.all(np.isfinite(vm)) and np.isclose(np.linalg.det(vm[:3, :3]), 1)


def test_intrinsics_and_fov_round_trip():
    K = cam.intrinsics_from_fov(49.1, 128, 96)
    assert np.isclose(cam.fov_y_from_intrinsics(K, 96), 49.1)
    assert K[0, 0] == K[1, 1] and K[0, 2] == 64 and K[1, 2] == 48
    with pytest.raises(ValueError):
        cam.intrinsics_from_fov(180, 10, 10)


def test_blender_matrix_round_trip_and_axes(seed):
    rng = np.random.default_rng(seed)
    for _ in range(50):
        vm, *_ = _random_pose(rng)
        M = cam.viewmat_to_blender(vm)
        assert np.allclose(cam.blender_to_viewmat(M), vm, atol=1e-12), seed
        scaled = M.copy()
        scaled[:3, :3] *= rng.uniform(0.2, 3.0)  # object scale must not matter
        assert np.allclose(cam.blender_to_viewmat(scaled), vm, atol=1e-12), seed
    # Our front camera (+Z) sits on Blender's -Y axis and looks along +Y, with Blender Z up.
    M = cam.viewmat_to_blender(cam.orbit_viewmat(0, 0, 3))
    assert np.allclose(M[:3, 3], [0, -3, 0])
    assert np.allclose(-M[:3, 2], [0, 1, 0])  # Blender cameras look down their local -Z
    assert np.allclose(M[:3, 1], [0, 0, 1])  # and their local +Y is up


def test_lens_round_trip(seed):
    rng = np.random.default_rng(seed)
    for _ in range(20):
        W, H = int(rng.integers(16, 400)), int(rng.integers(16, 400))
        K = cam.intrinsics_from_fov(rng.uniform(10, 120), W, H)
        K[0, 2] += rng.normal() * 5
        K[1, 2] += rng.normal() * 5
        lens = cam.blender_lens_from_K(K, W, H)
        assert np.allclose(cam.K_from_blender_lens(lens, W, H), K), seed
    K = np.array([[100, 0, 5], [0, 90, 5], [0, 0, 1.0]])
    with pytest.raises(ValueError, match="square pixels"):
        cam.blender_lens_from_K(K, 10, 10)


def test_orbit_and_zero123pp_batches():
    vms, Ks = cam.orbit_cameras([0, 90], [10, 20], 2.0, 49.1, 64, 64)
    assert vms.shape == (2, 4, 4) and Ks.shape == (2, 3, 3)
    vms, Ks = cam.zero123pp_cameras(input_azimuth_deg=15)
    assert vms.shape == (6, 4, 4)
    els = [cam.viewmat_to_orbit(v.double().numpy())[1] for v in vms]
    assert np.allclose(els, cam.ZERO123PP_V12_ELEVATIONS, atol=1e-4)
    az0 = cam.viewmat_to_orbit(vms[0].double().numpy())[0]
    assert np.isclose(az0, 45, atol=1e-4)


@pytest.mark.blender
def test_blender_projects_like_our_cameras(seed):
    """A Blender camera built from (viewmat, K) projects points exactly where we do."""
    pytest.importorskip("bpy", reason="needs the bpy module (pip install bpy==5.0.1)")
    import bpy
    from bpy_extras.object_utils import world_to_camera_view
    from mathutils import Matrix, Vector

    rng = np.random.default_rng(seed)
    scene = bpy.context.scene
    data = bpy.data.cameras.new("anim4d_test_cam")
    obj = bpy.data.objects.new("anim4d_test_cam", data)
    scene.collection.objects.link(obj)
    try:
        for trial in range(6):
            W, H = int(rng.integers(20, 200)), int(rng.integers(20, 200))
            vm, *_ = _random_pose(rng)
            K = cam.intrinsics_from_fov(rng.uniform(20, 90), W, H)
            K[0, 2] += rng.normal() * 3
            K[1, 2] += rng.normal() * 3
            lens = cam.blender_lens_from_K(K, W, H)
            if trial % 2:  # also read back a camera set up the Blender way
                lens = cam.BlenderLens(rng.uniform(20, 80), 36.0, 24.0,
                                       str(rng.choice(["AUTO", "HORIZONTAL", "VERTICAL"])),
                                       rng.normal() * 0.05, rng.normal() * 0.05)
                K = cam.K_from_blender_lens(lens, W, H)
            scene.render.resolution_x, scene.render.resolution_y = W, H
            scene.render.resolution_percentage = 100
            scene.render.pixel_aspect_x = scene.render.pixel_aspect_y = 1
            for k in ("lens", "sensor_width", "sensor_height", "sensor_fit", "shift_x", "shift_y"):
                setattr(data, k, getattr(lens, k))
            obj.matrix_world = Matrix(cam.viewmat_to_blender(vm).tolist())
            bpy.context.view_layer.update()
            target = -vm[:3, :3].T @ vm[:3, 3] + vm[2, :3] * 2.0  # 2 units in front
            for _ in range(10):
                p = target + rng.normal(size=3) * 0.3
                uv, depth = _project(vm, K, p)
                pb = cam.OURS_TO_BLENDER[:3, :3] @ p
                ndc = world_to_camera_view(scene, obj, Vector(pb.tolist()))
                ub, vb = ndc.x * W, (1 - ndc.y) * H
                assert np.allclose([ub, vb], uv, atol=1e-3), (seed, trial, lens)
                assert np.isclose(ndc.z, depth, rtol=1e-5), (seed, trial)
    finally:
        bpy.data.objects.remove(obj)
        bpy.data.cameras.remove(data)
