"""A .ply written by shared.gsply loads in Blender's own PLY importer with every splat attribute."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shared.gsply import gsply_property_names, write_gsply


@pytest.mark.blender
def test_blender_ply_importer_reads_our_file(tmp_path: Path, make_frame) -> None:
    bpy = pytest.importorskip("bpy", reason="needs the bpy module (pip install bpy==5.0.1)")
    frame = make_frame(300, 1, seed=11)
    path = write_gsply(tmp_path / "splats.ply", frame)

    bpy.ops.wm.read_factory_settings(use_empty=True)
    assert bpy.ops.wm.ply_import(filepath=str(path)) == {"FINISHED"}
    (obj,) = bpy.data.objects
    mesh = obj.data
    assert obj.type == "MESH" and len(mesh.vertices) == 300 and len(mesh.polygons) == 0

    names = {a.name for a in mesh.attributes}
    splat_names = [n for n in gsply_property_names(1) if n not in ("x", "y", "z", "nx", "ny", "nz")]
    assert {"f_dc_0", "f_rest_8", "opacity", "scale_0", "rot_0", "rot_3"} <= set(splat_names)
    missing = [n for n in splat_names if n not in names]
    assert not missing, f"attributes lost by the importer: {missing}"
    assert all(mesh.attributes[n].domain == "POINT" for n in splat_names)

    pos = np.empty(300 * 3, np.float32)
    mesh.attributes["position"].data.foreach_get("vector", pos)
    assert np.array_equal(pos.reshape(-1, 3), frame.means)  # x y z become positions, unchanged
    for name, expected in (("opacity", frame.opacity_logits), ("rot_0", frame.quats[:, 0]),
                           ("f_rest_4", frame.sh_rest[:, 1, 1])):  # channel-major: 1 * K + 1
        got = np.empty(300, np.float32)
        mesh.attributes[name].data.foreach_get("value", got)
        assert np.array_equal(got, expected), name
