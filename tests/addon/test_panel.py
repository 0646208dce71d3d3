"""The panel's draw code and the timer callback, run against a recording layout (no UI)."""

from __future__ import annotations

import queue
from types import SimpleNamespace
from unittest.mock import MagicMock

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


def _layout() -> MagicMock:
    layout = MagicMock(name="layout")
    layout.panel.return_value = (MagicMock(name="header"), MagicMock(name="body"))
    for attr in ("box", "row", "column"):
        getattr(layout, attr).return_value = layout
    return layout


@pytest.fixture
def runtime(bpy_clean, monkeypatch):
    from blender_addon.bl import kind_props, runtime

    rt = runtime.Runtime()
    monkeypatch.setattr(runtime, "RT", rt)
    for mod in ("panel", "operators"):
        monkeypatch.setattr(f"blender_addon.bl.{mod}.RT", rt, raising=False)
    yield rt
    kind_props.unregister_all()


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
    layouts = {}
    for cls in (panel.ANIM4D_PT_main, panel.ANIM4D_PT_kinds, panel.ANIM4D_PT_jobs):
        layouts[cls.__name__] = lay = _layout()
        cls.draw(SimpleNamespace(layout=lay), ctx)
    jobs = layouts["ANIM4D_PT_jobs"]
    bars = [c.kwargs["factor"] for c in jobs.progress.call_args_list]
    assert bars == [0.4, 1.0]
    ops = [c.args[0] for c in jobs.operator.call_args_list]
    assert ops == ["anim4d.cancel", "anim4d.import_result"]
    main_labels = [c.kwargs.get("text", "") for c in layouts["ANIM4D_PT_main"].label.call_args_list]
    assert any("connection refused" in t for t in main_labels)
    body = layouts["ANIM4D_PT_kinds"].panel.return_value[1]
    assert [c.args[1] for c in body.prop.call_args_list] == [
        "input_video", "steps", "lr", "fast", "mode", "note"]


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
