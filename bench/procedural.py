"""Procedural creature benchmark: time to generate an animated creature, against a real rig.

What is timed (median of ``--reps`` runs after one warm-up, wall clock):

- ``procedural``: ``make_creature_sequence(seed, gait, frames, fps)`` end to end (sample the
  spec, build and rig the mesh, evaluate the gait, skin every frame), for each seed and gait,
  also split into its three stages (``make_creature``, ``pose``, ``lbs``);
- the anchor, ``Horse.glb bake``: our glTF reader skinning the Horse's "Gallop" clip at the same
  frame count and rate (``GltfAnimation.sample``; the document is loaded once, outside the
  timing, since parsing JSON is not the work being compared). Both produce a training sequence
  of a four-legged animal of a few thousand vertices by linear blend skinning, so the ratio of
  their costs per vertex-frame says what the procedural rig and gait add over skinning a real
  rig; it needs ``../shared/data/animals/Horse.glb`` (or ``$ANIM4D_SHARED_DATA``). Without it
  the anchor is the ``lbs`` stage alone of the same creature (skinning only), and the JSON says
  which anchor was used.

The check the test suite used to make (``test_fast_enough``: a 24-frame gallop in under 1 s) is
reported as ``target_24_frames_s`` / ``within_target`` for the default run.

Usage::

    python bench/procedural.py                 # 4 seeds x walk, gallop; 24 frames; < 1 min
    python bench/procedural.py --full          # 10 seeds x every gait; 120 frames
    python bench/procedural.py --json out.json

Prints a table, then one JSON object as the last line (also written to ``--json PATH``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from backend.data.gltf_reader import GltfAnimation  # noqa: E402
from backend.data.procedural import GAITS, make_creature, make_creature_sequence, pose  # noqa: E402
from backend.data.skinning import lbs  # noqa: E402

TARGET_S = 1.0  # a 24-frame gallop, the figure test_fast_enough used to assert
HORSE_CLIP = "AnimalArmature|Gallop"


def median_time(fn: Callable[[], object], reps: int) -> float:
    """Median wall-clock seconds of ``reps`` calls of ``fn`` after one warm-up call."""
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def horse_path() -> Path | None:
    env = os.environ.get("ANIM4D_SHARED_DATA")
    for base in ([Path(env)] if env else []) + [ROOT / ".." / "shared" / "data"]:
        p = base / "animals" / "Horse.glb"
        if p.is_file():
            return p.resolve()
    return None


def bench_creature(seed: int, gait: str, frames: int, fps: float, reps: int) -> dict:
    times = np.arange(frames, dtype=np.float64) / fps
    creature = make_creature(seed)
    mats = pose(creature, gait, times)
    total = median_time(lambda: make_creature_sequence(seed, gait, frames, fps), reps)
    build = median_time(lambda: make_creature(seed), reps)
    posing = median_time(lambda: pose(creature, gait, times), reps)
    skin = median_time(lambda: lbs(creature.rest, creature.joints, creature.weights, mats), reps)
    v = int(creature.rest.shape[0])
    return {"case": f"seed {seed} {gait}", "seed": seed, "gait": gait, "frames": frames,
            "vertices": v, "seconds": total, "build_s": build, "pose_s": posing, "lbs_s": skin,
            "us_per_vertex_frame": 1e6 * total / (v * frames)}


def bench_horse(path: Path, frames: int, fps: float, reps: int) -> dict:
    t0 = time.perf_counter()
    anim = GltfAnimation(path)
    load = time.perf_counter() - t0
    clip = anim.clip(HORSE_CLIP)
    times = np.arange(frames, dtype=np.float64) / fps  # clamps past the clip's end, as a bake
    seconds = median_time(lambda: anim.sample(clip, times), reps)
    v = anim.vertex_count
    return {"case": "Horse.glb bake (anchor)", "frames": frames, "vertices": v,
            "seconds": seconds, "load_s": load,
            "us_per_vertex_frame": 1e6 * seconds / (v * frames)}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--full", action="store_true", help="10 seeds, every gait, 120 frames")
    ap.add_argument("--frames", type=int, default=None, help="frames per sequence")
    ap.add_argument("--fps", type=float, default=24.0)
    ap.add_argument("--reps", type=int, default=5, help="timed runs per case (median)")
    ap.add_argument("--json", type=Path, default=None, help="also write the JSON here")
    args = ap.parse_args(argv)
    frames = args.frames or (120 if args.full else 24)
    seeds = range(10) if args.full else range(4)
    gaits = GAITS if args.full else ("walk", "gallop")

    rows = [bench_creature(s, g, frames, args.fps, args.reps) for s in seeds for g in gaits]
    horse = horse_path()
    if horse is not None:
        anchor = bench_horse(horse, frames, args.fps, args.reps)
        anchor_name = "horse_bake"
    else:
        # Skinning only, summed like the procedural rows: cost per vertex-frame of lbs alone.
        lbs_s = sum(r["lbs_s"] for r in rows)
        vf = sum(r["vertices"] * r["frames"] for r in rows)
        anchor = {"case": "lbs only (anchor; Horse.glb absent)", "frames": frames,
                  "vertices": round(vf / (frames * len(rows))), "seconds": lbs_s / len(rows),
                  "us_per_vertex_frame": 1e6 * lbs_s / vf}
        anchor_name = "lbs_only"
    for r in rows:
        r["ratio_vs_anchor"] = r["us_per_vertex_frame"] / anchor["us_per_vertex_frame"]
    med_ratio = statistics.median(r["ratio_vs_anchor"] for r in rows)

    print(f"{'case':34s} {'frames':>6s} {'verts':>6s} {'median s':>9s} {'build':>7s} "
          f"{'pose':>7s} {'lbs':>7s} {'us/v-frame':>10s} {'x anchor':>8s}")
    for r in rows:
        print(f"{r['case']:34s} {r['frames']:6d} {r['vertices']:6d} {r['seconds']:9.4f} "
              f"{r['build_s']:7.4f} {r['pose_s']:7.4f} {r['lbs_s']:7.4f} "
              f"{r['us_per_vertex_frame']:10.3f} {r['ratio_vs_anchor']:8.2f}")
    a = anchor
    print(f"{a['case']:34s} {a['frames']:6d} {a['vertices']:6d} {a['seconds']:9.4f} "
          f"{'':7s} {'':7s} {'':7s} {a['us_per_vertex_frame']:10.3f} {1.0:8.2f}")
    if "load_s" in a:
        print(f"(Horse.glb document load, not timed above: {a['load_s']:.2f} s)")
    print(f"median cost per vertex-frame, procedural / {anchor_name}: {med_ratio:.2f}")

    result = {"bench": "procedural", "full": bool(args.full), "frames": frames,
              "fps": args.fps, "reps": args.reps, "anchor": anchor_name,
              "anchor_row": anchor, "rows": rows, "median_ratio_vs_anchor": med_ratio}
    if frames == 24:
        gallops = [r["seconds"] for r in rows if r["gait"] == "gallop"]
        result["target_24_frames_s"] = TARGET_S
        result["worst_24_frame_gallop_s"] = max(gallops) if gallops else None
        result["within_target"] = bool(gallops) and max(gallops) < TARGET_S
        print(f"slowest 24-frame gallop: {max(gallops):.3f} s (target < {TARGET_S} s)"
              if gallops else "no gallop case run")
    text = json.dumps(result)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    print(text)
    return result


if __name__ == "__main__":
    main()
