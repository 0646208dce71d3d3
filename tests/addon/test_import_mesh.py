"""Mesh sequences import as one object with absolute shape keys (or a PC2 cache) and one curve."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from addon_helpers import evaluated_vertices, wavy_sequence, write_mesh_result, y_up_to_z_up

from shared.meshseq import load_npz

pytestmark = pytest.mark.blender


def _tolerance(seq) -> float:
    return 1e-5 * seq.bbox_diagonal()


def test_every_frame_matches_after_axis_map(bpy_clean, mesh_result: Path) -> None:
    from blender_addon.bl import importer

    bpy = bpy_clean
    seq = load_npz(mesh_result / "sequence.npz")
    obj, notices = importer.import_folder(mesh_result)
    assert notices == [] and obj.data.shape_keys.use_relative is False
    scene = bpy.context.scene
    assert scene.render.fps == 24  # importing never changes the scene's fps
    for i, t in enumerate(seq.times):
        frame = 1 + t * 24  # 12 fps source on a 24 fps scene: samples on odd frames
        assert float(frame).is_integer()
        scene.frame_set(int(frame))
        got = evaluated_vertices(bpy, obj)
        assert np.abs(got - y_up_to_z_up(seq.vertices[i])).max() <= _tolerance(seq), i
    # between two samples the shape is the linear blend (LINEAR keys, LINEAR key blocks)
    scene.frame_set(2)
    mid = y_up_to_z_up(0.5 * (seq.vertices[0] + seq.vertices[1]))
    assert np.abs(evaluated_vertices(bpy, obj) - mid).max() <= _tolerance(seq)


def test_keys_are_linear_and_unrounded(bpy_clean, tmp_path: Path) -> None:
    from blender_addon.bl import importer, timecurve

    bpy = bpy_clean
    bpy.context.scene.render.fps, bpy.context.scene.render.fps_base = 30000, 1001.0  # 29.97
    bpy.context.scene.frame_start = 10
    folder = write_mesh_result(tmp_path / "r", frames=5, vertices=10, fps=24.0)
    obj, _ = importer.import_folder(folder)
    fc = timecurve.find_fcurve(obj)
    assert fc is not None and fc.data_path == "eval_time"
    assert [k.interpolation for k in fc.keyframe_points] == ["LINEAR"] * 5
    frames, values = timecurve.read_keys(fc)
    expected = 10 + np.arange(5) / 24.0 * 30000 / 1001.0
    assert np.allclose(frames, expected, atol=1e-4) and not float(frames[1]).is_integer()
    assert np.allclose(values, [0, 10, 20, 30, 40])
    assert bpy.context.scene.render.fps == 30000


def test_metadata_uvs_and_colours_kept(bpy_clean, mesh_result: Path) -> None:
    from blender_addon.bl import importer

    seq = load_npz(mesh_result / "sequence.npz")
    obj, _ = importer.import_folder(mesh_result)
    assert obj["anim4d_job_id"] == "job-mesh-0001"
    assert obj["anim4d_kind"] == "creature.procedural"
    assert json.loads(obj["anim4d_params"]) == {"legs": 4, "seed": 7}
    assert obj["anim4d_seed"] == 7
    assert np.allclose(list(obj["anim4d_times"]), seq.times)
    mesh = obj.data
    uv = np.empty(len(mesh.loops) * 2, np.float32)
    mesh.uv_layers["UVMap"].data.foreach_get("uv", uv)
    assert np.allclose(uv.reshape(-1, 2), seq.uvs[seq.faces.ravel()])
    col = np.empty(len(mesh.vertices) * 4, np.float32)
    mesh.color_attributes["Color"].data.foreach_get("color", col)
    assert np.allclose(col.reshape(-1, 4), seq.colors)


def test_speed_two_retime_halves_the_timing(bpy_clean, mesh_result: Path) -> None:
    from blender_addon.bl import importer, retime
    from blender_addon.core.retime_plan import RetimeSettings

    bpy = bpy_clean
    scene = bpy.context.scene
    obj, _ = importer.import_folder(mesh_result)
    before = {}
    for k in range(6):
        scene.frame_set(1 + 2 * k)
        before[k] = evaluated_vertices(bpy, obj)
    retime.apply_retime(obj, RetimeSettings(speed=2.0))
    for k in range(6):
        scene.frame_set(1 + k)
        assert np.allclose(evaluated_vertices(bpy, obj), before[k], atol=1e-6), k
    retime.apply_retime(obj, RetimeSettings(speed=2.0))  # absolute: applying twice is the same
    scene.frame_set(3)
    assert np.allclose(evaluated_vertices(bpy, obj), before[2], atol=1e-6)


def test_retime_offset_reverse_loop(bpy_clean, mesh_result: Path) -> None:
    from blender_addon.bl import importer, retime
    from blender_addon.core.retime_plan import RetimeSettings

    bpy = bpy_clean
    obj, _ = importer.import_folder(mesh_result)  # 12 samples on frames 1, 3, ..., 23
    retime.apply_retime(obj, RetimeSettings(start=101, offset=-1, reverse=True, repeat="LOOP"))
    assert retime.shown_sample(obj, 100) == pytest.approx(11)
    assert retime.shown_sample(obj, 122) == pytest.approx(0)
    assert retime.shown_sample(obj, 123) == pytest.approx(10.5)  # looped: 1 frame past the end
    retime.apply_retime(obj, RetimeSettings(repeat="PINGPONG", ease="EASE_IN_OUT"))
    assert retime.shown_sample(obj, 1) == pytest.approx(0)
    assert retime.shown_sample(obj, 23) == pytest.approx(11)
    assert retime.shown_sample(obj, 25) < 11  # mirrored back
    fc = retime.timecurve.find_fcurve(obj)
    assert [m.type for m in fc.modifiers] == ["CYCLES"]
    assert {k.interpolation for k in fc.keyframe_points} == {"LINEAR"}
    assert bpy.context.scene.render.fps == 24


def test_pc2_cache_matches_and_is_blend_relative(bpy_clean, tmp_path: Path) -> None:
    from blender_addon.bl import importer, retime
    from blender_addon.core.retime_plan import RetimeSettings

    bpy = bpy_clean
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "scene.blend"))
    seq = wavy_sequence(8, 30)
    folder = write_mesh_result(tmp_path / "r", seq=seq, fps=12.0)
    obj, _ = importer.import_folder(folder, storage="PC2")
    mod = obj.modifiers["Anim4D Cache"]
    assert mod.filepath.startswith("//anim4d_cache/job-mesh-0001/")
    assert Path(bpy.path.abspath(mod.filepath)).is_file()
    assert obj.data.shape_keys is None
    for i in range(8):
        bpy.context.scene.frame_set(1 + 2 * i)
        got = evaluated_vertices(bpy, obj)
        assert np.abs(got - y_up_to_z_up(seq.vertices[i])).max() <= _tolerance(seq), i
    retime.apply_retime(obj, RetimeSettings(speed=2.0))
    bpy.context.scene.frame_set(1 + 3)
    assert np.abs(evaluated_vertices(bpy, obj) - y_up_to_z_up(seq.vertices[3])).max() < 1e-5


def test_large_sequences_switch_to_pc2_with_a_notice(bpy_clean, tmp_path: Path,
                                                     monkeypatch) -> None:
    from blender_addon.bl import importer
    from blender_addon.core import import_plan

    monkeypatch.setattr(import_plan, "SHAPE_KEY_LIMIT_BYTES", 1000)
    folder = write_mesh_result(tmp_path / "r", frames=4, vertices=30)
    obj, notices = importer.import_folder(folder)
    assert obj["anim4d_storage"] == "PC2" and "PC2 point cache" in notices[0]
    assert "not saved" in notices[1]  # the cache could not go beside an unsaved .blend


def test_streamed_chunks_build_progressively_and_resume(bpy_clean, tmp_path: Path) -> None:
    from blender_addon.bl import importer
    from shared.stream import ResultReader

    bpy = bpy_clean
    seq = wavy_sequence(10, 500)
    folder = write_mesh_result(tmp_path / "r", seq=seq)
    chunks = list(ResultReader(folder, chunk_bytes=500 * 12 * 3))  # 3 frames per chunk
    assert len(chunks) > 3
    stream = importer.StreamImport("job-mesh-0001")
    stream.feed(chunks[0])
    stream.feed(chunks[1])
    obj = stream.obj
    assert obj is not None and stream.received == 3 and not obj["anim4d_complete"]
    bpy.context.scene.frame_set(1 + 2 * 2)  # the third frame is already playable
    assert np.allclose(evaluated_vertices(bpy, obj), y_up_to_z_up(seq.vertices[2]), atol=1e-5)
    # the connection drops here: the frames received stay; the fetched folder completes it
    stream.complete_from_folder(folder)
    assert stream.received == 10 and obj["anim4d_complete"]
    assert len(obj.data.shape_keys.key_blocks) == 10
    bpy.context.scene.frame_set(1 + 2 * 9)
    assert np.allclose(evaluated_vertices(bpy, obj), y_up_to_z_up(seq.vertices[9]), atol=1e-5)


def test_malformed_folder_is_a_clear_error_and_creates_nothing(bpy_clean, tmp_path: Path,
                                                               mesh_result: Path) -> None:
    from blender_addon.bl import importer
    from shared.errors import Anim4DError

    bpy = bpy_clean
    keep, _ = importer.import_folder(mesh_result)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "manifest.json").write_text("{not json")
    with pytest.raises(Anim4DError, match="broken"):
        importer.import_folder(tmp_path / "broken")
    (mesh_result / "sequence.npz").unlink()
    with pytest.raises(Anim4DError, match="sequence.npz"):
        importer.import_folder(mesh_result)
    assert list(bpy.data.objects) == [keep]
