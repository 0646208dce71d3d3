"""``anim4d submit --wait --out`` / ``fetch`` print the notes a job left in its result."""

from __future__ import annotations

import numpy as np

from backend.cli.client_cmds import result_notes
from backend.jobs.api import JobContext, mesh_result
from shared.manifest import write_manifest
from shared.meshseq import MeshSequence


def _result(folder, extra):
    ctx = JobContext("job", folder, folder)
    verts = np.zeros((2, 3, 3), np.float32)
    verts[:, 1, 0] = verts[:, 2, 1] = 1.0
    seq = MeshSequence(verts, np.array([[0, 1, 2]]), np.array([0.0, 0.05]))
    write_manifest(folder, mesh_result(ctx, seq, "creature.sample", {}, extra=extra))


def test_notes_of_a_result_are_read_back(tmp_path):
    note = "creature 2 is still 0.0021 from training instance Horse after 8 redraws"
    _result(tmp_path, {"notes": [note]})
    assert result_notes(tmp_path) == [f"job job: {note}"]


def test_no_notes_and_no_result_give_nothing(tmp_path):
    _result(tmp_path, {})
    assert result_notes(tmp_path) == []
    assert result_notes(tmp_path / "missing") == []
