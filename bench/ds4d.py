"""DS4D training benchmark: seconds per training step on the ``cpu`` preset, split by phase.

A real clip (``../shared/data/videos``, keyed from its white background) at the ``cpu`` preset's
size and frame count, the input view alone; the trainer runs ``--steps`` steps of each stage
(static, then dynamic with TSSF and the deformation) with densification every ``--steps // 3``
steps, and reports per step: render (for the dynamic stage this includes the point-feature
sampling, TSSF and the deformation field), backward (+ optimiser steps), densification, and
the total; the frame features are a one-off cost. The anchor is the static step (plain 3DGS);
the dynamic step is reported as a ratio to it. The last row projects the preset's full schedule
(its static + dynamic step counts at the measured rates, plus features) against its 10-minute
budget on 2 cores.

Usage::

    python bench/ds4d.py                 # 15 + 15 steps (< 1 min of training)
    python bench/ds4d.py --full          # 60 + 60 steps
    python bench/ds4d.py --json out/bench/ds4d.json --threads 2
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from backend.methods.ds4d.clip import InputConfig, load_clip  # noqa: E402
from backend.methods.ds4d.presets import StageDensify, preset  # noqa: E402
from backend.methods.ds4d.train import Scene, train  # noqa: E402
from backend.methods.ds4d.views import InputViewOnly  # noqa: E402
from bench.lib.report import Row, bench_parser, report  # noqa: E402

DATA = Path(os.environ.get("ANIM4D_SHARED_DATA", ROOT / ".." / "shared" / "data")) / "videos"
BUDGET_S = 600.0


def main(argv=None) -> int:
    ap = bench_parser(__doc__.splitlines()[0])
    ap.add_argument("--clip", type=Path, default=DATA / "cat_king_fg.mp4")
    ap.add_argument("--steps", type=int, default=None, help="steps per stage (default 15, "
                                                            "--full 60)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    if not args.clip.is_file():
        print(f"clip absent: {args.clip} (set $ANIM4D_SHARED_DATA)")
        return 1
    torch.set_num_threads(args.threads)
    steps = args.steps or (60 if args.full else 15)
    full = preset("cpu")
    every = max(1, steps // 3)
    dens = StageDensify(start=every - 1, stop=steps, every=every)
    cfg = dataclasses.replace(full, static_steps=steps, dynamic_steps=steps, static_densify=dens,
                              dynamic_densify=dens, preview_every=0)
    t0 = time.monotonic()
    clip = load_clip(args.clip, InputConfig(size=cfg.size, frames=cfg.frames))
    load_s = time.monotonic() - t0
    scene = Scene.from_source(InputViewOnly(clip, warn=False))
    stage_times: dict[str, dict] = {}

    def progress(stage: str, fraction: float, message: str) -> None:
        stage_times.setdefault(stage, {"first": time.monotonic()})["last"] = time.monotonic()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = train(scene, cfg, progress)
    # per-stage phase sums: rerun the timings split from the history of each stage
    per = split_timings(res, steps)
    rows = [Row("frame features (one-off)", res.timings["features"], "s"),
            Row("clip load (one-off)", load_s, "s")]
    static_total = sum(per["static"].values()) / steps
    for stage in ("static", "dynamic"):
        for phase, value in per[stage].items():
            rows.append(Row(f"{stage}: {phase} per step", value / steps, "s"))
        total = sum(per[stage].values()) / steps
        if stage == "static":
            rows.append(Row("static: step", total, "s"))
        else:
            rows.append(Row("dynamic: step", total, "s", anchor="static step",
                            anchor_value=static_total, ratio=total / static_total))
    dyn_total = sum(per["dynamic"].values()) / steps
    projected = (res.timings["features"] + load_s + full.static_steps * static_total
                 + full.dynamic_steps * dyn_total)
    rows.append(Row(f"cpu preset projected ({full.static_steps} + {full.dynamic_steps} steps)",
                    projected / 60, "min", anchor="10 min budget", anchor_value=BUDGET_S / 60,
                    ratio=projected / BUDGET_S, target="<= 1.0", ok=projected <= BUDGET_S))
    report("ds4d", rows, args.json, {
        "clip": args.clip.name, "size": cfg.size, "frames": cfg.frames, "steps": steps,
        "threads": args.threads, "gaussians_final": res.model.gaussians.count,
        "features": res.feature_kind})
    return 0


def split_timings(res, steps: int) -> dict[str, dict[str, float]]:
    """Phase seconds per stage (``TrainResult.stage_timings``)."""
    return {stage: dict(res.stage_timings[stage]) for stage in ("static", "dynamic")}


if __name__ == "__main__":
    raise SystemExit(main())
