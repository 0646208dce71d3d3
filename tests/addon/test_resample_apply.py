"""Resample from backend, the apply step: a resampled result folder replaces the object's frames
at the planned scene frames (shape keys, PC2 cache, Gaussian frames), the retime goes back to
identity, and the previous state comes back on revert."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from addon_helpers import (
    evaluated_vertices,
    gaussian_sequence,
    wavy_sequence,
    write_mesh_result,
    y_up_to_z_up,
)

from shared.gaussians import GaussianSequence, write_gaussian_result
from shared.manifest import read_manifest, write_manifest
from shared.meshseq import MeshSequence

pytestmark = pytest.mark.blender
SOURCE_FIELD = {"kind": "creature.procedural_resample", "source": "", "end": None}
JOB = "ab" * 8


@pytest.fixture
def registered(bpy_clean):
    import bpy
    from bpy.props import PointerProperty

    from blender_addon.bl import panel

    bpy.utils.register_class(panel.ANIM4D_PG_retime)
    bpy.types.Object.anim4d_retime = PointerProperty(type=panel.ANIM4D_PG_retime)
    yield bpy
    del bpy.types.Object.anim4d_retime
    bpy.utils.unregister_class(panel.ANIM4D_PG_retime)


def wavy_at(times: np.ndarray, vertices: int = 40) -> np.ndarray:
    """``addon_helpers.wavy_sequence`` evaluated at any ``times``: the exact source."""
    rng = np.random.default_rng(0)
    base = rng.normal(size=(vertices, 3)).astype(np.float32)
    wave = np.sin(2.0 * np.asarray(times)[:, None, None] + base[None, :, :1] * 3.0)
    return (base[None] + 0.3 * wave * np.array([0.2, 1.0, 0.5], np.float32)).astype(np.float32)


def resampled_folder(tmp_path: Path, times: np.ndarray) -> Path:
    """What the backend returns for ``times``: the source evaluated there."""
    ref = wavy_sequence()
    seq = MeshSequence(wavy_at(times), ref.faces, times - times[0], ref.uvs, ref.colors)
    return write_mesh_result(tmp_path / "resampled", seq=seq, job_id=JOB,
                             kind="creature.procedural_resample")


def imported(bpy, tmp_path: Path, storage: str):
    from blender_addon.bl import importer

    folder = write_mesh_result(tmp_path / "src", frames=12, vertices=40, fps=12.0)
    m = read_manifest(folder)
    m.resample = dict(SOURCE_FIELD)
    write_manifest(folder, m)
    obj, _ = importer.import_folder(folder, storage=storage)
    return obj


@pytest.mark.parametrize("storage", ["SHAPE_KEYS", "PC2"])
def test_quarter_speed_frames_replaced_and_reverted(registered, tmp_path, storage):
    from blender_addon.bl import resample, retime, timecurve
    from blender_addon.bl.resample_ops import finish_event
    from blender_addon.core.retime_plan import RetimeSettings

    bpy = registered
    scene = bpy.context.scene
    obj = imported(bpy, tmp_path, storage)  # 12 samples at 12 fps on frames 1, 3, ..., 23
    assert np.array_equal(wavy_at(np.arange(12) / 12.0), wavy_sequence().vertices)
    obj.anim4d_retime.speed = 0.25  # the panel's property: rewrites the curve
    assert retime.current_settings(obj).speed == 0.25
    before = {}
    for f in (1, 6, 50, 89):
        scene.frame_set(f)
        before[f] = evaluated_vertices(bpy, obj)
    rp = resample.make_plan(obj)
    assert rp.scene_frames.tolist() == list(range(1, 90))  # 22 frames slowed 4x: 88 + 1
    assert rp.source_times == pytest.approx((rp.scene_frames - 1) / 24 * 0.25)
    folder = resampled_folder(tmp_path, rp.request)
    notice = finish_event(JOB, {"folder": folder, "context": {"object": obj.name,
                                                              "plan": rp.to_json()}})
    assert "89 exact frames (scene frames 1-89)" in notice
    worst, keyed = 0.0, 0.0
    for f in (1, 6, 50, 89):
        scene.frame_set(f)
        exact = y_up_to_z_up(wavy_at(np.array([(f - 1) / 24 * 0.25]))[0])
        worst = max(worst, np.abs(evaluated_vertices(bpy, obj) - exact).max())
        keyed = max(keyed, np.abs(before[f] - exact).max())
    assert worst <= 1e-5  # float32 shape keys of the exact frames
    assert keyed > 5e-4  # measured 9.7e-4: the stored frames blended, not the source
    # the retime is identity again: keys on the scene frames, settings at their defaults
    assert retime.current_settings(obj) == RetimeSettings()
    assert obj.anim4d_retime.speed == 1.0
    frames, _ = timecurve.read_keys(timecurve.find_fcurve(obj))
    assert frames.tolist() == list(range(1, 90))
    field = json.loads(obj["anim4d_resample"])
    assert field["source"] == "job-mesh-0001" and len(field["times"]) == 89
    assert obj["anim4d_job_id"] == JOB
    # revert: the previous frames, curve and settings
    resample.restore_previous(obj)
    assert retime.current_settings(obj).speed == 0.25 and obj.anim4d_retime.speed == 0.25
    assert resample.PREV not in obj and obj["anim4d_job_id"] == "job-mesh-0001"
    for f, v in before.items():
        scene.frame_set(f)
        assert np.abs(evaluated_vertices(bpy, obj) - v).max() <= 1e-6, f
    if storage == "SHAPE_KEYS":
        assert len(obj.data.shape_keys.key_blocks) == 12
        assert not [m for m in bpy.data.meshes if m.name.endswith(".pre_resample")]
    with pytest.raises(Exception, match="no resample to undo"):
        resample.restore_previous(obj)


def test_gaussian_frames_replaced(registered, tmp_path):
    from blender_addon.bl import gn_gaussians, importer, resample, retime, timecurve
    from blender_addon.core.retime_plan import RetimeSettings

    bpy = registered
    src = tmp_path / "g"
    seq = gaussian_sequence(3, 50)  # frames at 0, 1/8, 2/8 s: scene frames 1, 4, 7
    write_gaussian_result(src, seq, kind="video.to4d", job_id="cd" * 8, fps=8.0,
                          extra={"gaussians_correspond": True})
    m = read_manifest(src)
    m.resample = {"kind": "video.resample", "source": "", "end": 0.25}
    write_manifest(src, m)
    obj, _ = importer.import_folder(src)
    retime.apply_retime(obj, RetimeSettings(reverse=True))  # as a script would, not the panel
    rp = resample.make_plan(obj)
    assert rp.scene_frames.tolist() == list(range(1, 8))
    assert rp.source_times == pytest.approx((7 - rp.scene_frames) / 24)
    frames = [seq.frames[0]] * len(rp.request)  # stand-in frames: one per requested time
    write_gaussian_result(tmp_path / "r", GaussianSequence(frames, rp.request - rp.request[0]),
                          kind="video.resample", job_id=JOB, fps=8.0,
                          extra={"gaussians_correspond": True})
    mats, trees = len(bpy.data.materials), len(bpy.data.node_groups)
    resample.apply_result(obj, tmp_path / "r", rp, JOB)
    assert retime.current_settings(obj).reverse is False
    keys = timecurve.read_keys(timecurve.find_fcurve(obj))
    assert keys[0].tolist() == list(range(1, 8)) and keys[1].tolist() == list(range(7))
    assert len(obj.data.vertices) == 7 * 50  # 7 frames of 50 splats, the importer's layout
    mod = obj.modifiers["Anim4D Gaussians"]
    frames_input = gn_gaussians.input_identifier(mod.node_group, "Frames")
    assert mod[frames_input] == 7
    assert len(bpy.data.materials) == mats and len(bpy.data.node_groups) == trees
    resample.restore_previous(obj)
    assert len(obj.data.vertices) == 3 * 50 and retime.current_settings(obj).reverse
    assert timecurve.read_keys(timecurve.find_fcurve(obj))[1].tolist() == [2.0, 1.0, 0.0]
    assert mod[frames_input] == 3


def test_panel_offers_resample_when_connected_and_offered(registered, tmp_path, monkeypatch):
    from types import SimpleNamespace

    from fake_layout import FakeLayout

    from blender_addon.bl import operators, panel, resample, resample_ops, runtime
    from blender_addon.core.client_types import HelloInfo
    from blender_addon.core.worker import Event
    from shared.params import KindSpec

    bpy = registered
    rt = runtime.Runtime()
    monkeypatch.setattr(resample_ops, "RT", rt)
    classes = (*operators.CLASSES, *resample_ops.CLASSES)
    for cls in classes:
        bpy.utils.register_class(cls)
    try:
        obj = imported(bpy, tmp_path, "SHAPE_KEYS")
        ctx = SimpleNamespace(scene=bpy.context.scene, active_object=obj)

        def buttons() -> list[str]:
            layout = FakeLayout()
            panel.ANIM4D_PT_retime.draw(SimpleNamespace(layout=layout), ctx)
            return [c.args["operator"] for c in layout.find("operator")]

        assert buttons() == ["anim4d.retime"]  # not connected
        offered = KindSpec(SOURCE_FIELD["kind"], "r", "", "mesh_sequence")
        rt.state.apply(Event("hello", data=HelloInfo("x", "1.1", [], {})))
        assert buttons() == ["anim4d.retime"]  # connected, kind not offered
        rt.state.apply(Event("hello", data=HelloInfo("x", "1.1", [offered], {})))
        assert buttons() == ["anim4d.retime", "anim4d.resample"]
        assert resample_ops.ANIM4D_OT_resample.poll(ctx)
        obj[resample.PREV] = "{}"
        assert buttons()[-1] == "anim4d.resample_revert"
        obj["anim4d_resample"] = ""  # a result that cannot be re-evaluated
        assert buttons() == ["anim4d.retime", "anim4d.resample_revert"]
    finally:
        for cls in reversed(classes):
            bpy.utils.unregister_class(cls)


def test_operator_end_to_end_in_background(registered, tmp_path, monkeypatch):
    """The operator against a real backend (background mode runs it synchronously): the frames
    at quarter speed are the procedural creature posed at those times."""
    from types import SimpleNamespace

    from backend.data import jobs as data_jobs
    from backend.data import resample_jobs
    from backend.data.procedural import animate, make_creature
    from backend.jobs.registry import JobKind
    from backend.server.embedded import EmbeddedServer
    from blender_addon.bl import importer, prefs, resample_ops, retime, runtime
    from blender_addon.core.client import Client

    bpy = registered
    kinds = {k.name: JobKind(k, f"backend.data.{m}:{fn}") for k, m, fn in (
        (data_jobs.PROCEDURAL_KIND, "jobs", "run_procedural"),
        (resample_jobs.PROCEDURAL_RESAMPLE_KIND, "resample_jobs", "run_procedural_resample"))}
    srv = EmbeddedServer(tmp_path / "data", kinds=kinds)
    rt = runtime.Runtime()
    monkeypatch.setattr(resample_ops, "RT", rt)
    monkeypatch.setattr(prefs, "get", lambda: SimpleNamespace(
        address=srv.address, timeout=120.0, server_key="", client_key="",
        results_dir=str(tmp_path / "results"), storage="AUTO", import_when_done=False))
    bpy.utils.register_class(resample_ops.ANIM4D_OT_resample)
    try:
        with Client(srv.address, timeout=120) as c:
            job = c.submit(data_jobs.PROCEDURAL_KIND.name, {"seed": 4, "frames": 12, "fps": 24})
            assert c.wait(job).state == "done"
            folder = c.fetch(job, tmp_path / "src")
        obj, _ = importer.import_folder(folder)
        assert json.loads(obj["anim4d_resample"])["kind"] == resample_jobs.PROCEDURAL_RESAMPLE
        bpy.context.view_layer.objects.active = obj
        obj.anim4d_retime.speed = 0.25
        assert not bpy.ops.anim4d.resample.poll()  # not connected yet
        rt.run("hello")
        assert bpy.ops.anim4d.resample() == {"FINISHED"}, rt.state.last_error
        assert retime.current_settings(obj).speed == 1.0
        creature, scene = make_creature(4), bpy.context.scene
        for f in (1, 7, 45):
            scene.frame_set(f)
            exact = y_up_to_z_up(animate(creature, "walk", np.array([(f - 1) / 96]))[0])
            assert np.abs(evaluated_vertices(bpy, obj) - exact).max() <= 1e-5, f
        assert len(obj.data.shape_keys.key_blocks) == 45
    finally:
        bpy.utils.unregister_class(resample_ops.ANIM4D_OT_resample)
        rt.shutdown()
        srv.stop()
