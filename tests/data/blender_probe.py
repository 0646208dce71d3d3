"""Evaluate a glTF's clips with Blender's own importer (run as a script with the bpy module).

Usage: python blender_probe.py FILE.glb OUT.npz REQUESTS.json, where REQUESTS.json lists
``{"clip": name, "times": [seconds, ...]}``. For each request the clip's action is assigned to
the objects (and shape keys) it animates, the scene is set to ``time * scene fps`` (with a
subframe for fractional frames, as the importer puts a key at ``t`` seconds on frame
``t * fps``) and the evaluated meshes are stored in world coordinates (Blender's Z-up) as
``OUT["<request index>_<time index>"]`` ``[V, 3]`` (all mesh objects), and each mesh object on
its own as ``OUT["<request index>_<time index>|<object name>"]``. An optional fourth argument is
a JSON object of extra ``import_scene.gltf`` options (default: Blender's defaults, bone shapes
off, which only changes display). Not a test module: tests run it in a subprocess so the bpy
module never loads into the test process.
"""

from __future__ import annotations

import json
import math
import sys

import bpy
import numpy as np


def assign(action) -> None:
    """Make ``action`` the only active action of every ID it has a slot for."""
    for ob in bpy.data.objects:
        for owner in (ob, getattr(ob.data, "shape_keys", None)):
            if owner is not None and owner.animation_data is not None:
                owner.animation_data.action = None
    for slot in action.slots:
        for ob in bpy.data.objects:
            owner = ob
            if slot.target_id_type == "KEY":
                owner = getattr(ob.data, "shape_keys", None)
                if owner is None or slot.identifier[2:] != owner.name:
                    continue
            elif slot.identifier[2:] != ob.name:
                continue
            if owner.animation_data is None:
                owner.animation_data_create()
            owner.animation_data.action = action
            owner.animation_data.action_slot = slot


def evaluated_points() -> dict[str, np.ndarray]:
    """World positions ``[V, 3]`` of every evaluated mesh object, by object name."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    pts = {}
    for ob in bpy.data.objects:
        if ob.type != "MESH":
            continue
        ev = ob.evaluated_get(depsgraph)
        mesh = ev.to_mesh()
        co = np.zeros(len(mesh.vertices) * 3, dtype=np.float64)
        mesh.vertices.foreach_get("co", co)
        m = np.array(ev.matrix_world)
        pts[ob.name] = co.reshape(-1, 3) @ m[:3, :3].T + m[:3, 3]
        ev.to_mesh_clear()
    return pts


def main(src: str, out: str, requests_file: str, options: str = "{}") -> None:
    with open(requests_file) as fh:
        requests = json.load(fh)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.import_scene.gltf(filepath=src, **{"disable_bone_shape": True, **json.loads(options)})
    scene = bpy.context.scene
    fps = scene.render.fps / scene.render.fps_base
    result = {}
    for ri, req in enumerate(requests):
        assign(bpy.data.actions[req["clip"]])
        for ti, t in enumerate(req["times"]):
            frame = t * fps
            whole = math.floor(frame + 1e-9)
            scene.frame_set(int(whole), subframe=max(0.0, frame - whole))
            parts = evaluated_points()
            result[f"{ri}_{ti}"] = np.concatenate(list(parts.values()))
            for name, pts in parts.items():
                result[f"{ri}_{ti}|{name}"] = pts
    np.savez(out, **result)


if __name__ == "__main__":
    main(*sys.argv[1:5])
