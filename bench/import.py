"""Import benchmark: Anim4D's importer against Blender's own Alembic import of the same animation.

A mesh sequence (a wavy sheet) is written as an Anim4D result folder. Each method runs alone in
a fresh, empty scene (factory settings), so a pass evaluates that method's object and nothing
else:

- ``shape_keys``: ``import_folder(storage="SHAPE_KEYS")`` (absolute shape keys);
- ``pc2``: ``import_folder(storage="PC2")`` (a Mesh Cache modifier on a ``.pc2`` file, the .blend
  saved first so the cache sits beside it as for an artist);
- ``alembic`` (the anchor): Blender exports the shape-key animation to Alembic (not timed), then
  ``alembic_import`` into a fresh scene (a Mesh Sequence Cache).

Timed for each: the import, and ``--reps`` passes over every frame (``scene.frame_set``, then
the evaluated vertices read back, so every frame is really computed); the median pass counts.
Ratios are against Alembic measured in the same run: import + one pass (target <= 1.0 for
shape keys, the importer's default) and per-frame evaluation.

Each method's evaluated vertices on a middle frame are compared, vertex by vertex in index
order, with the file's (Y-up mapped to Z-up): a method that reorders, drops or misplaces
vertices is reported and the script exits 1. Timing targets are printed, not enforced (the
machine may be shared). Default size runs in well under a minute; ``--full`` is the size issue
9 names (120 frames x 20k vertices). ``--json PATH`` writes the figures; the last line printed
is the same JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT = {"frames": 48, "vertices": 5_000}
FULL = {"frames": 120, "vertices": 20_000}
ANCHOR = "alembic"
TOLERANCE = 1e-5  # float32 on a ~1-unit sheet; measured worst: 0 (default), 4.2e-7 (--full)


def make_result(folder: Path, frames: int, vertices: int) -> np.ndarray:
    """Write a wavy sheet of ``vertices`` points over ``frames`` frames at 24 fps with shared's
    writers; returns its vertices ``[frames, vertices, 3]`` (Y-up, as in the file)."""
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
    r, c = np.meshgrid(np.arange(side - 1), np.arange(side - 1), indexing="ij")
    a, b = r * side + c, r * side + c + 1
    d, e = (r + 1) * side + c, (r + 1) * side + c + 1
    keep = (e < vertices).ravel()
    tris = np.stack([np.stack([a, b, e], -1).reshape(-1, 3)[keep],
                     np.stack([a, e, d], -1).reshape(-1, 3)[keep]], 1).reshape(-1, 3)
    seq = MeshSequence(verts, tris.astype(np.int32), t)
    folder.mkdir(parents=True, exist_ok=True)
    save_npz(seq, folder / "sequence.npz")
    write_manifest(folder, Manifest(
        kind="bench", representation="mesh_sequence", frame_times=list(t), fps=24.0,
        files={"sequence": "sequence.npz"}, job_id="bench",
        counts={"frames": frames, "vertices": vertices, "faces": len(tris)}))
    return verts


def evaluate_pass(bpy, obj, frames: int, middle: int) -> tuple[float, float, np.ndarray]:
    """``(pass seconds, median ms of frame_set + evaluation, vertices [V, 3] at middle)``."""
    scene = bpy.context.scene
    co = None
    kept = None
    eval_times = []
    t0 = time.perf_counter()
    for f in range(1, frames + 1):
        t1 = time.perf_counter()
        scene.frame_set(f)
        ev = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
        eval_times.append(time.perf_counter() - t1)
        mesh = ev.to_mesh()
        if co is None:
            co = np.empty(len(mesh.vertices) * 3, np.float32)
        mesh.vertices.foreach_get("co", co)
        if f == middle:
            kept = co.reshape(-1, 3).copy()
        ev.to_mesh_clear()
    return time.perf_counter() - t0, 1000.0 * statistics.median(eval_times), kept


def fresh_scene(bpy, frames: int) -> None:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 24, 1.0
    scene.frame_start, scene.frame_end = 1, frames


def measure(bpy, name: str, do_import, frames: int, reps: int, expected: np.ndarray) -> dict:
    """Import with ``do_import() -> object`` in the current (fresh) scene, then ``reps`` passes."""
    t0 = time.perf_counter()
    obj = do_import()
    import_s = time.perf_counter() - t0
    others = [o.name for o in bpy.context.scene.objects if o is not obj]
    if others:  # the point of a fresh scene: nothing else is evaluated per frame
        raise RuntimeError(f"{name}: the scene also holds {others}")
    passes, evals, mid = [], [], None
    for _ in range(reps):
        p, e, mid = evaluate_pass(bpy, obj, frames, frames // 2)
        passes.append(p)
        evals.append(e)
    if mid is None or mid.shape != expected.shape:
        diff = float("inf")
    else:  # vertex by vertex, in index order
        diff = float(np.abs(mid.astype(np.float64) - expected).max())
    return {"import_s": import_s, "pass_s": statistics.median(passes),
            "eval_ms": statistics.median(evals), "max_diff": diff,
            "vertices": None if mid is None else int(mid.shape[0])}


def run(frames: int, vertices: int, reps: int, work: Path) -> dict:
    import bpy

    from blender_addon.bl import importer

    result = work / "result"
    verts = make_result(result, frames, vertices)
    m = verts[frames // 2 - 1].astype(np.float64)  # scene frame frames // 2 shows sample f - 1
    expected = np.stack([m[:, 0], -m[:, 2], m[:, 1]], axis=1)  # Y-up -> Z-up, written out here
    rows: dict[str, dict] = {}

    fresh_scene(bpy, frames)
    rows["shape_keys"] = measure(
        bpy, "shape_keys", lambda: importer.import_folder(result, storage="SHAPE_KEYS")[0],
        frames, reps, expected)
    abc = work / "anim.abc"  # the anchor's input: Blender's own export of that animation
    bpy.ops.wm.alembic_export(filepath=str(abc), start=1, end=frames, selected=False,
                              uvs=False, normals=False, face_sets=False)

    fresh_scene(bpy, frames)
    bpy.ops.wm.save_as_mainfile(filepath=str(work / "pc2.blend"))  # cache beside the .blend
    rows["pc2"] = measure(bpy, "pc2", lambda: importer.import_folder(result, storage="PC2")[0],
                          frames, reps, expected)

    fresh_scene(bpy, frames)

    def alembic():
        bpy.ops.wm.alembic_import(filepath=str(abc))
        return next(o for o in bpy.context.scene.objects if o.type == "MESH")

    rows[ANCHOR] = measure(bpy, ANCHOR, alembic, frames, reps, expected)

    anchor = rows[ANCHOR]
    for row in rows.values():
        row["total_s"] = row["import_s"] + row["pass_s"]
    for row in rows.values():
        row["total_ratio"] = row["total_s"] / anchor["total_s"]
        row["eval_ratio"] = row["eval_ms"] / anchor["eval_ms"]
        row["matches_file"] = row["max_diff"] <= TOLERANCE
    return {"bench": "import", "frames": frames, "vertices": vertices, "reps": reps,
            "anchor": ANCHOR, "methods": rows,
            "targets": {"shape_keys_total_ratio_le_1": rows["shape_keys"]["total_ratio"] <= 1.0,
                        "shape_keys_eval_faster": rows["shape_keys"]["eval_ratio"] < 1.0,
                        "pc2_eval_faster": rows["pc2"]["eval_ratio"] < 1.0}}


def print_table(out: dict) -> None:
    print(f"import bench: {out['frames']} frames x {out['vertices']} vertices, each method alone "
          f"in a fresh scene, median of {out['reps']} passes; ratios against {out['anchor']} "
          "in this run")
    head = ("method", "import s", "pass s", "import+pass s", "ratio", "eval ms/frame", "ratio",
            "max |diff|")
    print(f"{head[0]:12s} {head[1]:>9s} {head[2]:>8s} {head[3]:>14s} {head[4]:>6s} "
          f"{head[5]:>14s} {head[6]:>6s} {head[7]:>11s}")
    for name, r in out["methods"].items():
        print(f"{name:12s} {r['import_s']:9.3f} {r['pass_s']:8.3f} {r['total_s']:14.3f} "
              f"{r['total_ratio']:6.2f} {r['eval_ms']:14.3f} {r['eval_ratio']:6.2f} "
              f"{r['max_diff']:11.2g}")
    for target, met in out["targets"].items():
        print(f"target {target}: {'met' if met else 'MISSED'}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--full", action="store_true",
                    help=f"issue 9's size: {FULL['frames']} frames x {FULL['vertices']} vertices")
    ap.add_argument("--frames", type=int, help=f"default {DEFAULT['frames']}")
    ap.add_argument("--vertices", type=int, help=f"default {DEFAULT['vertices']}")
    ap.add_argument("--reps", type=int, default=3, help="passes per method (median counts)")
    ap.add_argument("--json", type=Path, help="also write the figures to this file")
    args = ap.parse_args(argv)
    size = FULL if args.full else DEFAULT
    frames = args.frames or size["frames"]
    vertices = args.vertices or size["vertices"]
    with tempfile.TemporaryDirectory(prefix="anim4d_bench_") as tmp:
        out = run(frames, vertices, max(1, args.reps), Path(tmp))
    print_table(out)
    wrong = [n for n, r in out["methods"].items() if not r["matches_file"]]
    for name in wrong:
        diff = out["methods"][name]["max_diff"]
        print(f"{name}: evaluated vertices differ from the file by {diff:.3g} (> {TOLERANCE}) "
              f"on frame {frames // 2}", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    print(json.dumps(out))
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
