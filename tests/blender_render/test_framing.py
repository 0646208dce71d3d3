"""The bpy-free maths of a render: bounds, camera framing, turntable, lights, grid, frames."""

from __future__ import annotations

import numpy as np
import pytest
from blender_render_helpers import blob_sequence, write_blob_result, write_mesh_result

from backend.blender_render import framing
from shared.errors import ParamError
from shared.results import open_result

BOXES = [framing.Bounds(np.array([-1.0, -0.2, 0.0]), np.array([1.0, 0.2, 0.5])),  # long, flat
         framing.Bounds(np.array([0.0, 0.0, 0.0]), np.array([0.1, 0.1, 2.0])),  # tall, thin
         framing.Bounds(np.array([3.0, -4.0, 1.0]), np.array([4.0, -3.0, 2.0]))]  # cube, off origin


@pytest.mark.parametrize("box", BOXES)
@pytest.mark.parametrize("size", [(64, 64), (160, 90), (90, 160)])
def test_fixed_camera_frames_the_box_tightly(box, size):
    w, h = size
    [cam] = framing.camera_matrices(box, "fixed", 1, w, h)
    px = framing.project(cam, box.corners(), w, h)
    # every corner inside the frame's MARGIN, and one on its edge (the framing is tight)
    half = np.array([w, h]) / 2.0
    reach = np.abs(px - half) / half
    assert reach.max() == pytest.approx(framing.MARGIN, abs=1e-9)
    assert np.all(reach <= framing.MARGIN + 1e-9)
    # it looks at the centre of the box, from above, at the 3/4 view
    centre = framing.project(cam, box.center[None], w, h)[0]
    assert np.abs(centre - half).max() < 1e-6
    assert cam[2, 3] > box.center[2]


def test_camera_matrix_is_a_rotation_looking_down_minus_z():
    eye, target = np.array([3.0, -4.0, 2.0]), np.array([0.5, 0.5, 0.5])
    m = framing.look_at(eye, target)
    rot = m[:3, :3]
    assert np.abs(rot.T @ rot - np.eye(3)).max() < 1e-12 and np.linalg.det(rot) > 0
    forward = -rot[:, 2]
    assert np.abs(forward - (target - eye) / np.linalg.norm(target - eye)).max() < 1e-12
    assert abs(rot[2, 0]) < 1e-12  # the horizon stays level (camera x is horizontal)


def test_turntable_goes_once_round_at_one_distance_and_keeps_the_box_in_view():
    box = BOXES[0]
    mats = framing.camera_matrices(box, "turntable", 12, 64, 64)
    assert len(mats) == 12
    eyes = np.array([m[:3, 3] for m in mats]) - box.center
    dist = np.linalg.norm(eyes, axis=1)
    assert np.ptp(dist) < 1e-9
    az = np.degrees(np.arctan2(eyes[:, 0], -eyes[:, 1]))
    steps = np.diff(np.unwrap(np.radians(az)))
    assert np.allclose(np.degrees(steps), 30.0)  # 360 / 12, in one direction
    fixed = framing.camera_matrices(box, "fixed", 1, 64, 64)[0]
    assert np.allclose(mats[0][:3, :3], fixed[:3, :3])  # it starts at the 3/4 view,
    assert dist[0] > np.linalg.norm(fixed[:3, 3] - box.center) + 1e-6  # further: all views fit
    for m in mats:
        reach = np.abs(framing.project(m, box.corners(), 64, 64) - 32.0) / 32.0
        assert reach.max() <= framing.MARGIN + 1e-9


def test_three_point_lights_surround_and_face_the_centre():
    box = BOXES[2]
    lights = framing.three_point_lights(box)
    assert [x.name for x in lights] == ["key", "fill", "rim"]
    key, fill, rim = lights
    assert key.power > rim.power > fill.power > 0
    for light in lights:
        to_centre = box.center - light.matrix[:3, 3]
        assert np.dot(-light.matrix[:3, 2], to_centre / np.linalg.norm(to_centre)) > 1 - 1e-9
        assert light.matrix[2, 3] > box.center[2]  # all above the centre


def test_grid_places_boxes_apart_on_the_ground():
    offsets = framing.grid_offsets(BOXES)
    moved = [b.moved(o) for b, o in zip(BOXES, offsets, strict=True)]
    for b in moved:
        assert b.lo[2] == pytest.approx(0.0)
    for i in range(len(moved)):
        for j in range(i + 1, len(moved)):
            a, b = moved[i], moved[j]
            overlap = np.all(a.lo[:2] < b.hi[:2]) and np.all(b.lo[:2] < a.hi[:2])
            assert not overlap, (i, j)
    centres = np.array([b.center[:2] for b in moved])
    assert np.abs(centres.mean(axis=0)).max() < 2.0  # about the origin


def test_mesh_bounds_hold_every_vertex_of_every_frame_in_blender_axes(tmp_path):
    res = open_result(write_mesh_result(tmp_path / "m", frames=5, vertices=20))
    v = res.mesh.vertices.astype(np.float64)
    z_up = np.stack([v[..., 0], -v[..., 2], v[..., 1]], axis=-1).reshape(-1, 3)
    box = framing.result_bounds(res)
    assert np.allclose(box.lo, z_up.min(axis=0)) and np.allclose(box.hi, z_up.max(axis=0))


def test_gaussian_bounds_grow_by_the_splat_size_and_skip_transparent_splats(tmp_path):
    res = open_result(write_blob_result(tmp_path / "g", frames=3, count=50))
    seq = blob_sequence(3, 50)
    means = np.concatenate([f.means for f in seq.frames]).astype(np.float64)
    z_up = np.stack([means[:, 0], -means[:, 2], means[:, 1]], axis=1)
    r = float(np.exp(seq.frames[0].log_scales.max()))
    box = framing.result_bounds(res)
    assert np.allclose(box.lo, z_up.min(axis=0) - r, atol=1e-5)
    assert np.allclose(box.hi, z_up.max(axis=0) + r, atol=1e-5)
    far = framing.bounds_of_points(np.array([[0.0, 0, 0], [100.0, 0, 0]]))
    assert far.hi[0] == 100.0
    for f in seq.frames:  # a faint splat far away does not widen the frame
        f.means[0] = [100.0, 0.0, 0.0]
        f.opacity_logits[0] = -6.0
    from shared.gaussians import write_gaussian_result

    write_gaussian_result(tmp_path / "faint", seq, kind="video.to4d", fps=8.0)
    assert framing.result_bounds(open_result(tmp_path / "faint")).hi[0] < 10.0


def test_frame_range_and_fps():
    assert framing.frame_range(11 / 12, 12.0) == (1, 12)  # one frame per sample
    assert framing.frame_range(11 / 12, 24.0) == (1, 23)
    assert framing.frame_range(1.0, 24.0, (5, 9)) == (5, 9)
    with pytest.raises(ParamError, match="spans frames 1:25"):
        framing.frame_range(1.0, 24.0, (20, 30))
    assert framing.blender_fps(24.0) == (24, 1.0)
    fps, base = framing.blender_fps(29.97)
    assert fps / base == pytest.approx(29.97)
    assert framing.result_fps(12.0, [0.0, 0.5]) == 12.0
    assert framing.result_fps(0.0, [0.0, 0.1, 0.2]) == pytest.approx(10.0)
    assert framing.result_fps(0.0, [0.0]) == 24.0
