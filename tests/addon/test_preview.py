"""A running job's preview event becomes a scrubbable object, replaced by newer previews only."""

from __future__ import annotations

import numpy as np
import pytest

from blender_addon.core.client_types import PreviewInfo, ServerError
from blender_addon.core.preview import is_newer, preview_name


def _preview(step: int, shift: float, n: int = 40, k: int = 3, job: str = "ab" * 16):
    rng = np.random.default_rng(0)
    means = rng.normal(size=(n, 3)).astype(np.float32) * 0.3
    content = {"stage": "dynamic", "step": step, "steps": 100, "times": [0.0, 0.5, 1.0][:k]}
    arrays = {
        "means": np.stack([means + [shift * i, 0, 0] for i in range(k)]).astype(np.float32),
        "quats": np.tile(np.float32([1, 0, 0, 0]), (k, n, 1)),
        "log_scales": np.full((k, n, 3), -3.0, np.float32),
        "opacity_logits": np.full(n, 2.0, np.float32),
        "sh_dc": np.zeros((n, 3), np.float32),
    }
    return PreviewInfo.from_message(job, content, arrays)


def test_preview_info_checks_shapes_and_orders():
    p = _preview(6, 0.1)
    assert p.count == 40 and p.frame(2)["means"].shape == (40, 3)
    assert is_newer(p, None) and is_newer(p, 3) and not is_newer(p, 6)
    bad = dict(p.arrays, quats=p.arrays["quats"][:, :5])
    with pytest.raises(ServerError, match="quats has shape"):
        PreviewInfo.from_message("j", {"stage": "s", "step": 1, "times": p.times}, bad)
    assert preview_name("0123456789abcdef") == "Anim4D_preview_01234567"


@pytest.mark.blender
def test_preview_object_plays_the_times_and_follows_newer_previews(bpy_clean):
    from blender_addon.bl.preview import update_preview_object

    bpy = bpy_clean
    obj = update_preview_object(_preview(3, 0.5))
    assert obj.name == preview_name("ab" * 16) and obj["anim4d_preview_step"] == 3
    mesh = obj.data
    assert len(mesh.vertices) == 3 * 40  # every time's splats, played by the GN player

    def centre_x(frame: float) -> float:
        bpy.context.scene.frame_set(int(frame))
        dg = bpy.context.evaluated_depsgraph_get()
        geo = bpy.types.GeometrySet.from_evaluated_object(obj.evaluated_get(dg))
        pc = geo.instances_pointcloud()
        mats = np.empty(len(pc.points) * 16, np.float32)
        pc.attributes["instance_transform"].data.foreach_get("value", mats)
        return float(mats.reshape(-1, 4, 4)[:, 3, 0].mean())

    fps = bpy.context.scene.render.fps
    first, last = centre_x(1), centre_x(1 + fps)  # times 0 and 1 s
    assert last - first == pytest.approx(1.0, abs=1e-3)  # +X stays +X in Blender
    newer = update_preview_object(_preview(9, 0.25))
    assert newer.name == preview_name("ab" * 16) and newer["anim4d_preview_step"] == 9
    assert len([o for o in bpy.data.objects if o.name.startswith("Anim4D_preview")]) == 1
    stale = update_preview_object(_preview(6, 0.9))  # an older preview changes nothing
    assert stale["anim4d_preview_step"] == 9
