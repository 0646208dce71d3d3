"""Seconds per training step of every ``paper`` stage, on a GPU or the CPU, and the preset's
whole schedule extrapolated from them.

Stages (the real training code at the ``paper`` presets' sizes):

- DNF fields (``pipeline.fit_fields``): shape-a, motion-a (the auto-decoder MLPs, 8 x 512 and
  8 x 1024, 32 x 8,192 and 64 x 2,048 points per step), then shape-b..d and motion-b..d (the
  dictionary stages: top-k 384 / 768, residual ranks 256 / 512);
- DNF diffusion (``gen.training``): the ``paper`` generator preset (1280 wide, 32 blocks), shape
  and motion denoisers on the stage-d vectors of the run above;
- DS4D (``ds4d.train``): static and dynamic stages on a real clip at 256 px, 32 frames, the input
  view alone (gsplat's rasterizer on CUDA, ours on the CPU).

Timing: each stage runs ``--warmup`` + ``--steps`` steps; the time per step is the wall time
between the progress report at the end of the warm-up and the last one, over the steps between
(every step reads its loss back, so the device is synchronised at each report). The projected
total is that time times the preset's step count (DS4D: at the starting Gaussian count; the
paper's densification grows it, so the dynamic stage's projection is a lower bound).

DNF data: ``--instances`` synthetic instances (default 453: what the ``paper`` preset's data
selection trains on) with the paper's sample counts (200k SDF samples, 8,192 correspondences,
17 frames): a sphere and a swaying motion; a step's time does not depend on the values.

Usage::

    python bench/gpu_steps.py --device cuda --steps 200 --json out/gpu_steps.json
    python bench/gpu_steps.py --device cpu --steps 2 --warmup 1 --only ds4d
    python bench/gpu_steps.py --device cpu --preset tiny --steps 3 --warmup 2   # a smoke run
    python bench/gpu_steps.py --save-clip .gpu/clip.npz     # the DS4D clip, for a machine
                                                            # without PyAV or the data folder

Prints a table, then one JSON line.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
import traceback
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.lib.report import Row, bench_parser, report  # noqa: E402

DATA = Path(os.environ.get("ANIM4D_SHARED_DATA", ROOT / ".." / "shared" / "data"))
CLIP = DATA / "videos" / "cat_king_fg.mp4"


class StepClock:
    """Records ``(step, time)`` per stage from progress reports; seconds per step after the
    warm-up."""

    def __init__(self, warmup: int):
        self.warmup = warmup
        self.marks: dict[str, list[tuple[int, float]]] = {}

    def mark(self, stage: str, step: int) -> None:
        self.marks.setdefault(stage, []).append((step, time.perf_counter()))

    def per_step(self, stage: str) -> tuple[float, int]:
        """(seconds per step, steps timed) of ``stage``."""
        marks = [m for m in self.marks.get(stage, []) if m[0] >= self.warmup]
        if len(marks) < 2:
            raise RuntimeError(f"{stage}: fewer than two progress reports after the warm-up "
                               f"({self.marks.get(stage)})")
        (s0, t0), (s1, t1) = marks[0], marks[-1]
        return (t1 - t0) / (s1 - s0), s1 - s0


def synthetic_instances(n: int, samples: int, corr: int, frames: int, seed: int = 0) -> list:
    """``n`` instances with the arrays training reads (sphere SDF, swaying correspondences)."""
    from backend.methods.dnf.data import Instance, SourceSpec

    rng = np.random.default_rng(seed)
    times = np.arange(frames, dtype=np.float32) / 24.0
    out = []
    for i in range(n):
        pts = rng.uniform(-1, 1, (samples, 3)).astype(np.float32)
        sdf = (np.linalg.norm(pts, axis=1) - 0.5).astype(np.float32)
        c0 = rng.normal(size=(corr, 3)).astype(np.float32)
        c0 *= 0.5 / np.linalg.norm(c0, axis=1, keepdims=True)
        sway = 0.05 * np.sin(2 * np.pi * times)[:, None, None] * c0[None, :, 1:2]
        c = (c0[None] + sway * np.array([1, 0, 0], np.float32)).astype(np.float32)
        spec = SourceSpec(f"synthetic{i:03d}", "procedural", "train")
        out.append(Instance(spec, {"sdf_points": pts, "sdf": sdf, "corr": c, "times": times,
                                   "center": np.zeros(3, np.float32),
                                   "scale": np.float32(1.0)}))
    return out


def bench_dnf(args, clock: StepClock, rows: list, result: dict) -> None:
    import torch

    from backend.methods.dnf.config import get_preset
    from backend.methods.dnf.data import list_sources
    from backend.methods.dnf.gen.store import generator_preset
    from backend.methods.dnf.gen.training import train_motion_diffusion, train_shape_diffusion
    from backend.methods.dnf.pipeline import fit_fields

    paper = get_preset(args.preset)
    n_iter = args.warmup + args.steps
    tc = paper.train
    full = {"shape-a": tc.shape_iters, "motion-a": tc.motion_iters}
    for s in "bcd":
        full[f"shape-{s}"], full[f"motion-{s}"] = tc.ft_shape_iters, tc.ft_motion_iters
    preset = dataclasses.replace(
        paper, device=args.device,
        train=dataclasses.replace(tc, shape_iters=n_iter, motion_iters=n_iter,
                                  ft_shape_iters=n_iter, ft_motion_iters=n_iter))
    t0 = time.perf_counter()
    count = args.instances or len([s for s in list_sources(paper.data) if s.split == "train"])
    result["dnf_instances"] = count
    if "fields" in args.only:
        inst = synthetic_instances(count, paper.data.sdf_uniform + paper.data.sdf_near,
                                   paper.data.corr_points, paper.data.frames)
        result["dnf_data_s"] = round(time.perf_counter() - t0, 1)
        print(f"DNF data: {count} instances in {result['dnf_data_s']} s", flush=True)

    def rep(stage: str, fraction: float, message: str) -> None:
        clock.mark(stage, round(fraction * n_iter))

    model = None
    if "fields" in args.only:
        try:
            model = fit_fields(preset, inst, report=rep, log=lambda m: print(m, flush=True))
        except Exception:
            result["errors"]["dnf-fields"] = traceback.format_exc()
            traceback.print_exc()
        for stage, iters in full.items():
            _row(clock, stage, iters, rows, result, "DNF fields")
    gens = [g for g in ("gen", "gen-motion") if g in args.only]
    if gens and model is None and "fields" not in args.only:
        model = _untrained_stage_d(preset, count)
    if gens and model is not None:
        from backend.methods.dnf.gen.tokens import Tokenizer

        gp = generator_preset(args.preset, paper.data.frames)

        def short(cfg):
            return dataclasses.replace(cfg, optim=dataclasses.replace(
                cfg.optim, iters=n_iter, log_every=max(1, min(5, args.warmup))))

        def grep(stage: str, fraction: float, message: str) -> None:
            clock.mark(stage, round(fraction * n_iter))
            print(f"  {stage} {message}", flush=True)

        shapes = model.shape_vecs["d"].cpu()
        try:
            if "gen" in gens:
                sgen = train_shape_diffusion(short(gp.shape), shapes, model.shape_layout("d"),
                                             grep, device=args.device)
                _row(clock, "train-shape", gp.shape.optim.iters, rows, result, "DNF diffusion")
                tok = sgen.tokenizer
            else:  # the motion denoiser alone: it needs only the shape tokens' statistics
                tok = Tokenizer.fit(model.shape_layout("d"), shapes)
            train_motion_diffusion(short(gp.motion), shapes,
                                   model.motion_vecs["d"].cpu(), tok,
                                   model.motion_layout("d"), grep, device=args.device)
            _row(clock, "train-motion", gp.motion.optim.iters, rows, result, "DNF diffusion")
        except Exception:
            result["errors"]["dnf-gen"] = traceback.format_exc()
            traceback.print_exc()
    if args.device == "cuda":
        result["dnf_peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)


def _untrained_stage_d(preset, count: int):
    """A model whose stage-d vectors have the trained layout (dictionaries of the untrained
    MLPs, codes drawn at random): what the denoisers train on, without the fields' training."""
    import torch

    from backend.methods.dnf.model import DNFModel

    frames = preset.data.frames
    model = DNFModel.untrained(preset, [{"name": f"s{i}"} for i in range(count)])
    model.build_dictionaries("d")
    gen = torch.Generator().manual_seed(0)
    codes = torch.randn(count, preset.shape.code_dim, generator=gen) * 0.01
    poses = torch.randn(count * frames, preset.motion.pose_dim, generator=gen) * 0.01
    model.shape_vecs["d"] = model.shape_dicts["d"].init_vectors(codes, model.shape_layout("d"))
    model.motion_vecs["d"] = model.motion_dicts["d"].init_vectors(
        poses, model.motion_layout("d")).reshape(count, frames, -1)
    return model


def bench_ds4d(args, clock: StepClock, rows: list, result: dict) -> None:
    import warnings

    from backend.methods.ds4d.presets import StageDensify, preset
    from backend.methods.ds4d.train import Scene, train
    from backend.methods.ds4d.views import InputViewOnly

    paper = preset(args.preset)
    clip = _load_clip(args.clip, paper)
    n_iter = args.warmup + args.steps
    cfg = dataclasses.replace(paper, static_steps=n_iter, dynamic_steps=n_iter,
                              static_densify=StageDensify(0, 0), dynamic_densify=StageDensify(0, 0),
                              preview_every=0, progress_every=max(1, min(5, args.warmup)),
                              rasterizer=args.rasterizer)
    total = 2 * n_iter

    def rep(stage: str, fraction: float, message: str) -> None:
        if stage in ("static", "dynamic"):
            step = round(fraction * total) - (n_iter if stage == "dynamic" else 0)
            clock.mark(f"ds4d-{stage}", step)

    scene = Scene.from_source(InputViewOnly(clip, warn=False))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = train(scene, cfg, rep, device=args.device)
        result["ds4d_features_s"] = round(res.timings["features"], 2)
        result["ds4d_gaussians"] = int(res.model.gaussians.means.shape[0])
    except Exception:
        result["errors"]["ds4d"] = traceback.format_exc()
        traceback.print_exc()
    for stage, iters in (("ds4d-static", paper.static_steps),
                         ("ds4d-dynamic", paper.dynamic_steps)):
        _row(clock, stage, iters, rows, result, "DS4D")


def _load_clip(path: Path, cfg):
    """The paper-sized working clip of a video, or of an ``.npz`` written by :func:`_save_clip`
    (arrays and a JSON record: nothing is unpickled)."""
    from backend.methods.ds4d.clip import Clip, CropBox, InputConfig, load_clip

    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            return Clip(z["rgba"], z["times"], z["source_indices"], meta["names"],
                        CropBox(**meta["box"]), tuple(meta["source_size"]), meta["fps"],
                        meta["mask_source"], meta["source_frames"])
    return load_clip(path, InputConfig(size=cfg.size, frames=cfg.frames))


def _save_clip(clip, path: Path) -> None:
    meta = {"names": list(clip.names), "box": dataclasses.asdict(clip.box),
            "source_size": list(clip.source_size), "fps": clip.fps,
            "mask_source": clip.mask_source, "source_frames": int(clip.source_frames)}
    np.savez_compressed(path, rgba=clip.rgba, times=clip.times,
                        source_indices=clip.source_indices, meta=np.array(json.dumps(meta)))


def _row(clock: StepClock, stage: str, iters: int, rows: list, result: dict, group: str) -> None:
    try:
        per, timed = clock.per_step(stage)
    except RuntimeError as err:
        result["errors"].setdefault(stage, str(err))
        return
    result["stages"][stage] = {"s_per_step": round(per, 5), "steps_timed": timed,
                               "preset_steps": iters, "projected_s": round(per * iters, 1)}
    print(f"{group} {stage}: {per:.4f} s/step over {timed} steps; x{iters} = "
          f"{per * iters / 60:.1f} min", flush=True)
    rows.append(Row(f"{group} {stage}: s/step ({timed} steps)", per, "s"))
    rows.append(Row(f"{group} {stage}: projected x{iters}", per * iters / 60, "min"))


def main(argv: list[str] | None = None) -> int:
    ap = bench_parser(__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"],
                    help="auto: CUDA when there is a GPU, else nothing is timed (the paper "
                    "sizes take minutes per step on a CPU: ask for --device cpu)")
    ap.add_argument("--steps", type=int, default=200, help="timed steps per stage")
    ap.add_argument("--warmup", type=int, default=10, help="untimed steps first")
    ap.add_argument("--only", nargs="+", default=["fields", "gen", "ds4d"],
                    choices=["fields", "gen", "gen-motion", "ds4d"],
                    help="gen: both denoisers; gen-motion: the motion denoiser alone")
    ap.add_argument("--instances", type=int, default=453,
                    help="DNF synthetic instances (default: the paper preset's 453 training "
                    "instances; 0: count the preset's data selection, which needs the data)")
    ap.add_argument("--clip", type=Path, default=CLIP, help="DS4D clip (.mp4 or --save-clip)")
    ap.add_argument("--rasterizer", default="auto", choices=["auto", "gsplat", "torch"],
                    help="DS4D's rasterizer (auto: gsplat on CUDA)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's)")
    ap.add_argument("--tf32", action="store_true", help="allow TF32 matrix products on CUDA")
    ap.add_argument("--save-clip", type=Path, default=None,
                    help="only write the paper-sized DS4D clip here (.npz) "
                    "and exit")
    ap.add_argument("--preset", default="paper", choices=["paper", "tiny"],
                    help="the presets timed (tiny: a smoke run of this script)")
    args = ap.parse_args(argv)
    import torch

    if args.save_clip:
        from backend.methods.ds4d.presets import preset

        args.save_clip.parent.mkdir(parents=True, exist_ok=True)
        _save_clip(_load_clip(args.clip, preset("paper")), args.save_clip)
        print(f"wrote {args.save_clip}")
        return 0
    if args.device == "auto" and not torch.cuda.is_available():
        print("no CUDA device: nothing timed (--device cpu times the paper sizes on the CPU)")
        report("gpu_steps", [], args.json, {"skipped": "no CUDA device"})
        return 0
    if args.device == "auto":
        args.device = "cuda"
    if args.device == "cuda" and not torch.cuda.is_available():
        print("--device cuda, but this torch sees no CUDA device")
        return 1
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    torch.backends.cudnn.allow_tf32 = args.tf32
    clock = StepClock(args.warmup)
    rows: list = []
    name = (torch.cuda.get_device_name() if args.device == "cuda"
            else f"cpu x{torch.get_num_threads()}")
    result: dict = {"device": name, "torch": torch.__version__, "tf32": args.tf32,
                    "rasterizer": args.rasterizer,
                    "steps": args.steps, "warmup": args.warmup, "stages": {}, "errors": {}}
    if {"fields", "gen", "gen-motion"} & set(args.only):
        bench_dnf(args, clock, rows, result)
    if "ds4d" in args.only:
        bench_ds4d(args, clock, rows, result)
    report("gpu_steps", rows, args.json, result)
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
