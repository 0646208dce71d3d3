"""A creature.blend morph imports as shape keys driven by one slider (an object property)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from addon_helpers import evaluated_vertices, wavy_sequence, y_up_to_z_up

from backend.jobs.api import JobContext, mesh_sequences_result
from blender_addon.core import import_plan as plan
from shared.manifest import write_manifest


def _blend_result(folder: Path, frames: int = 5, extra: dict | None = None):
    folder.mkdir(parents=True)
    seq = wavy_sequence(frames, 30, fps=10.0)
    ctx = JobContext(job_id="0123456789abcdef0123456789abcdef", out_dir=folder, work_dir=folder)
    values = np.linspace(0, 1, frames).tolist()
    man = mesh_sequences_result(ctx, [seq], "creature.blend", {"mode": "morph"},
                                extra=extra if extra is not None else
                                {"shape_keys": {"property": "dnf_blend", "values": values}})
    write_manifest(folder, man)
    return folder, seq, man


def test_plan_reads_the_slider_and_refuses_what_it_cannot_drive(tmp_path):
    _, _, man = _blend_result(tmp_path / "a")
    s = plan.blend_slider(man)
    assert s == plan.BlendSlider("dnf_blend", "dnf_blend * 40", 5)
    m = man.to_json()
    m["extra"]["shape_keys"]["values"] = [0, 0.1, 0.5, 0.9, 1.0]  # not an even ramp
    assert plan.blend_slider(m) is None
    m["extra"] = {}
    assert plan.blend_slider(m) is None


@pytest.mark.blender
def test_blend_imports_as_shape_keys_driven_by_one_slider(bpy_clean, tmp_path):
    from blender_addon.bl import importer

    bpy = bpy_clean
    folder, seq, _ = _blend_result(tmp_path / "r")
    objs, notices = importer.import_result(folder, storage="PC2")  # a blend ignores PC2
    obj = objs[0]
    assert "dnf_blend" in obj.keys() and any("dnf_blend" in n for n in notices)
    key = obj.data.shape_keys
    assert len(key.key_blocks) == 5
    for value, frame in ((0.0, 0), (0.5, 2), (1.0, 4)):
        obj["dnf_blend"] = value
        obj.update_tag()  # what the UI does when the artist drags the slider
        bpy.context.scene.frame_set(1 + frame)  # the scene's time must not matter
        bpy.context.scene.frame_set(7)
        got = evaluated_vertices(bpy, obj)
        assert np.abs(got - y_up_to_z_up(seq.vertices[frame])).max() < 1e-5, value
    obj["dnf_blend"] = 0.125  # halfway between keys 0 and 1
    obj.update_tag()
    bpy.context.scene.frame_set(3)
    got = evaluated_vertices(bpy, obj)
    want = y_up_to_z_up(0.5 * (seq.vertices[0] + seq.vertices[1]))
    assert np.abs(got - want).max() < 1e-5
