"""DS4D evaluation (issues 10 and 11) -> docs/results/ds4d.md and docs/results/ds4d/*.png.

1. Ground truth: a walking animal (``--glb``, its walk action, 16 frames of one cycle) scaled to
   a unit cube, rendered in Blender (Cycles, transparent film) from a front input camera
   (azimuth 0, elevation 0) and four orbit cameras (azimuths 45, 135, 225, 315, elevation 15;
   radius 2, vertical FoV 49.1); the cameras file written by the add-on's camera exporter.
2. ``video.to4d`` (``cpu`` preset, seed 0) on an embedded backend: with three of the four other
   views supplied (``--hold-out`` kept out), from the input view alone, and issue 11's ablation
   ladder on the supplied-views set-up (no point features; frame features without DSFD, mean
   fusion; DSFD, mean fusion; DSFD + TSSF-GA; DSFD + TSSF-DA = the supplied-views run).
3. Every result rendered with our CPU rasterizer from the ground-truth cameras; PSNR, SSIM (whole
   frame and inside the object's box), mask IoU per view and frame; the blank frame as the floor.
4. Issue 11's real clips (single view, ``cpu`` preset): renders from the input camera beside the
   working input frames and from two other angles.

Run (about 15 min on 2 idle cores, over an hour when they are busy; results are reused from
``--work`` unless ``--fresh``)::

    PYTHONPATH=$PWD .venv/bin/python bench/eval_ds4d.py

``--quick``: a smoke version (4 frames, ``tiny`` preset, 128 px) writing under ``--work`` only.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ds4d_study import doc, figures  # noqa: E402
from bench.ds4d_study.metrics import mean_scores  # noqa: E402
from bench.ds4d_study.render_eval import load_frames, read_rgba, render_rgba, score_view  # noqa: E402,E501
from bench.ds4d_study.runs import RunSpec, run_jobs  # noqa: E402
from bench.lib.report import bench_parser, report  # noqa: E402

COMMAND = "PYTHONPATH=$PWD .venv/bin/python bench/eval_ds4d.py"
# The ladder's schedule: 0 = the preset's (its DA rung is then the supplied-views run); with
# --ladder-steps N the ladder's runs train LADDER_STATIC static + N dynamic steps (a CPU budget).
LADDER_STEPS = 0
LADDER_STATIC = 40
OTHER = ("az045", "az135", "az225", "az315")
LADDER = (("no point features", "none", "auto"),
          ("frame features, no DSFD (mean fusion)", "raw", "mean"),
          ("DSFD (mean fusion)", "dsfd", "mean"),
          ("DSFD + TSSF-GA", "dsfd", "ga"),
          ("DSFD + TSSF-DA", "dsfd", "da"))


def _data_dir() -> Path:
    for p in (ROOT / ".." / "shared" / "data", Path("/work/shared/data")):
        if p.is_dir():
            return p.resolve()
    raise SystemExit("no ../shared/data next to the repository")


def ground_truth(work: Path, glb: Path, frames: int, size: int, samples: int, fresh: bool,
                 log=print) -> tuple[Path, float]:
    gt = work / "gt"
    if (gt / "gt_info.json").is_file() and not fresh:
        info = json.loads((gt / "gt_info.json").read_text())
        if info.get("frames") == frames and info.get("size") == size:
            log(f"[gt] reusing {gt}")
            return gt, float(info.get("seconds", float("nan")))
    spec = {"glb": str(glb), "action": "walk", "frames": frames, "size": size,
            "samples": samples, "out": str(gt), "radius": 2.0, "fov_deg": 49.1,
            "cameras": [{"name": "input", "azimuth": 0, "elevation": 0}]
            + [{"name": n, "azimuth": int(n[2:]), "elevation": 15} for n in OTHER]}
    gt.mkdir(parents=True, exist_ok=True)
    (gt / "spec.json").write_text(json.dumps(spec, indent=1))
    log(f"[gt] rendering {5 * frames} frames in Blender (Cycles, {samples} samples, {size} px)")
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "bench.ds4d_study.gt_blender",
                             str(gt / "spec.json")], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    tail = []
    for line in proc.stdout:
        tail = (tail + [line])[-30:]
        if line.startswith("GT-PROGRESS") and line.split()[1].split("/")[0] in ("1", "40"):
            log(f"[gt] {line.strip()}")
    if proc.wait() != 0:
        raise SystemExit("Blender ground truth failed:\n" + "".join(tail))
    seconds = time.perf_counter() - t0
    info = json.loads((gt / "gt_info.json").read_text())
    info.update(frames=frames, size=size, samples=samples, seconds=seconds)
    (gt / "gt_info.json").write_text(json.dumps(info, indent=1))
    return gt, seconds


def _frames(folder: Path) -> list[Path]:
    """An image sequence in natural name order (0.png, 1.png, ..., 10.png), as the job reads
    it."""
    from backend.methods.ds4d.video_io import natural_key

    return sorted(folder.glob("*.png"), key=natural_key)


def view_files(gt: Path, name: str) -> list[Path]:
    return sorted((gt / "views").glob(f"{name}_*.png"))


def run_specs(gt: Path, hold_out: str, preset: str, data: Path, ladder_steps: int
              ) -> list[RunSpec]:
    """The jobs, most wanted first: the two issue-10 runs, the real clips, then the ladder
    (``ladder_steps`` > 0: the ladder on that many dynamic steps, its own DA rung included)."""
    supplied = [v for v in OTHER if v != hold_out]
    cams = gt / "cameras.json"
    base = {"preset": preset, "seed": 0}
    mv_views = [f for v in supplied for f in view_files(gt, v)]

    def mv_spec(name: str, pf: str, ts: str, extra: dict) -> RunSpec:
        return RunSpec(name, view_files(gt, "input"),
                       {**base, **extra, "views_source": "supplied", "point_features": pf,
                        "tssf": ts}, views=mv_views, cameras_from=cams,
                       camera_names=("input", *supplied))

    trex = _frames(data / "videos" / "roaring_t-rex")
    specs = [RunSpec("sv", view_files(gt, "input"), {**base, "views_source": "input"},
                     cameras_from=cams, camera_names=("input",)),
             mv_spec("mv", "dsfd", "auto", {}),
             RunSpec("real_trex", trex, {**base, "views_source": "input"}),
             RunSpec("real_cat", [data / "videos" / "cat_king_fg.mp4"],
                     {**base, "views_source": "input"})]
    for _label, pf, ts in LADDER:
        name = ladder_name(pf, ts, ladder_steps)
        if name != "mv":
            specs.append(mv_spec(name, pf, ts, {"steps": ladder_steps,
                                                "static_steps": LADDER_STATIC}
                                 if ladder_steps else {}))
    return specs


def ladder_name(pf: str, ts: str, steps: int = 0) -> str:
    """The run of a ladder rung ("mv" = the full supplied-views run, the DA rung at the
    preset's schedule)."""
    if (pf, ts) == ("dsfd", "da") and not steps:
        return "mv"
    return f"ladder{f'{LADDER_STATIC}+{steps}' if steps else ''}_{pf}_{ts}"


def evaluate_horse(gt: Path, results: dict, hold_out: str, ladder_steps: int, log=print
                   ) -> dict:
    """Scores per run, view and frame; the renders kept for the figures."""
    from shared.cameras import read_cameras

    cams = {c.name: c for c in read_cameras(gt / "cameras.json")}
    gt_frames = {n: [read_rgba(p) for p in view_files(gt, n)] for n in cams}
    plan = {"sv": ["input", *OTHER]}
    for _l, pf, ts in LADDER:
        plan[ladder_name(pf, ts, ladder_steps)] = ["input", hold_out]
    plan["mv"] = ["input", hold_out]
    out = {"scores": {}, "blank": {}, "renders": {}, "gt": gt_frames, "cams": cams}
    for run, views in plan.items():
        if run not in results:
            continue
        frames = load_frames(results[run].folder)
        for v in views:
            ours, blank, renders = score_view(frames, cams[v], gt_frames[v])
            out["scores"][(run, v)] = ours
            out["blank"][v] = blank
            out["renders"][(run, v)] = renders
            m = mean_scores(ours)
            log(f"[eval] {run:>18} {v:>6}: PSNR {m.psnr:.2f} (box {m.psnr_box:.2f}) SSIM "
                f"{m.ssim:.3f} (box {m.ssim_box:.3f}) IoU {m.iou:.3f}")
    return out


def evaluate_real(results: dict, name: str, source, preset_size: int, frames: int,
                  fig: Path, log=print) -> dict:
    """Working input frames, renders from the input camera and two orbit angles; input-view
    scores (the fit, not held out)."""
    from backend.methods.ds4d.clip import InputConfig, load_clip
    from backend.render.cameras import orbit_viewmat, viewmat_to_orbit
    from bench.ds4d_study.metrics import score
    from shared.cameras import check_camera

    res = results[name]
    manifest = json.loads((res.folder / "manifest.json").read_text())
    cam = check_camera(next(c for c in manifest["cameras"] if c["name"] == "input"))
    clip = load_clip(source, InputConfig(size=preset_size, frames=frames))
    gs = load_frames(res.folder)
    _az, _el, r = viewmat_to_orbit(cam.world_to_camera)
    renders = {"input camera": [render_rgba(g, cam.world_to_camera, cam.K, cam.width,
                                            cam.height) for g in gs]}
    for az in (90, 180):
        vm = orbit_viewmat(az, 15, r)
        renders[f"azimuth {az}, elevation 15"] = [render_rgba(g, vm, cam.K, cam.width,
                                                              cam.height) for g in gs]
    fit = [score(o, np.asarray(t)) for o, t in zip(renders["input camera"], clip.rgba,
                                                       strict=True)]
    pick = _pick(len(gs))
    rows = [("input (working frames)", [figures.tile(clip.rgba[i], None, 128) for i in pick])]
    rows += [(f"ours, {k}", [figures.tile(v[i], None, 128) for i in pick])
             for k, v in renders.items()]
    figures.strips(rows, fig, f"{name}: frames {', '.join(map(str, pick))}")
    m = mean_scores(fit)
    log(f"[real] {name}: input view PSNR {m.psnr:.2f} SSIM {m.ssim:.3f} IoU {m.iou:.3f}")
    return {"fit": fit, "gaussians": gs[0].count, "figure": fig,
            "change": (doc.silhouette_change(list(clip.rgba)),
                       doc.silhouette_change(renders["input camera"]))}


def _describe(name: str) -> str:
    from backend.methods.ds4d.presets import preset

    p = preset(name)
    return (f"{p.size} px working size, {p.frames} frames, {p.static_steps} static + "
            f"{p.dynamic_steps} dynamic steps, {p.n_init} initial Gaussians")


def _pick(n: int) -> list[int]:
    return sorted({int(round(x)) for x in np.linspace(0, n - 1, min(4, n))})


def main() -> int:
    ap = bench_parser(__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="smoke version: 4 frames, tiny preset, 128 px; writes under --work")
    ap.add_argument("--work", type=Path, default=None,
                    help="ground truth and results (default out/ds4d_study[_quick])")
    ap.add_argument("--doc", type=Path, default=None,
                    help="the page (default docs/results/ds4d.md; --quick: under --work)")
    ap.add_argument("--glb", type=Path, default=None, help="the animal (default Horse.glb)")
    ap.add_argument("--hold-out", default="az135", choices=OTHER)
    ap.add_argument("--fresh", action="store_true", help="remake the ground truth and every run")
    ap.add_argument("--ladder-steps", type=int, default=None,
                    help="dynamic steps of the ladder's runs (0: the preset's schedule, and "
                         f"the DA rung is the supplied-views run; N: {LADDER_STATIC} static + N "
                         "dynamic steps, for a CPU budget); default 0")
    ap.add_argument("--skip-real", action="store_true", help="leave out the real clips")
    ap.add_argument("--no-train", action="store_true",
                    help="run no job: score and write the page from the results already in "
                         "--work (missing runs are reported as not run)")
    args = ap.parse_args()
    if args.ladder_steps is None:
        args.ladder_steps = LADDER_STEPS
    data = _data_dir()
    glb = args.glb or data / "animals" / "Horse.glb"
    work = args.work or ROOT / ("out/ds4d_study_quick" if args.quick else "out/ds4d_study")
    docpath = args.doc or (work / "ds4d.md" if args.quick else ROOT / "docs/results/ds4d.md")
    imgdir = docpath.parent / "ds4d"
    frames, size, samples, preset = (4, 128, 4, "tiny") if args.quick else (16, 256, 8, "cpu")
    preset_size = 32 if args.quick else 128
    t_start = time.perf_counter()
    gt, gt_seconds = ground_truth(work, glb, frames, size, samples, args.fresh)
    specs = run_specs(gt, args.hold_out, preset, data, args.ladder_steps)
    if args.skip_real:
        specs = [s for s in specs if not s.name.startswith("real_")]
    if args.no_train:
        specs = [x for x in specs if (work / "runs" / x.name / "study_run.json").is_file()]
    results = run_jobs(specs, work, fresh=args.fresh and not args.no_train)
    t_eval = time.perf_counter()
    ev = evaluate_horse(gt, results, args.hold_out, args.ladder_steps)
    real = {}
    sources = {"real_trex": _frames(data / "videos" / "roaring_t-rex"),
               "real_cat": data / "videos" / "cat_king_fg.mp4"}
    for name, source in sources.items():
        if name in results:
            real[name] = evaluate_real(results, name, source, preset_size, frames,
                                       imgdir / f"{name}.png")
    figs = doc.horse_figures(ev, args.hold_out, imgdir, _pick(frames), [
        (label, ladder_name(pf, ts, args.ladder_steps)) for label, pf, ts in LADDER])
    summary = doc.summaries(ev)
    rows = doc.bench_rows(summary)
    text = doc.page(ev, summary, results, real, figs, docpath, dict(
        command=COMMAND + (" --quick" if args.quick else ""), glb=glb.name,
        hold_out=args.hold_out, frames=frames, size=size, samples=samples, preset=preset,
        gt_seconds=gt_seconds, total_seconds=time.perf_counter() - t_start,
        gt_info=json.loads((gt / "gt_info.json").read_text()), preset_desc=_describe(preset),
        eval_seconds=time.perf_counter() - t_eval,
        ladder_steps=args.ladder_steps, ladder_static=LADDER_STATIC), LADDER,
        lambda pf, ts: ladder_name(pf, ts, args.ladder_steps))
    docpath.parent.mkdir(parents=True, exist_ok=True)
    docpath.write_text(text)
    print(f"wrote {docpath}")
    scores = imgdir / "scores.json"
    scores.write_text(json.dumps(summary["json"], indent=1))
    print(f"wrote {scores}")
    report("eval_ds4d", rows, args.json, {k: v for k, v in summary["json"].items()
                                          if k != "per_frame"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
