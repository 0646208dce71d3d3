"""The panel's draw code and the timer callback, run against a recording layout (no UI).

The layout (``fake_layout.FakeLayout``) checks every call against Blender's RNA: a property the
panel draws must exist on its data, an operator property it sets must exist on the operator.
"""

from __future__ import annotations

import queue
from types import SimpleNamespace

import pytest

from blender_addon.core.client_types import HelloInfo, JobInfo, ProgressInfo
from blender_addon.core.worker import Event
from shared.params import InputSpec, KindSpec, ParamSpec

pytestmark = pytest.mark.blender

KIND = KindSpec(
    name="video.test", title="Video to 4D", description="Turns a clip into a 4D creature.",
    representation="gaussian_sequence",
    params=(ParamSpec("steps", "int", 100, "iterations", 1, 10000),
            ParamSpec("lr", "float", 0.01, "learning rate", 0.0, 1.0),
            ParamSpec("fast", "bool", False), ParamSpec("mode", "enum", "ga", choices=("ga", "da")),
            ParamSpec("note", "str", "")),
    inputs=(InputSpec("video", (".mp4", ".png"), "clip or frames", multiple=True),),
)


@pytest.fixture
def runtime(bpy_clean, monkeypatch):
    """A fresh runtime, with the operators and the retime property registered (as enabled)."""
    import bpy
    from bpy.props import PointerProperty

    from blender_addon.bl import kind_props, operators, panel, runtime

    rt = runtime.Runtime()
    monkeypatch.setattr(runtime, "RT", rt)
    for mod in ("panel", "operators"):
        monkeypatch.setattr(f"blender_addon.bl.{mod}.RT", rt, raising=False)
    classes = (*operators.CLASSES, panel.ANIM4D_PG_retime)
    for cls in classes:
        bpy.utils.register_class(cls)
    bpy.types.Object.anim4d_retime = PointerProperty(type=panel.ANIM4D_PG_retime)
    yield rt
    kind_props.unregister_all()
    del bpy.types.Object.anim4d_retime
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)


def _draw(method, context):
    """Run a panel's ``draw`` (or ``draw_header_preset``) on a fresh recording layout."""
    from fake_layout import FakeLayout

    layout = FakeLayout()
    method(SimpleNamespace(layout=layout), context)
    return layout


def test_panels_draw_connection_kinds_and_jobs(runtime, tmp_path) -> None:
    import bpy

    from blender_addon.bl import kind_props, panel

    runtime.handle(Event("hello", data=HelloInfo("0.1.0", "1.0", [KIND], {})))
    grp = kind_props.group(bpy.context.scene, "video.test")
    assert grp.steps == 100 and grp.mode == "ga" and grp.lr == pytest.approx(0.01)
    frames = tmp_path / "frames"
    frames.mkdir()
    for name in ("b.png", "a.png", "notes.txt"):
        (frames / name).write_bytes(b"x")
    grp.input_video = str(frames)
    params, inputs = kind_props.values(bpy.context.scene, KIND)
    assert params["steps"] == 100 and [p.rsplit("/", 1)[1] for p in inputs] == ["a.png", "b.png"]

    runtime.handle(Event("submitted", "j1", {"kind": "video.test"}))
    runtime.handle(Event("progress", "j1", ProgressInfo("j1", "running", "fitting", 0.4)))
    runtime.handle(Event("jobs", data=[JobInfo("j2", "video.test", "done", fraction=1.0)]))
    runtime.state.last_error = "tcp://127.0.0.1:5555: connection refused"
    ctx = SimpleNamespace(scene=bpy.context.scene, active_object=None)
    main = _draw(panel.ANIM4D_PT_main.draw, ctx)
    kinds = _draw(panel.ANIM4D_PT_kinds.draw, ctx)
    jobs = _draw(panel.ANIM4D_PT_jobs.draw, ctx)
    preset = _draw(panel.ANIM4D_PT_jobs.draw_header_preset, ctx)
    assert [c.args["factor"] for c in jobs.find("progress")] == [0.4, 1.0]
    ops = [(c.args["operator"], c.result.values) for c in jobs.find("operator")]
    assert ops == [("anim4d.cancel", {"job_id": "j1"}), ("anim4d.import_result", {"job_id": "j2"})]
    assert [c.args["operator"] for c in preset.find("operator")] == ["anim4d.refresh"]
    assert any("connection refused" in c.args.get("text", "") for c in main.find("label"))
    assert [c.result.values for c in main.find("operator")] == [{}, {"directory": ""}]
    drawn = [(c.args["data"], c.args["property"]) for c in kinds.find("prop")]
    assert drawn == [(grp, n) for n in ("input_video", "steps", "lr", "fast", "mode", "note")]
    assert [c.args["operator"] for c in kinds.find("operator")] == ["anim4d.submit"]


def test_retime_panel_draws_the_object_settings(runtime) -> None:
    import bpy

    from blender_addon.bl import panel

    obj = bpy.data.objects.new("imported", bpy.data.meshes.new("imported"))
    bpy.context.scene.collection.objects.link(obj)
    ctx = SimpleNamespace(scene=bpy.context.scene, active_object=obj)
    assert not panel.ANIM4D_PT_retime.poll(ctx)  # only for imported objects
    obj["anim4d_time_kind"], obj["anim4d_base_frames"] = "GN", [1.0, 4.0]
    assert panel.ANIM4D_PT_retime.poll(ctx)
    lay = _draw(panel.ANIM4D_PT_retime.draw, ctx)
    assert lay.attrs == {"use_property_split": True}
    assert [(c.args["data"], c.args["property"]) for c in lay.find("prop")] == [
        (obj.anim4d_retime, n) for n in ("speed", "use_start", "start", "offset", "repeat",
                                         "reverse", "ease")]
    assert [c.args["operator"] for c in lay.find("operator")] == ["anim4d.retime"]


def test_the_fake_layout_refuses_what_blender_would(runtime) -> None:
    """The checks the panel tests rely on, each shown to fire."""
    import bpy
    from fake_layout import FakeLayout

    lay = FakeLayout()
    obj = bpy.data.objects.new("o", None)
    with pytest.raises(AssertionError, match="no property 'sped'"):
        lay.prop(obj.anim4d_retime, "sped")
    with pytest.raises(AssertionError, match="no property 'jobid'"):
        lay.row().operator("anim4d.cancel").jobid = "x"
    with pytest.raises(AssertionError, match="not registered"):
        lay.operator("anim4d.nothing")
    with pytest.raises(AssertionError, match="icon"):
        lay.label(text="x", icon="NO_SUCH_ICON")
    with pytest.raises(AssertionError, match="no function"):
        lay.lable(text="x")
    with pytest.raises(AssertionError, match="unexpected argument"):
        lay.progress(fraction=0.5)
    with pytest.raises(AssertionError, match="writable property"):
        lay.alrt = True
    header, body = lay.panel("x", default_closed=True)
    body.prop(obj, "name")
    assert [c.name for c in lay.calls] == ["row", "operator", "panel", "prop"]


def test_timer_tick_drains_a_little_and_keeps_going(runtime, monkeypatch) -> None:
    from blender_addon.bl import runtime as runtime_mod

    fake_worker = SimpleNamespace(events=queue.Queue(), active={"j1"})
    for i in range(200):
        fake_worker.events.put(Event("progress", "j1",
                                     ProgressInfo("j1", "running", "step", i / 200)))
    runtime.worker = fake_worker
    monkeypatch.setattr(runtime_mod, "TICK_BUDGET_S", 0.0)  # one event per tick
    assert runtime_mod.tick() == runtime_mod.TICK_INTERVAL_S
    assert fake_worker.events.qsize() == 199 and runtime.state.jobs["j1"].fraction == 0.0
    monkeypatch.setattr(runtime_mod, "TICK_BUDGET_S", 1.0)
    runtime_mod.tick()
    assert fake_worker.events.empty() and runtime.state.jobs["j1"].fraction == 199 / 200
    fake_worker.active = set()
    assert runtime_mod.tick() == runtime_mod.IDLE_INTERVAL_S
