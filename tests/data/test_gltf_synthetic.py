"""glTF reader on tiny hand-built files: exact positions at chosen times, conventions, errors."""

from __future__ import annotations

import numpy as np
import pygltflib
import pytest

from backend.data.gltf_anim import frame_times
from backend.data.gltf_reader import GltfAnimation, list_gltf_clips, read_gltf
from shared.errors import FormatError

from .builders import BOX, BOX_FACES, STRIP_X, STRIP_Y, GltfBuilder


def rot_z(p: np.ndarray, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.stack([c * p[:, 0] - s * p[:, 1], s * p[:, 0] + c * p[:, 1], p[:, 2]], 1)


def strip_expected(angle: float, w1: np.ndarray) -> np.ndarray:
    """Strip vertices with joint 1 rotated by ``angle`` about Z around (0, 1, 0)."""
    rest = np.stack([STRIP_X, STRIP_Y, np.zeros(10)], 1)
    moved = rot_z(rest - [0, 1, 0], angle) + [0, 1, 0]
    return (1 - w1)[:, None] * rest + w1[:, None] * moved


def strip_w1() -> np.ndarray:
    w1 = (STRIP_Y > 1.0).astype(float)
    w1[STRIP_Y == 1.0] = 0.5
    return w1


def nlerp_angle(s: float, total: float) -> float:
    q0 = np.array([0.0, 1.0])  # (sin, cos) of half angles
    q1 = np.array([np.sin(total / 2), np.cos(total / 2)])
    q = (1 - s) * q0 + s * q1
    return 2 * np.arctan2(q[0], q[1])


@pytest.mark.parametrize("variant", [{}, {"split_sets": True}, {"byte_weights": True}])
def test_skinned_strip_keys_exact(gltf_files, variant):
    anim = GltfAnimation(gltf_files.strip(**variant))
    clip = anim.clip("bend")
    v = anim.sample(clip, np.array([0.0, 1.0]))
    w1 = strip_w1()  # uint8 weights 128/255 + 128/255 renormalise to 0.5 each
    np.testing.assert_allclose(v[0], strip_expected(0.0, w1), atol=1e-6)
    np.testing.assert_allclose(v[1], strip_expected(np.pi / 2, w1), atol=1e-6)
    # The tip (0.1, 2) ends at (-1, 1.1): the skinned node's own x = 5 is ignored.
    np.testing.assert_allclose(v[1][9], [-1.0, 1.1, 0.0], atol=1e-6)


def test_quaternion_interpolation_modes(gltf_files):
    anim = GltfAnimation(gltf_files.strip())
    clip = anim.clip("bend")
    w1 = strip_w1()
    slerp = anim.sample(clip, np.array([0.25]), quat="slerp")[0]
    nlerp = anim.sample(clip, np.array([0.25]), quat="nlerp")[0]
    np.testing.assert_allclose(slerp, strip_expected(np.pi / 8, w1), atol=1e-6)
    np.testing.assert_allclose(nlerp, strip_expected(nlerp_angle(0.25, np.pi / 2), w1),
                               atol=1e-6)
    assert np.abs(slerp - nlerp).max() > 1e-3  # the two modes really differ off the keys
    # Halfway both give 45 degrees.
    mid = anim.sample(clip, np.array([0.5]), quat="nlerp")[0]
    np.testing.assert_allclose(mid, strip_expected(np.pi / 4, w1), atol=1e-6)


def test_morph_quad_linear_step_cubic(gltf_files):
    anim = GltfAnimation(gltf_files.quad())
    lin = anim.sample(anim.clip("morph"), np.array([0.0, 0.5, 1.0, 1.5, 2.0, 3.0]))
    # weights: t=0 [0,0]; 0.5 [0.5,0.25]; 1 [1,0.5]; 1.5 [0.5,0.75]; 2 [0,1]; 3 clamps to [0,1]
    expect_z2 = [0.0, 0.5, 1.0, 0.5, 0.0, 0.0]
    expect_z3 = [0.0, 0.5, 1.0, 1.5, 2.0, 2.0]
    np.testing.assert_allclose(lin[:, 2, 2], expect_z2, atol=1e-6)
    np.testing.assert_allclose(lin[:, 3, 2], expect_z3, atol=1e-6)
    np.testing.assert_allclose(lin[:, :2, 2], 0.0, atol=1e-7)
    step = anim.sample(anim.clip("morph_step"), np.array([0.0, 0.5, 0.999, 1.0, 1.5, 2.0]))
    np.testing.assert_allclose(step[:, 2, 2], [0, 0, 0, 1, 1, 0], atol=1e-6)
    cubic = anim.sample(anim.clip("morph_cubic"), np.array([0.0, 0.5, 1.0]))
    # Hermite at s = 0.5: h10 * dt * out0 + h01 * v1 = 0.125 * 2 + 0.5 = 0.75
    np.testing.assert_allclose(cubic[:, 2, 2], [0.0, 0.75, 1.0], atol=1e-6)


def test_morph_quad_attributes_and_gltf_data_uri(gltf_files):
    glb = read_gltf(gltf_files.quad(), clip="morph", fps=4)
    gltf = read_gltf(gltf_files.quad("quad.gltf"), clip="morph", fps=4)
    np.testing.assert_array_equal(glb.vertices, gltf.vertices)
    assert glb.frame_count == 9  # 2 s at 4 fps, both ends included
    np.testing.assert_allclose(glb.times, np.arange(9) / 4)
    # UVs: V flipped to a bottom-left origin.
    np.testing.assert_allclose(glb.uvs, [[0, 1], [1, 1], [1, 0], [0, 0]])
    np.testing.assert_allclose(glb.colors, np.tile([0.2, 0.4, 0.6, 1.0], (4, 1)), atol=1e-7)
    np.testing.assert_array_equal(glb.faces, [[0, 1, 2], [0, 2, 3]])


def test_node_animation_hierarchy_and_merge(gltf_files):
    anim = GltfAnimation(gltf_files.box())
    seq = anim.sequence("move", fps=4)
    assert seq.vertex_count == 8 + 3 and seq.faces.shape == (12 + 1, 3)
    np.testing.assert_array_equal(seq.faces[-1], [8, 9, 10])  # the triangle is offset
    t = 0.75  # translation (0.75, 0, 0); STEP rotation already at 90 degrees about Y
    v = anim.sample(anim.clip("move"), np.array([0.25, t]))
    rot_y = np.stack([BOX[:, 2], BOX[:, 1], -BOX[:, 0]], 1)
    np.testing.assert_allclose(v[0][:8], 2 * (BOX + [0.25, 0, 0]), atol=1e-6)
    np.testing.assert_allclose(v[1][:8], 2 * (rot_y + [t, 0, 0]), atol=1e-6)
    # The static triangle follows its column-major matrix (y + 3) in every frame.
    tri = np.array([[0, 3, 0], [1, 3, 0], [0, 4, 0]])
    np.testing.assert_allclose(seq.vertices[:, 8:], np.broadcast_to(tri, (5, 3, 3)), atol=1e-6)
    # COLOR_0 (RGB -> alpha 1) for the box, baseColorFactor for the triangle.
    np.testing.assert_allclose(seq.colors[:8], np.tile([1, 0.5, 0.25, 1], (8, 1)))
    np.testing.assert_allclose(seq.colors[8:], np.tile([0.9, 0.1, 0.1, 0.5], (3, 1)), atol=1e-7)
    assert seq.uvs is None


def test_clip_times_start_at_first_key(gltf_files):
    anim = GltfAnimation(gltf_files.box())
    seq = anim.sequence("late", fps=2)
    np.testing.assert_allclose(seq.times, [0.0, 0.5, 1.0])
    # Keys at t = 1 and 2 move the child from y 0 to 1 (times 2 for the parent's scale).
    np.testing.assert_allclose(seq.vertices[:, 0, 1], 2 * (-0.5 + np.array([0, 0.5, 1.0])),
                               atol=1e-6)


def test_frame_grid_rule():
    assert frame_times(1.0, 30).shape == (31,)
    assert frame_times(0.5, 3).tolist() == [0.0, 1 / 3]  # 1.5 frames: the last key is off-grid
    assert frame_times(14 / 24 - 1e-9, 24).shape == (15,)  # float32 key times still land
    assert frame_times(float(np.float32(7 / 6)), 30).shape == (36,)
    assert frame_times(0.5 - 1e-3, 30).shape == (15,)  # clearly short of frame 15
    assert frame_times(0.0, 24).shape == (1,)


def test_list_clips_and_default_clip(gltf_files):
    path = gltf_files.quad()
    assert list_gltf_clips(path) == [("morph", 2.0), ("morph_step", 2.0), ("morph_cubic", 1.0)]
    seq = read_gltf(path, fps=2)
    assert seq.meta["clip"] == "morph" and seq.frame_count == 5


def _message(err: pytest.ExceptionInfo) -> str:
    return str(err.value)


def test_unknown_clip_lists_clips(gltf_files):
    path = gltf_files.quad()
    with pytest.raises(FormatError) as err:
        read_gltf(path, clip="dance")
    msg = _message(err)
    assert str(path) in msg and "'dance'" in msg
    assert "'morph'" in msg and "'morph_step'" in msg and "'morph_cubic'" in msg


@pytest.mark.parametrize("content, problem", [
    (b"\x00\x01garbage\xff" * 10, "not a glTF"),
    (b"hello, world", "not a glTF"),
    (b'{"meshes": []}', "not a glTF"),
    (b'{"asset": {"version": "1.0"}}', "version"),
])
def test_not_a_gltf(tmp_path, content, problem):
    path = tmp_path / "bad.gltf"
    path.write_bytes(content)
    with pytest.raises(FormatError) as err:
        read_gltf(path)
    assert str(path) in _message(err) and problem in _message(err)


def test_truncated_glb(gltf_files, tmp_path):
    data = gltf_files.strip().read_bytes()
    path = tmp_path / "cut.glb"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(FormatError) as err:
        read_gltf(path)
    assert str(path) in _message(err) and "truncated" in _message(err)


def test_gltf_without_mesh(tmp_path):
    path = tmp_path / "empty.gltf"
    path.write_text('{"asset": {"version": "2.0"}, "nodes": [{"name": "a"}], '
                    '"scenes": [{"nodes": [0]}]}')
    with pytest.raises(FormatError) as err:
        read_gltf(path)
    assert str(path) in _message(err) and "no mesh" in _message(err)


def test_gltf_without_animation(gltf_files):
    path = gltf_files.box("static.glb", animated=False)
    with pytest.raises(FormatError) as err:
        read_gltf(path)
    msg = _message(err)
    assert str(path) in msg and "no animation" in msg
    assert "skin" in msg and "morph" in msg and "node animation" in msg


def test_mesh_without_faces(tmp_path):
    b = GltfBuilder()
    pos = b.accessor(BOX, minmax=True)
    b.g.meshes.append(pygltflib.Mesh(primitives=[
        pygltflib.Primitive(attributes=pygltflib.Attributes(POSITION=pos), mode=0)]))
    b.g.nodes = [pygltflib.Node(mesh=0)]
    b.g.scenes = [pygltflib.Scene(nodes=[0])]
    b.animation("spin", [(0, "translation", [0.0, 1.0], [[0, 0, 0], [1, 0, 0]], "LINEAR")])
    path = b.save(tmp_path / "points.glb")
    with pytest.raises(FormatError) as err:
        read_gltf(path)
    assert str(path) in _message(err) and "no faces" in _message(err)


def test_external_bin_beside_gltf(gltf_files, tmp_path):
    g = pygltflib.GLTF2().load(str(gltf_files.quad()))
    path = tmp_path / "ext" / "quad.gltf"
    path.parent.mkdir()
    (path.parent / "quad data.bin").write_bytes(g.binary_blob())
    g.buffers[0].uri = "quad%20data.bin"  # URIs are percent-encoded
    g.set_binary_blob(b"")
    g.save_json(str(path))
    seq = read_gltf(path, clip="morph", fps=1)
    assert seq.frame_count == 3 and seq.vertex_count == 4


def test_buffer_uri_outside_folder_refused(gltf_files, tmp_path):
    g = pygltflib.GLTF2().load(str(gltf_files.quad()))
    g.convert_buffers(pygltflib.BufferFormat.DATAURI)
    g.buffers[0].uri = "../../etc/passwd"
    path = tmp_path / "evil.gltf"
    g.save_json(str(path))
    with pytest.raises(FormatError) as err:
        read_gltf(path)
    assert str(path) in _message(err) and "glTF's folder" in _message(err)


def test_required_extension_refused(gltf_files, tmp_path):
    g = pygltflib.GLTF2().load(str(gltf_files.quad()))
    g.convert_buffers(pygltflib.BufferFormat.DATAURI)
    g.extensionsRequired = ["KHR_draco_mesh_compression"]
    path = tmp_path / "draco.gltf"
    g.save_json(str(path))
    with pytest.raises(FormatError, match="KHR_draco_mesh_compression"):
        read_gltf(path)


def test_clip_that_moves_no_mesh(tmp_path):
    b = GltfBuilder()
    pos = b.accessor(BOX, minmax=True)
    b.g.meshes.append(pygltflib.Mesh(primitives=[pygltflib.Primitive(
        attributes=pygltflib.Attributes(POSITION=pos),
        indices=b.accessor(BOX_FACES.reshape(-1)))]))
    b.g.nodes = [pygltflib.Node(mesh=0), pygltflib.Node(name="lamp")]
    b.g.scenes = [pygltflib.Scene(nodes=[0, 1])]
    b.animation("lamp", [(1, "translation", [0.0, 1.0], [[0, 0, 0], [1, 0, 0]], "LINEAR")])
    path = b.save(tmp_path / "lamp.glb")
    with pytest.raises(FormatError) as err:
        read_gltf(path)
    assert str(path) in _message(err) and "animates no mesh" in _message(err)
