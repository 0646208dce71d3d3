"""DNF samples against the issue's bar: ``creature.sample n=4 frames=24`` with the shipped model.

Per creature: connected components (bar: at most 3), watertight, motion (mean per-vertex distance
from frame 0 over the other frames, as a share of the canonical bounding-box diagonal; bar: at
least 1 %), the largest and smallest frame bounding-box diagonal against the canonical one (bar:
within 1.5x); and the pairwise Chamfer of the canonical shapes (2,048 points, x 10^3, the
dictionary's normalised units) against 3x the training Chamfer of docs/results/dnf_fields.md.

    python bench/eval_dnf_samples.py [--seed 0] [--n 4] [--frames 24] [--json PATH]

Runs the job's own code (``backend.methods.dnf.gen.creature.sample_creatures``) in-process: about
a minute on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.lib.report import emit_json_line  # noqa: E402

TRAIN_CHAMFER_D = 2.88  # docs/results/dnf_fields.md, stage (d), held by test_published_figures


def creature_row(canon: np.ndarray, faces: np.ndarray, verts: np.ndarray) -> dict:
    """canon ``[V, 3]``, faces ``[F, 3]``, verts ``[T, V, 3]`` -> the bar's figures."""
    from backend.methods.dnf.metrics import mesh_pieces
    from backend.methods.dnf.sdf import open_faces

    diag = float(np.linalg.norm(canon.max(0) - canon.min(0)))
    move = float(np.linalg.norm(verts[1:] - verts[:1], axis=-1).mean()) / diag
    diags = np.linalg.norm(verts.max(1) - verts.min(1), axis=-1) / diag
    return {"vertices": int(len(canon)), "components": mesh_pieces(faces),
            "watertight": bool(len(faces)) and not open_faces(faces).any(), "motion_share": move,
            "bbox_ratio_max": float(diags.max()), "bbox_ratio_min": float(diags.min())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--fps", type=float, default=20.0)
    ap.add_argument("--resolution", type=int, default=96)
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--min-piece", type=float, default=0.02,
                    help="the job's min_piece (default %(default)s, the job's default)")
    ap.add_argument("--min-motion", type=float, default=0.01,
                    help="the job's min_motion (default %(default)s, the job's default)")
    ap.add_argument("--min-spread", type=float, default=0.25,
                    help="the job's min_spread (default %(default)s, the job's default)")
    ap.add_argument("--model-dir", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    from backend.methods.dnf.checkpoint import load_checkpoint
    from backend.methods.dnf.gen.creature import sample_creatures
    from backend.methods.dnf.gen.store import load_model_generator
    from backend.methods.dnf.metrics import chamfer, surface_points
    from backend.methods.dnf.model_files import SHIPPED_DIR

    folder = args.model_dir or SHIPPED_DIR / "tiny"
    t0 = time.perf_counter()
    model = load_checkpoint(folder)
    sgen, mgen, info = load_model_generator(folder, model.sha256)
    times = np.arange(args.frames) / args.fps
    creatures, verts = sample_creatures(model, sgen, mgen, args.n, times, args.seed,
                                        args.steps, args.resolution, info.get("stage", "d"),
                                        min_piece=args.min_piece, min_motion=args.min_motion,
                                        min_spread=args.min_spread)
    seconds = time.perf_counter() - t0
    rows = [creature_row(c, f, v) for c, f, v in zip(creatures.canonical, creatures.faces, verts,
                                                      strict=True)]
    for r, d in zip(rows, creatures.meta["dropped_pieces"], strict=True):
        r["dropped_pieces"] = d
    for r, k in zip(rows, creatures.meta["motion_redraws"], strict=True):
        r["motion_redraws"] = k
    pts = [surface_points(c, f, 2048, seed=i)
           for i, (c, f) in enumerate(zip(creatures.canonical, creatures.faces, strict=True))]
    pair = {f"{i}-{j}": chamfer(pts[i], pts[j]) * 1e3
            for i, j in itertools.combinations(range(len(pts)), 2)}
    bar = 3 * TRAIN_CHAMFER_D
    print(f"{'creature':>8} {'verts':>6} {'pieces':>6} {'dropped':>7} {'closed':>6} "
          f"{'motion %':>8} {'redraws':>7} {'bbox max':>8} {'bbox min':>8}  verdict")
    ok_all = True
    for i, r in enumerate(rows):
        ok = (r["components"] <= 3 and r["watertight"] and r["motion_share"] >= 0.01
              and r["bbox_ratio_max"] <= 1.5 and r["bbox_ratio_min"] >= 1 / 1.5)
        ok_all &= ok
        r["passes"] = ok
        print(f"{i:>8} {r['vertices']:>6} {r['components']:>6} {r['dropped_pieces']:>7} "
              f"{str(r['watertight']):>6} "
              f"{100 * r['motion_share']:>8.2f} {r['motion_redraws']:>7} "
              f"{r['bbox_ratio_max']:>8.3f} "
              f"{r['bbox_ratio_min']:>8.3f}  {'pass' if ok else 'FAIL'}")
    low = min(pair.values()) if pair else float("nan")
    print(f"pairwise canonical Chamfer x1e3: min {low:.2f}, all "
          + ", ".join(f"{k}: {v:.2f}" for k, v in pair.items())
          + f"; bar 3 x {TRAIN_CHAMFER_D} = {bar:.2f}: {'pass' if low >= bar else 'FAIL'}")
    print(f"{seconds:.1f} s (load + sample + mesh + animate)")
    result = {"bench": "eval_dnf_samples", "args": vars(args) | {"model_dir": str(folder)},
              "creatures": rows, "pairwise_chamfer_e3": pair, "diversity_bar": bar,
              "all_pass": bool(ok_all and low >= bar), "seconds": seconds}
    return emit_json_line(json.loads(json.dumps(result, default=str)), args.json)


if __name__ == "__main__":
    sys.exit(main())
