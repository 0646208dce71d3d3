"""Import benchmark: Anim4D's importer against Blender's own Alembic import of the same animation.

A 120-frame x 20k-vertex mesh sequence is written as an Anim4D result folder. Measured:

- ``ours``: ``import_folder`` (shape keys) plus one pass evaluating every frame;
- ``alembic``: Blender exports that animation to Alembic in this script, then ``alembic_import``
  in an empty scene plus the same pass;
- the ratio ours / alembic (target <= 1.0), and the per-frame evaluation time of shape keys, a PC2
  Mesh Cache and the Alembic Mesh Sequence Cache (target: ours faster than Alembic).

A pass evaluates one frame at a time (``scene.frame_set``) and reads the evaluated vertices, so
every frame is really computed. Run: ``python bench/import.py [--frames 120 --vertices 20000]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_result(folder: Path, frames: int, vertices: int) -> None:
    """A wavy sheet of ``vertices`` points over ``frames`` frames at 24 fps, written by shared."""
    from shared.manifest import Manifest, write_manifest
    from shared.meshseq import MeshSequence, save_npz

    side = int(np.ceil(np.sqrt(vertices)))
    ij = np.stack(np.meshgrid(np.arange(side), np.arange(side), indexing="ij"), -1)
    ij = ij.reshape(-1, 2)[:vertices].astype(np.float32) / side
    t = np.arange(frames) / 24.0
    verts = np.zeros((frames, vertices, 3), np.float32)
    verts[:, :, 0] = ij[:, 0]
    verts[:, :, 2] = ij[:, 1]
    verts[:, :, 1] = 0.1 * np.sin(6.0 * ij[None, :, 0] + 3.0 * t[:, None])
    quads = []
    for r in range(side - 1):
        for c in range(side - 1):
            a, b, d, e = r * side + c, r * side + c + 1, (r + 1) * side + c, (r + 1) * side + c + 1
            if e < vertices:
                quads += [(a, b, e), (a, e, d)]
    seq = MeshSequence(verts, np.array(quads, np.int32), t)
    folder.mkdir(parents=True, exist_ok=True)
    save_npz(seq, folder / "sequence.npz")
    write_manifest(folder, Manifest(
        kind="bench", representation="mesh_sequence", frame_times=list(t), fps=24.0,
        files={"sequence": "sequence.npz"}, job_id="bench",
        counts={"frames": frames, "vertices": vertices, "faces": len(quads)}))


def evaluate_pass(bpy, obj, frames: int, keep: dict | None = None) -> tuple[float, float]:
    """``(total seconds, mean seconds of frame_set alone)`` for frames 1..frames.

    ``keep`` receives a copy of the evaluated vertices of the middle frame (a sanity check).
    """
    scene = bpy.context.scene
    co = None
    eval_times = []
    t0 = time.perf_counter()
    for f in range(1, frames + 1):
        t1 = time.perf_counter()
        scene.frame_set(f)
        dg = bpy.context.evaluated_depsgraph_get()
        ev = obj.evaluated_get(dg)
        eval_times.append(time.perf_counter() - t1)
        mesh = ev.to_mesh()
        if co is None:
            co = np.empty(len(mesh.vertices) * 3, np.float32)
        mesh.vertices.foreach_get("co", co)
        if keep is not None and f == frames // 2:
            keep["middle"] = co.copy()
        ev.to_mesh_clear()
    return time.perf_counter() - t0, float(np.mean(eval_times))


def fresh_scene(bpy) -> None:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base, scene.frame_start = 24, 1.0, 1


def run(frames: int, vertices: int, work: Path) -> dict:
    import bpy

    from blender_addon.bl import importer

    result = work / "result"
    make_result(result, frames, vertices)
    out: dict = {"frames": frames, "vertices": vertices}

    fresh_scene(bpy)
    t0 = time.perf_counter()
    obj, _ = importer.import_folder(result, storage="SHAPE_KEYS")
    out["ours_import_s"] = time.perf_counter() - t0
    ours_mid: dict = {}
    out["ours_pass_s"], out["shape_keys_eval_ms"] = evaluate_pass(bpy, obj, frames, ours_mid)
    abc = work / "anim.abc"
    bpy.context.scene.frame_end = frames
    bpy.ops.wm.alembic_export(filepath=str(abc), start=1, end=frames, selected=False,
                              uvs=False, normals=False, face_sets=False)

    bpy.ops.wm.save_as_mainfile(filepath=str(work / "pc2.blend"))
    t0 = time.perf_counter()
    obj, _ = importer.import_folder(result, storage="PC2")
    out["pc2_import_s"] = time.perf_counter() - t0
    out["pc2_pass_s"], out["pc2_eval_ms"] = evaluate_pass(bpy, obj, frames)

    fresh_scene(bpy)
    t0 = time.perf_counter()
    bpy.ops.wm.alembic_import(filepath=str(abc))
    out["alembic_import_s"] = time.perf_counter() - t0
    abc_obj = next(o for o in bpy.data.objects if o.type == "MESH")
    abc_mid: dict = {}
    out["alembic_pass_s"], out["alembic_eval_ms"] = evaluate_pass(bpy, abc_obj, frames, abc_mid)
    same = np.sort(ours_mid["middle"].reshape(-1, 3), 0) - np.sort(abc_mid["middle"].reshape(-1, 3),
                                                                     0)
    out["alembic_matches_ours_max_diff"] = float(np.abs(same).max())

    for key in ("shape_keys_eval_ms", "pc2_eval_ms", "alembic_eval_ms"):
        out[key] *= 1000.0
    ours = out["ours_import_s"] + out["ours_pass_s"]
    theirs = out["alembic_import_s"] + out["alembic_pass_s"]
    out["ratio_ours_over_alembic"] = ours / theirs
    out["shape_keys_faster_than_alembic"] = out["shape_keys_eval_ms"] < out["alembic_eval_ms"]
    out["pc2_faster_than_alembic"] = out["pc2_eval_ms"] < out["alembic_eval_ms"]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--vertices", type=int, default=20_000)
    ap.add_argument("--json", type=Path, help="also write the figures to this file")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="anim4d_bench_") as tmp:
        out = run(args.frames, args.vertices, Path(tmp))
    for key, value in out.items():
        print(f"{key:32s} {value:.4f}" if isinstance(value, float) else f"{key:32s} {value}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0 if out["ratio_ours_over_alembic"] <= 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
