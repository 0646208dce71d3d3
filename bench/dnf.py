"""DNF creature sampling on the CPU: seconds for one creature, and mesh once then displace vs
marching cubes per frame.

One creature = shape diffusion + motion diffusion (``--frames`` frames at the training rate) +
one marching-cubes pass (SDF grid coarse to fine near the surface, :mod:`backend.methods.dnf.
gen.mc`) + the motion field at every frame. The anchor of the ratio is what meshing every frame
would cost: a dense SDF grid and marching cubes per frame (measured once, times the frames).
A second row compares with coarse-to-fine marching cubes per frame.

    python bench/dnf.py            # 64^3, 16 frames (under a minute)
    python bench/dnf.py --full     # 128^3, 32 frames (the issue's sizes; target < 2 s, >= 10x)

The model must hold a generator (``python -m backend.methods.dnf.cli fit-generator``).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.lib.report import Row, bench_parser, report  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = bench_parser(__doc__.splitlines()[0])
    ap.add_argument("--model-dir", type=Path, default=None,
                    help="DNF model folder with a generator (default: the shipped tiny)")
    ap.add_argument("--steps", type=int, default=25, help="diffusion steps (default 25)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's)")
    args = ap.parse_args(argv)
    import torch

    from backend.methods.dnf.checkpoint import load_checkpoint
    from backend.methods.dnf.decode import marching_cubes, query_sdf
    from backend.methods.dnf.gen.creature import animate, mesh_shape
    from backend.methods.dnf.gen.mc import dense_grid
    from backend.methods.dnf.gen.novelty import creature_print, training_prints
    from backend.methods.dnf.gen.store import load_model_generator
    from backend.methods.dnf.model_files import SHIPPED_DIR

    if args.threads:
        torch.set_num_threads(args.threads)
    res, frames = (128, 32) if args.full else (64, 16)
    folder = args.model_dir or SHIPPED_DIR / "tiny"
    model = load_checkpoint(folder)
    sgen, mgen, info = load_model_generator(folder, model.sha256)
    stage = info.get("stage", "d")
    fps = float(mgen.info.get("frame_rate") or model.preset.data.fps)
    times = np.arange(frames) / fps

    t0 = time.perf_counter()
    shape = sgen.sample(1, seed=0, steps=args.steps)
    t1 = time.perf_counter()
    motion = mgen.sample(shape, frames, seed=1, steps=args.steps)
    t2 = time.perf_counter()
    verts, faces, grid = mesh_shape(model, stage, shape[0], res)
    t3 = time.perf_counter()
    animate(model, stage, verts, shape[0], motion[0], fps, times)
    t4 = time.perf_counter()
    total, mesh_s, disp_s = t4 - t0, t3 - t2, t4 - t3

    # the job's copy guard on this creature (its prints, at the job's default resolution, are
    # built once per model and cached: not timed)
    prints = training_prints(model, stage)
    t6 = time.perf_counter()
    prints.nearest(creature_print(model, stage, verts, faces, shape[0], motion[0], fps,
                                  min(frames, prints.frames)))
    guard_s = time.perf_counter() - t6

    rep = model.shape_rep(stage)
    t5 = time.perf_counter()
    dv, df = marching_cubes(dense_grid(lambda p: query_sdf(rep, shape[0], p), res))
    dense_frame = time.perf_counter() - t5
    per_frame_dense = dense_frame * frames
    per_frame_fine = mesh_s * frames
    once = mesh_s + disp_s
    rows = [
        Row("sample one creature (shape + motion + mesh + frames)", total, "s",
            target="< 2 s" if args.full else ""),
        Row("shape diffusion", t1 - t0, "s"), Row("motion diffusion", t2 - t1, "s"),
        Row("marching cubes once (coarse to fine)", mesh_s, "s"),
        Row(f"motion field, {frames} frames", disp_s, "s"),
        Row("mesh once + displace", once, "s", "dense marching cubes per frame",
            per_frame_dense, per_frame_dense / once, ">= 10"),
        Row("mesh once + displace (vs coarse-to-fine per frame)", once, "s",
            "coarse-to-fine marching cubes per frame", per_frame_fine, per_frame_fine / once),
        Row("SDF evaluations, coarse to fine / dense", grid["fraction"], ""),
        Row("copy guard check (min_novelty; training prints already built)", guard_s, "s"),
    ]
    rows[0].ok = total < 2.0 if args.full else None
    rows[5].ok = rows[5].ratio >= 10
    same = len(dv) == len(verts) and np.array_equal(df, faces)
    report("dnf", rows, args.json,
           {"resolution": res, "frames": frames, "steps": args.steps, "vertices": len(verts),
            "faces": len(faces), "dense_mesh_same_faces": bool(same),
            "threads": torch.get_num_threads(), "model_sha256": model.sha256})
    return 0


if __name__ == "__main__":
    sys.exit(main())
