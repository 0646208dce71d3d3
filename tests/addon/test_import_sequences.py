"""Protocol 1.1 results in Blender: several sequences become several objects; a video imports
nothing, with a notice; the panel's fields for the ``job`` and ``floats`` parameter types."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from addon_helpers import evaluated_vertices, wavy_sequence, y_up_to_z_up

from backend.jobs.api import JobContext, mesh_sequences_result
from shared.manifest import Manifest, read_manifest, write_manifest
from shared.meshseq import MeshSequence, load_npz
from shared.params import KindSpec, ParamSpec
from shared.stream import ResultReader

pytestmark = pytest.mark.blender


def _two_sequences(folder: Path, notes: list[str] | None = None) -> Path:
    """A result with two sequences of different topology, written as a job method writes it
    (with ``notes`` for the artist in its manifest when given)."""
    folder.mkdir(parents=True)
    a = wavy_sequence(6, 40, fps=12.0)
    b0 = wavy_sequence(6, 25, fps=12.0)
    b = MeshSequence(b0.vertices * np.float32(0.5) + np.float32([2.0, 0.3, -1.0]),
                     b0.faces[::-1].copy(), b0.times, name="second")
    ctx = JobContext(job_id="0123456789abcdef0123456789abcdef", out_dir=folder, work_dir=folder)
    manifest = mesh_sequences_result(ctx, [a, b], "debug.resample", {"times": [0.0]},
                                     extra={"notes": notes} if notes else None)
    write_manifest(folder, manifest)
    return folder


def test_a_results_notes_reach_the_artist(bpy_clean, tmp_path: Path) -> None:
    from blender_addon.bl import importer

    note = "creature 2 is still 0.0021 from training instance Horse after 8 redraws"
    objs, notices = importer.import_result(_two_sequences(tmp_path / "r", [note]))
    assert len(objs) == 2 and notices == [f"job 01234567: {note}"]


def _check_every_frame(bpy, obj, seq: MeshSequence) -> None:
    tol = 1e-5 * seq.bbox_diagonal()
    for i, t in enumerate(seq.times):
        frame = 1 + t * 24  # 12 fps source on a 24 fps scene: samples on odd frames
        bpy.context.scene.frame_set(int(frame))
        got = evaluated_vertices(bpy, obj)
        assert got.shape == (seq.vertex_count, 3)
        assert np.abs(got - y_up_to_z_up(seq.vertices[i])).max() <= tol, (obj.name, i)


def test_two_sequences_import_as_two_objects(bpy_clean, tmp_path: Path) -> None:
    from blender_addon.bl import importer

    bpy = bpy_clean
    folder = _two_sequences(tmp_path / "r")
    manifest = read_manifest(folder)
    assert manifest.files["sequences"] == ["sequence.npz", "sequence_1.npz"]
    seqs = [load_npz(folder / name) for name in manifest.files["sequences"]]
    assert [s.vertex_count for s in seqs] == [40, 25]
    objs, notices = importer.import_result(folder)
    assert notices == [] and len(objs) == 2 and list(bpy.data.objects) == objs
    assert objs[0].name != objs[1].name
    assert [o["anim4d_sequence"] for o in objs] == [0, 1]
    for obj, seq in zip(objs, seqs, strict=True):
        assert len(obj.data.polygons) == len(seq.faces)
        _check_every_frame(bpy, obj, seq)


def test_streamed_result_with_two_sequences_completes_both(bpy_clean, tmp_path: Path) -> None:
    from blender_addon.bl import importer

    bpy = bpy_clean
    folder = _two_sequences(tmp_path / "r")
    chunks = list(ResultReader(folder, chunk_bytes=40 * 12 * 2))  # 2 frames per chunk
    # the second sequence travels as a file, in pieces of chunk_bytes
    assert {c.content["path"] for c in chunks if c.part == "file"} == {"sequence_1.npz"}
    stream = importer.StreamImport("0123456789abcdef")
    for chunk in chunks:
        stream.feed(chunk)
    assert stream.received == 6 and len(bpy.data.objects) == 1
    first = stream.complete_from_folder(folder)
    assert stream.objects[0] == first and len(stream.objects) == 2
    second = load_npz(folder / "sequence_1.npz")
    _check_every_frame(bpy, stream.objects[1], second)
    _check_every_frame(bpy, first, load_npz(folder / "sequence.npz"))


def _video_folder(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "render.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(100))
    write_manifest(folder, Manifest(
        kind="render.video", representation="video", frame_times=[0.0, 0.5], fps=2.0,
        files={"video": "render.mp4"}, job_id="feedfacefeedface"))
    return folder


def test_a_video_result_imports_nothing_and_says_so(bpy_clean, tmp_path: Path) -> None:
    from blender_addon.bl import importer
    from shared.errors import FormatError

    bpy = bpy_clean
    folder = _video_folder(tmp_path / "v")
    objs, notices = importer.import_result(folder)
    assert objs == [] and len(notices) == 1
    assert "video" in notices[0] and str(folder / "render.mp4") in notices[0]
    with pytest.raises(FormatError, match="render.mp4"):
        importer.import_folder(folder)
    stream = importer.StreamImport("feedfacefeedface")
    for chunk in ResultReader(folder):
        stream.feed(chunk)
    assert stream.complete_from_folder(folder) is None
    assert stream.objects == [] and "render.mp4" in stream.notices[0]
    assert len(bpy.data.objects) == 0


def test_job_and_floats_parameters_are_text_fields(bpy_clean) -> None:
    from blender_addon.bl import kind_props

    bpy = bpy_clean
    kind = KindSpec(
        name="debug.resample_panel", title="Resample", description="", section="Debug",
        representation="mesh_sequence",
        params=(ParamSpec("source", "job", "", "the source job"),
                ParamSpec("times", "floats", (0.0, 0.5, 1.0), "times", 0.0, 10.0, max_items=8)))
    try:
        kind_props.ensure([kind])
        grp = kind_props.group(bpy.context.scene, kind.name)
        assert grp.source == "" and grp.times == "0,0.5,1"
        grp.source, grp.times = "ABCDEF12", "0, 0.25,2"
        params, _ = kind_props.values(bpy.context.scene, kind)
        assert kind.validate_params(params) == {"source": "abcdef12", "times": [0.0, 0.25, 2.0]}
        grp.times = "0,11"
        with pytest.raises(Exception, match=r"element 1 = '11' is out of range"):
            kind.validate_params(kind_props.values(bpy.context.scene, kind)[0])
    finally:
        kind_props.unregister_all()


def test_a_job_parameter_can_be_picked_from_the_finished_jobs(bpy_clean, monkeypatch) -> None:
    from types import SimpleNamespace
    from unittest.mock import MagicMock

    from blender_addon.bl import kind_props, operators, panel, runtime
    from blender_addon.core.client_types import HelloInfo, JobInfo
    from blender_addon.core.worker import Event

    bpy = bpy_clean
    rt = runtime.Runtime()
    for mod in (runtime, operators, panel):
        monkeypatch.setattr(mod, "RT", rt)
    kind = KindSpec(name="debug.resample_pick", title="Resample", description="",
                    representation="mesh_sequence", params=(ParamSpec("source", "job", ""),))
    done, other = "a1" * 16, "b2" * 16
    rt.handle(Event("hello", data=HelloInfo("0.1.0", "1.1", [kind], {})))
    rt.handle(Event("jobs", data=[JobInfo(done, "debug.sleep", "done"),
                                  JobInfo(other, "debug.sleep", "running"),
                                  JobInfo("c3" * 16, "debug.fail", "failed")]))
    bpy.utils.register_class(operators.ANIM4D_OT_pick_job)
    try:
        items = operators.finished_job_items(None, bpy.context)
        assert [i[0] for i in items] == [done]  # only finished jobs are offered
        assert bpy.ops.anim4d.pick_job(kind=kind.name, param="source", job_id=done) == {"FINISHED"}
        assert kind_props.group(bpy.context.scene, kind.name).source == done
        with pytest.raises(TypeError):  # a running job is not among the choices
            bpy.ops.anim4d.pick_job(kind=kind.name, param="source", job_id=other)
        layout = MagicMock(name="layout")
        body = MagicMock(name="body")
        layout.panel.return_value = (MagicMock(name="header"), body)
        panel.ANIM4D_PT_kinds.draw(SimpleNamespace(layout=layout),
                                   SimpleNamespace(scene=bpy.context.scene))
        row = body.row.return_value
        row.prop.assert_called_once_with(kind_props.group(bpy.context.scene, kind.name), "source")
        assert row.operator_menu_enum.call_args.args == ("anim4d.pick_job", "job_id")
        pick = row.operator_menu_enum.return_value
        assert (pick.kind, pick.param) == (kind.name, "source")
    finally:
        bpy.utils.unregister_class(operators.ANIM4D_OT_pick_job)
        kind_props.unregister_all()
