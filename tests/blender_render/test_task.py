"""Render options, output names, subprocess events and folder checks (bpy-free)."""

from __future__ import annotations

from pathlib import Path

import pytest
from blender_render_helpers import write_mesh_result

from backend.blender_render.options import RenderOptions, parse_frames
from backend.blender_render.run import plan_tasks
from backend.blender_render.task import (
    RenderTask,
    encode_event,
    parse_event,
    result_names,
)
from shared.errors import ParamError


def test_options_round_trip_and_refuse_bad_values():
    opts = RenderOptions(resolution=64, samples=2, frames=(3, 9), camera="turntable",
                         transparent=True, grid=True, device="auto")
    assert RenderOptions.from_dict(opts.to_dict()) == opts
    task = RenderTask(["/a"], "a", "/out", opts)
    assert RenderTask.from_json(task.to_json()) == task
    for bad, match in [({"resolution": 4}, "resolution 4"), ({"camera": "orbit"}, "orbit"),
                       ({"device": "tpu"}, "tpu"), ({"frames": (5, 2)}, "frames 5:2"),
                       ({"fps": -1.0}, "fps -1")]:
        with pytest.raises(ParamError, match=match):
            RenderOptions(**bad)
    with pytest.raises(ParamError, match="unknown"):
        RenderOptions.from_dict({"colour": "red"})


def test_parse_frames():
    assert parse_frames(None) is None and parse_frames("") is None
    assert parse_frames("1:48") == (1, 48) and parse_frames("7") == (7, 7)
    for bad in ("a:b", "0:4", "9:3", "5:"):
        with pytest.raises(ParamError, match="--frames"):
            parse_frames(bad)


def test_names_are_distinct_and_safe():
    names = result_names([Path("/x/walk"), Path("/y/walk"), Path("/z/my result!"), Path("/w/")])
    assert names[:3] == ["walk", "walk_2", "my_result"]
    assert names[3] and "/" not in names[3]


def test_events_are_found_among_blenders_own_output():
    line = encode_event("frame", done=3, total=12)
    assert parse_event(line + "\n") == {"event": "frame", "done": 3, "total": 12}
    assert parse_event("Fra:3 Mem:12.00M | Rendering") is None
    assert parse_event("@anim4d-render {broken") is None


def test_broken_folders_fail_alone_with_their_name(tmp_path):
    good = write_mesh_result(tmp_path / "good", frames=3, vertices=10)
    video = tmp_path / "clip"
    write_mesh_result(video, frames=3, vertices=10)
    manifest = (video / "manifest.json").read_text().replace('"mesh_sequence"', '"video"')
    (video / "manifest.json").write_text(manifest.replace('"files": {', '"files": {"video": '
                                                          '"c.mp4", '))
    folders = [good, tmp_path / "missing", tmp_path, video]
    tasks, failed = plan_tasks(folders, tmp_path / "out", RenderOptions())
    assert [t.name for t in tasks] == ["good"]
    errors = {o.name: o.error for o in failed}
    assert "no such folder" in errors["missing"]
    assert "not a result folder" in errors[tmp_path.name]
    assert "already a video" in errors["clip"]
    grid, _ = plan_tasks([good, good], tmp_path / "out", RenderOptions(grid=True))
    assert len(grid) == 1 and grid[0].name == "grid" and len(grid[0].inputs) == 2
