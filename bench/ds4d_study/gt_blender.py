"""Ground truth in Blender (run inside a ``bpy`` subprocess): a walking animal from a glTF file,
scaled to a unit cube and centred (the STAG4D set-up), rendered with Cycles on a transparent film
from an input camera and orbit cameras; RGBA PNG sequences per view and the views' cameras file.

Run: ``python -m bench.ds4d_study.gt_blender SPEC.json`` where the spec holds ``glb``, ``action``
(a substring of the action's name), ``frames``, ``size``, ``samples``, ``out``, and ``cameras``:
a list of ``{name, azimuth, elevation}`` (degrees; radius and vertical FoV from the spec). The
cameras are placed in our Y-up world with :func:`backend.render.cameras.orbit_viewmat` (azimuth 0
looks at the animal's front, glTF +Z), turned into Blender objects, and written back from those
objects with the add-on's exporter (``blender_addon/bl/camera_export.py``), so the file is what
an artist's Blender cameras would give. ``out/views/<name>_<frame>.png``, ``out/cameras.json``.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import bpy
import numpy as np
from mathutils import Matrix, Vector

from backend.render.cameras import orbit_viewmat
from blender_addon.bl.camera_export import camera_dict
from blender_addon.core.cameras import ours_to_blender_matrix, world_to_camera
from shared.cameras import write_cameras

_CV_TO_BLENDER_CAM = np.diag([1.0, -1.0, -1.0, 1.0])


def _setup(spec: dict):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.import_scene.gltf(filepath=spec["glb"])
    scene = bpy.context.scene
    arm = next(o for o in scene.objects if o.type == "ARMATURE")
    # Keep the skinned meshes only (some files carry loose helper meshes).
    for o in list(scene.objects):
        if o.type == "MESH" and not any(m.type == "ARMATURE" for m in o.modifiers):
            bpy.data.objects.remove(o, do_unlink=True)
    action = next(a for a in bpy.data.actions if spec["action"].lower() in a.name.lower())
    arm.animation_data.action = action
    if hasattr(arm.animation_data, "action_slot") and action.slots:
        arm.animation_data.action_slot = action.slots[0]
    f0, f1 = action.frame_range
    n = int(spec["frames"])
    times = [f0 + (f1 - f0) * i / n for i in range(n)]  # one walk cycle, last frame != first
    return scene, arm, action, times


def _set_time(scene, t: float) -> None:
    scene.frame_set(int(math.floor(t)), subframe=t - math.floor(t))


def _bounds(scene, times) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = np.full(3, np.inf), np.full(3, -np.inf)
    dg = bpy.context.evaluated_depsgraph_get()
    for t in times:
        _set_time(scene, t)
        dg = bpy.context.evaluated_depsgraph_get()
        for o in scene.objects:
            if o.type != "MESH":
                continue
            ev = o.evaluated_get(dg)
            me = ev.to_mesh()
            co = np.empty(len(me.vertices) * 3)
            me.vertices.foreach_get("co", co)
            co = co.reshape(-1, 3) @ np.array(ev.matrix_world)[:3, :3].T + np.array(
                ev.matrix_world)[:3, 3]
            ev.to_mesh_clear()
            lo, hi = np.minimum(lo, co.min(0)), np.maximum(hi, co.max(0))
    return lo, hi


def _normalise(scene, times) -> dict:
    """Parent the roots to an empty that scales the animation's bounds into a unit cube."""
    lo, hi = _bounds(scene, times)
    root = bpy.data.objects.new("unit_cube", None)
    scene.collection.objects.link(root)
    for o in list(scene.objects):
        if o.parent is None and o is not root:
            o.parent = root
    s = 1.0 / float((hi - lo).max())
    c = (lo + hi) / 2
    root.matrix_world = Matrix.Scale(s, 4) @ Matrix.Translation(Vector(-c))
    bpy.context.view_layer.update()
    return {"scale": s, "centre_blender": c.tolist(), "extent_blender": (hi - lo).tolist()}


def _camera(scene, name: str, viewmat: np.ndarray, fov_deg: float):
    data = bpy.data.cameras.new(name)
    data.sensor_fit = "VERTICAL"
    data.angle_y = math.radians(fov_deg)
    obj = bpy.data.objects.new(name, data)
    scene.collection.objects.link(obj)
    M = ours_to_blender_matrix() @ np.linalg.inv(viewmat) @ _CV_TO_BLENDER_CAM
    obj.matrix_world = Matrix(M.tolist())
    # the add-on's converter must give the same camera back
    assert np.abs(world_to_camera(M) - viewmat).max() < 1e-9
    return obj


def _render_settings(scene, spec: dict) -> None:
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = int(spec["samples"])
    scene.cycles.use_denoising = bool(spec.get("denoise", True))
    scene.render.threads_mode = "FIXED"
    scene.render.threads = int(spec.get("threads", 2))
    scene.render.film_transparent = True
    scene.render.resolution_x = scene.render.resolution_y = int(spec["size"])
    scene.render.resolution_percentage = 100
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGBA"
    scene.view_settings.view_transform = "Standard"
    world = bpy.data.worlds.new("gt_world")
    world.use_nodes = True
    bgn = world.node_tree.nodes["Background"]
    bgn.inputs[0].default_value = (1.0, 1.0, 1.0, 1.0)
    bgn.inputs[1].default_value = 0.8
    scene.world = world
    sun = bpy.data.lights.new("sun", "SUN")
    sun.energy = 2.0
    so = bpy.data.objects.new("sun", sun)
    so.rotation_euler = (math.radians(40), 0.0, math.radians(30))
    scene.collection.objects.link(so)


def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    out = Path(spec["out"])
    (out / "views").mkdir(parents=True, exist_ok=True)
    scene, arm, action, times = _setup(spec)
    norm = _normalise(scene, times)
    _render_settings(scene, spec)
    cams = []
    for c in spec["cameras"]:
        vm = orbit_viewmat(c["azimuth"], c["elevation"], spec["radius"])
        cams.append((c["name"], _camera(scene, c["name"], vm, spec["fov_deg"])))
    write_cameras(out / "cameras.json", [camera_dict(n, o, scene) for n, o in cams])
    total = len(cams) * len(times)
    done = 0
    for name, obj in cams:
        scene.camera = obj
        for i, t in enumerate(times):
            _set_time(scene, t)
            scene.render.filepath = str(out / "views" / f"{name}_{i:04d}.png")
            bpy.ops.render.render(write_still=True)
            done += 1
            print(f"GT-PROGRESS {done}/{total}", flush=True)
    (out / "gt_info.json").write_text(json.dumps({
        "action": action.name, "action_frames": list(action.frame_range), "times": times,
        **norm}, indent=1))


if __name__ == "__main__":
    main(sys.argv[1])
