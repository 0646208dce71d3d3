"""Static fitting benchmark: held-out PSNR and fitting time on Blender-rendered views.

Default (under a minute on one idle core): the 12 + 4 views at 48 x 48 of
``tests/render/data/views48.npz``, 300 steps, seed 1, one thread: the fit that
``tests/render/test_fit.py`` checks for quality, timed here instead (tests never assert on time).
``--full``: 16 + 4 views at 128 x 128, 600 steps, rendered on first use into
``out/bench/views128.npz`` by ``tests/render/make_views.py`` (Suzanne with a procedural texture
through an Emission shader, Cycles, 64 samples, transparent film; needs the ``bpy`` module).
Held-out PSNR is measured on RGB composited over white (also over black, and of alpha) every
``--eval-every`` steps; evaluation time is not counted as fitting time. Prints a table and the
result as one JSON line (the last line of stdout; ``--json PATH`` also writes it there).

Usage::

    python bench/fit.py                       # 48 px, 300 steps
    python bench/fit.py --full                # 128 px, 600 steps (about 3 minutes)
    python bench/fit.py --iterations 800 --threads 2 --json out/fit.json
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from backend.render.fit import FitConfig, evaluate, fit_static  # noqa: E402
from bench.lib.report import emit_json_line  # noqa: E402

SMALL_DATA = ROOT / "tests" / "render" / "data" / "views48.npz"
FULL_DATA = ROOT / "out" / "bench" / "views128.npz"


def ensure_views(path: Path, size: int, train: int, test: int) -> None:
    if path.exists():
        return
    print(f"rendering {train} + {test} views at {size} px into {path} with Blender ...")
    cmd = [sys.executable, str(ROOT / "tests" / "render" / "make_views.py"), "--size", str(size),
           "--train", str(train), "--test", str(test), "--out", str(path)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="128 px views, 600 steps")
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--size", type=int, default=128, help="views rendered for --full")
    ap.add_argument("--train", type=int, default=16)
    ap.add_argument("--test", type=int, default=4)
    ap.add_argument("--iterations", type=int, default=None, help="default 300, --full 600")
    ap.add_argument("--eval-every", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--target-db", type=float, default=28.0)
    ap.add_argument("--seed", type=int, default=None, help="default 1, --full 0")
    ap.add_argument("--json", type=Path, default=None, help="also write the JSON result here")
    args = ap.parse_args(argv)
    if args.data is None:
        args.data = FULL_DATA if args.full else SMALL_DATA
        if args.full:
            ensure_views(args.data, args.size, args.train, args.test)
    if args.iterations is None:
        args.iterations = 600 if args.full else 300
    if args.seed is None:
        args.seed = 0 if args.full else 1
    d = np.load(args.data)
    imgs = torch.from_numpy(d["images"])
    vms, Ks = torch.from_numpy(d["viewmats"]), torch.from_numpy(d["Ks"])
    test = torch.from_numpy(d["is_test"])
    curve: list[dict] = []
    eval_time = [0.0]
    t0 = time.monotonic()

    def on_step(step: int, g) -> None:
        t = time.monotonic()
        fit_s = t - t0 - eval_time[0]
        m = evaluate(g, imgs[test], vms[test], Ks[test])
        eval_time[0] += time.monotonic() - t
        curve.append({"step": step, "seconds": round(fit_s, 2), "gaussians": g.count,
                      **{k: round(v, 3) for k, v in m.items()}})
        print(f"  step {step:5d}  {curve[-1]['seconds']:7.1f} s  {g.count:6d} Gaussians  "
              f"held-out PSNR {m['psnr']:.2f} dB", flush=True)

    cfg = FitConfig(iterations=args.iterations, progress_every=args.eval_every,
                    num_threads=args.threads, seed=args.seed)
    g, stats = fit_static(imgs[~test], vms[~test], Ks[~test], config=cfg, on_step=on_step)
    fit_seconds = stats.seconds - eval_time[0]
    held = evaluate(g, imgs[test], vms[test], Ks[test])
    train = evaluate(g, imgs[~test], vms[~test], Ks[~test])
    reached = next((c for c in curve if c["psnr"] >= args.target_db), None)
    print(f"\n{'views':>9} {'size':>4} {'steps':>5} {'fit s':>7} {'Gaussians':>9} "
          f"{'held-out PSNR':>13} {'(black)':>7} {'alpha':>6} {'SSIM':>6} {'train':>6} "
          f"{'to ' + str(args.target_db) + ' dB':>10}")
    to_target = f"{reached['seconds']:.0f} s" if reached else "not reached"
    print(f"{int((~test).sum()):>4}+{int(test.sum()):<4} {imgs.shape[1]:>4} {stats.iterations:>5} "
          f"{fit_seconds:>7.1f} {g.count:>9} {held['psnr']:>13.2f} {held['psnr_black']:>7.2f} "
          f"{held['psnr_alpha']:>6.2f} {held['ssim']:>6.3f} {train['psnr']:>6.2f} "
          f"{to_target:>10}")
    result = {
        "bench": "fit", "size": int(imgs.shape[1]), "train_views": int((~test).sum()),
        "test_views": int(test.sum()), "iterations": stats.iterations,
        "fit_seconds": round(fit_seconds, 2), "gaussians": g.count,
        "held_out": {k: round(v, 3) for k, v in held.items()},
        "train_psnr": round(train["psnr"], 3),
        "target_db": args.target_db, "seconds_to_target": reached["seconds"] if reached else None,
        "target_reached": reached is not None, "threads": args.threads, "seed": args.seed,
        "load_avg": round(os.getloadavg()[0], 2), "curve": curve,
    }
    return emit_json_line(result, args.json)


if __name__ == "__main__":
    sys.exit(main())
