"""The results page of the DS4D study: tables, figures, set-up, limitations."""

from __future__ import annotations

from pathlib import Path

from bench.lib.report import Row

from . import figures
from .metrics import mask_iou, mean_scores

METRICS = ("psnr", "ssim", "psnr_box", "ssim_box", "iou")
HEAD = "| PSNR dB | SSIM | PSNR box dB | SSIM box | mask IoU |"


def _cells(d: dict) -> str:
    return (f"| {d['psnr']:.2f} | {d['ssim']:.3f} | {d['psnr_box']:.2f} | {d['ssim_box']:.3f} "
            f"| {d['iou']:.3f} |")


def summaries(ev: dict) -> dict:
    means = {k: mean_scores(v).as_dict() for k, v in ev["scores"].items()}
    blank = {v: mean_scores(s).as_dict() for v, s in ev["blank"].items()}
    per_frame = {f"{r} {v}": [s.as_dict() for s in sc] for (r, v), sc in ev["scores"].items()}
    per_frame.update({f"blank {v}": [s.as_dict() for s in sc] for v, sc in ev["blank"].items()})
    return {"means": means, "blank": blank, "json": {"means": {f"{r} {v}": m for (r, v), m in
                                                              means.items()},
                                                    "blank": blank, "per_frame": per_frame}}


def bench_rows(summary: dict) -> list[Row]:
    rows = []
    for (run, view), m in summary["means"].items():
        b = summary["blank"][view]
        for k in ("psnr", "psnr_box", "ssim_box", "iou"):
            ratio = m[k] / b[k] if b[k] else None
            rows.append(Row(f"{run} {view} {k}", m[k], "dB" if "psnr" in k else "",
                            "blank frame", b[k], ratio))
    return rows


def horse_figures(ev: dict, hold_out: str, imgdir: Path, pick: list[int],
                  ladder_rows: list[tuple[str, str]] = ()) -> dict[str, Path]:
    """The Horse figures; ``ladder_rows``: (label, run name) of the ladder's rungs in order."""
    gt, rd = ev["gt"], ev["renders"]
    out = {}
    hb = figures.square_box([a[..., 3] for a in gt[hold_out]])
    ib = figures.square_box([a[..., 3] for a in gt["input"]])
    rows = [("input view (front camera, what the job sees)",
             [figures.tile(gt["input"][i], ib, 128) for i in pick])]
    for run, label in (("mv", "ours, 3 views supplied"), ("sv", "ours, input view only")):
        if (run, hold_out) in rd:
            rows.append((f"{label}: held-out {hold_out}",
                         [figures.tile(rd[(run, hold_out)][i], hb, 128) for i in pick]))
    rows.append((f"ground truth {hold_out}", [figures.tile(gt[hold_out][i], hb, 128)
                                              for i in pick]))
    out["heldout"] = figures.strips(rows, imgdir / "horse_heldout.png",
                                    f"frames {', '.join(map(str, pick))}")
    rows = [("ground truth input", [figures.tile(gt["input"][i], ib, 128) for i in pick])]
    for run, label in (("mv", "ours (3 views) at the input camera"),
                       ("sv", "ours (input only) at the input camera")):
        if (run, "input") in rd:
            rows.append((label, [figures.tile(rd[(run, "input")][i], ib, 128) for i in pick]))
    out["input"] = figures.strips(rows, imgdir / "horse_input.png", "camera check: input view")
    views = [v for v in gt if v != "input" and ("sv", v) in rd]
    if views:
        mid = pick[len(pick) // 2]
        boxes = {v: figures.square_box([a[..., 3] for a in gt[v]]) for v in views}
        rows = [("ours, input view only", [figures.tile(rd[("sv", v)][mid], boxes[v], 128)
                                           for v in views]),
                ("ground truth", [figures.tile(gt[v][mid], boxes[v], 128) for v in views])]
        out["sv_views"] = figures.strips(rows, imgdir / "horse_sv_views.png",
                                         f"frame {mid}: views {', '.join(views)}")
    ladder = [(lb, r) for lb, r in ladder_rows if (r, hold_out) in rd]
    if ladder:
        rows = [(lb, [figures.tile(rd[(r, hold_out)][i], hb, 128) for i in pick])
                for lb, r in ladder]
        rows.append(("ground truth", [figures.tile(gt[hold_out][i], hb, 128) for i in pick]))
        out["ladder"] = figures.strips(rows, imgdir / "horse_ladder.png",
                                       f"held-out {hold_out}, frames {', '.join(map(str, pick))}")
    return out


def _rel(p: Path, doc: Path) -> str:
    return str(Path(p).resolve().relative_to(doc.parent.resolve()))


def page(ev: dict, summary: dict, results: dict, real: dict, figs: dict, docpath: Path,
         s: dict, ladder, ladder_name) -> str:
    means, blank, ho = summary["means"], summary["blank"], s["hold_out"]
    remake = s["gt_seconds"] + sum(r.seconds for r in results.values()) + s["eval_seconds"]
    L = ["# DS4D results (issues 10 and 11)", "",
         "Made by one command, CPU only (about "
         f"{remake / 60:.0f} min from scratch on a shared 2-core machine: the sum of the "
         "ground truth, job and scoring times below; without `--fresh` finished runs are "
         "reused from `out/ds4d_study`):", "", "```", s["command"] + " --fresh", "```", "",
         "The full runs take minutes each, so they are not part of `make test`; the metric "
         "functions are unit-tested in `tests/ds4d/test_eval_metrics.py`.", ""]
    gi = s["gt_info"]
    L += ["## Set-up", "",
          f"- Ground truth: `{s['glb']}` from `../shared/data/animals`, action "
          f"`{gi.get('action')}` (frames {gi['action_frames'][0]:g}-{gi['action_frames'][1]:g}, "
          f"one cycle sampled at {s['frames']} evenly spaced times), scaled to a unit cube and "
          f"centred (the STAG4D set-up), rendered in Blender 5.0 (bpy module, Cycles CPU, "
          f"{s['samples']} samples + denoiser, transparent film, {s['size']} x {s['size']} px, "
          "Standard view transform, white ambient light + a sun) from the input camera "
          "(azimuth 0 = the animal's front, elevation 0) and four cameras at azimuths 45, 135, "
          "225, 315, elevation 15; radius 2, vertical FoV 49.1. The cameras file is written "
          "by the add-on's exporter (`blender_addon/bl/camera_export.py`) from the Blender "
          "camera objects, which are checked to convert back to the orbit cameras. "
          f"Ground truth rendering took {s['gt_seconds']:.0f} s.",
          f"- Reconstructions: `video.to4d`, preset `{s['preset']}` ({s['preset_desc']}), "
          "seed 0, on an embedded backend (uploads "
          "and fetches over ZeroMQ, as the add-on does). No pretrained weights on this machine: "
          "frame features are the weight-free descriptor and the other views' loss is the "
          "multi-scale D-SSIM substitute (LPIPS cannot load beside torch 2.13 here).",
          f"  - **3 views supplied**: the input clip plus the views "
          f"{', '.join(v for v in ('az045', 'az135', 'az225', 'az315') if v != ho)} with their "
          f"cameras; `{ho}` held out.",
          "  - **input only**: the input clip with its camera (`views_source=input`); all four "
          "other views are held out.",
          "- Scoring: each result's Gaussians rendered with our CPU rasterizer "
          "(`backend/render`) through the ground-truth cameras as written in the cameras file "
          "(OpenCV world-to-camera in the Y-up frame, K in pixels of the "
          f"{s['size']} px frames), over white like the ground truth. PSNR and SSIM (11 x 11 "
          "Gaussian window) on the whole "
          "frame and inside the object's box (the union of the ground truth's and our alpha > "
          "0.5, padded 4 px), mask IoU of alpha > 0.5. The **blank frame** (an empty render) "
          "scored the same way is the floor.", ""]
    L += ["## Held-out views (issue 10)", "",
          "Means over the frames; per-frame figures below and in "
          "[`ds4d/scores.json`](ds4d/scores.json).", "",
          "| run | view " + HEAD, "|---|---" + "|---" * 5 + "|"]
    order = [("mv", "input"), ("mv", ho), ("sv", "input")] + [
        ("sv", v) for v in ("az045", "az135", "az225", "az315")]
    names = {"mv": "3 views supplied", "sv": "input only"}
    for r, v in order:
        if (r, v) in means:
            tag = " (training view: camera check)" if v == "input" else " (held out)"
            L.append(f"| {names[r]} | {v}{tag} " + _cells(means[(r, v)]))
    for v in ["input", "az045", "az135", "az225", "az315"]:
        if v in blank:
            L.append(f"| blank frame (floor) | {v} " + _cells(blank[v]))
    L.append("")
    L += _findings(means, blank, ho)
    L += _motion(ev, ho)
    if ("mv", ho) in ev["scores"] and ("sv", ho) in ev["scores"]:
        L += [f"Per frame, held-out view `{ho}` (PSNR box dB / SSIM box / IoU):", "",
              "| frame | 3 views supplied | input only | blank frame |", "|---|---|---|---|"]
        for i, (a, b, c) in enumerate(zip(ev["scores"][("mv", ho)], ev["scores"][("sv", ho)],
                                          ev["blank"][ho], strict=True)):
            L.append(f"| {i} | {a.psnr_box:.2f} / {a.ssim_box:.3f} / {a.iou:.3f} | "
                     f"{b.psnr_box:.2f} / {b.ssim_box:.3f} / {b.iou:.3f} | "
                     f"{c.psnr_box:.2f} / {c.ssim_box:.3f} / {c.iou:.3f} |")
        L.append("")
    for key, cap in (("heldout", "Input, ours and ground truth at the held-out camera "
                                 "(cropped to the ground truth's box, same crop per row)"),
                     ("input", "Camera check: ours rendered at the input camera"),
                     ("sv_views", "Input only: every other view at the middle frame")):
        if key in figs:
            L += [f"![{cap}]({_rel(figs[key], docpath)})", "", f"*{cap}.*", ""]
    L += ["## Ablation ladder (issue 11)", "",
          f"Same clip, the 3-views-supplied set-up, seed 0, scored on the held-out `{ho}` "
          "(means over frames). `mean fusion` stands in for TSSF on the rungs before it: the "
          "point features of the views that see a point are averaged. "
          + (f"**For the CPU budget the ladder's runs train only {s['ladder_static']} static "
             f"+ {s['ladder_steps']} dynamic steps** (`--param static_steps=... steps=...`) "
             "instead of the preset's 150 + 450, so its DSFD + TSSF-DA rung is its own run, "
             "not the 3-views run above, and the ladder compares barely trained models."
             if s.get("ladder_steps") else
             "The DSFD + TSSF-DA rung is the 3-views run above."), "",
          "| step " + HEAD + " job s |", "|---" + "|---" * 6 + "|"]
    prev = None
    for label, pf, ts in ladder:
        n = ladder_name(pf, ts)
        if (n, ho) not in means:
            L.append(f"| {label} | not run |||||")
            continue
        m = means[(n, ho)]
        L.append(f"| {label} " + _cells(m) + f" {results[n].seconds:.0f} |")
        prev = m if prev is None else prev
    L.append("")
    L += _ladder_words(means, ho, ladder, ladder_name)
    if "ladder" in figs:
        L += [f"![ladder]({_rel(figs['ladder'], docpath)})", "",
              "*The ladder's rungs at the held-out camera, then the ground truth.*", ""]
    if real:
        L += ["## Real clips, single view (issue 11)", "",
              f"`video.to4d` preset `{s['preset']}`, `views_source=input` (the default STAG4D "
              "front camera); renders at the input camera beside the working input frames (the "
              "job's crop at the preset's working size), and from azimuth 90 and 180 at "
              "elevation 15 at the same radius. The input-view figures are the fit to the "
              "training view, not a held-out score.", "",
              "The last columns: how much the silhouette moves (as above: mean 1 - IoU with "
              "frame 0) in the input frames and in ours at the input camera.", "",
              "| clip | Gaussians | input-view PSNR dB | SSIM | mask IoU | job s | "
              "motion: input | motion: ours |", "|---|---|---|---|---|---|---|---|"]
        for name, r in real.items():
            m = mean_scores(r["fit"]).as_dict()
            L.append(f"| {name} | {r['gaussians']} | {m['psnr']:.2f} | {m['ssim']:.3f} | "
                     f"{m['iou']:.3f} | {results[name].seconds:.0f} | "
                     f"{r['change'][0]:.3f} | {r['change'][1]:.3f} |")
        L.append("")
        for name, r in real.items():
            L += [f"![{name}]({_rel(r['figure'], docpath)})", ""]
    L += kept_block(docpath)
    L += ["## Timings", "", f"Ground truth (Blender): {s['gt_seconds']:.0f} s; scoring and "
          f"figures: {s['eval_seconds']:.0f} s.", "",
          "| run | job wall s (submit to done) | features | TSSF |", "|---|---|---|---|"]
    for n, r in results.items():
        L.append(f"| {n} | {r.seconds:.0f} | {r.extra.get('features', '?')} | "
                 f"{r.extra.get('tssf', '?')} |")
    L += ["", "Measured on a 2-core machine shared with other work whose load varied from "
          "idle to about 7 during these runs, so the times are only indicative: runs of the "
          "same size took several times longer under load.", ""]
    L += ["## Limitations", "",
          "- One animal, one seed, one held-out view; no other seed was run, so differences "
          "of a few tenths of a dB between runs (the whole ladder) are not shown to be more "
          "than noise.",
          "- No pretrained weights: the weight-free descriptor replaces DINOv2 and a "
          "multi-scale D-SSIM replaces LPIPS; the paper's figures use both.",
          "- The `cpu` preset is a short schedule (600 steps at 128 px) against the paper's "
          "7,000 at 256 px; absolute numbers are far from converged.",
          "- How much of the motion the deformation field learns is measured above (the "
          "silhouette-motion tables), not assumed; on the `cpu` schedule ours moves less than "
          "the input where those tables say so.",
          "- The input camera looks at the animal head-on, so the input view alone sees little "
          "of its flanks; the input-only run's held-out scores show that, as issue 10 says it "
          "will.", ""]
    return "\n".join(L)


def _ladder_words(means: dict, ho: str, ladder, ladder_name) -> list[str]:
    rows = [(label, means.get((ladder_name(pf, ts), ho))) for label, pf, ts in ladder]
    rows = [(a, m) for a, m in rows if m is not None]
    if len(rows) < 2:
        return []
    out = ["Step by step (PSNR box / SSIM box / IoU change from the rung before; \"helps\" "
           "= more than +0.1 dB box PSNR without losing IoU, \"hurts\" = below -0.1 dB):", ""]
    for (_, a), (lb, b) in zip(rows, rows[1:], strict=False):
        d = [b["psnr_box"] - a["psnr_box"], b["ssim_box"] - a["ssim_box"], b["iou"] - a["iou"]]
        verdict = "helps" if d[0] > 0.1 and d[2] >= -0.005 else (
            "hurts" if d[0] < -0.1 else "no clear change")
        out.append(f"- {lb}: {d[0]:+.2f} dB, {d[1]:+.3f} SSIM, {d[2]:+.3f} IoU: {verdict}")
    first, last = rows[0][1], rows[-1][1]
    out += ["", f"From the first rung to the last: {last['psnr_box'] - first['psnr_box']:+.2f} "
            f"dB box PSNR, {last['iou'] - first['iou']:+.3f} IoU.", ""]
    return out


def _findings(means: dict, blank: dict, ho: str) -> list[str]:
    """Plain sentences from the table's numbers."""
    out = []
    for run, what in (("mv", "With three views supplied"), ("sv", "From the input view alone")):
        if (run, ho) not in means:
            continue
        m, b = means[(run, ho)], blank[ho]
        out.append(f"- {what}, the held-out `{ho}` scores {m['psnr_box']:.2f} dB box PSNR "
                   f"({m['psnr_box'] - b['psnr_box']:+.2f} dB over the blank frame), box SSIM "
                   f"{m['ssim_box']:.3f} (blank {b['ssim_box']:.3f}) and mask IoU "
                   f"{m['iou']:.3f}; whole-frame PSNR {m['psnr']:.2f} dB against the blank "
                   f"frame's {b['psnr']:.2f}.")
    if ("sv", "input") in means:
        m = means[("sv", "input")]
        out.append(f"- Camera check: at the input camera the input-only result scores "
                   f"{m['psnr_box']:.2f} dB box PSNR and IoU {m['iou']:.3f}, so the cameras "
                   "and the rasterizer agree with Blender's renders; the low held-out scores "
                   "are the reconstruction, not a misplaced camera.")
    return out + [""] if out else []


KEEP = ("<!-- kept: bench/ds4d_motion.py -->", "<!-- /kept -->")


def kept_block(docpath: Path) -> list[str]:
    """The block of the existing page between the :data:`KEEP` markers (markers included), so
    that remaking the page keeps figures another command measured (``bench/ds4d_motion.py``)."""
    if not docpath.is_file():
        return []
    text = docpath.read_text()
    a, b = text.find(KEEP[0]), text.find(KEEP[1])
    if a < 0 or b < a:
        return []
    return text[a:b + len(KEEP[1])].split("\n") + [""]


def silhouette_change(frames: list) -> float:
    """Mean over frames t of 1 - IoU(mask at frame 0, mask at t): how much the silhouette
    moves."""
    return float(sum(1 - mask_iou(frames[0][..., 3], f[..., 3]) for f in frames[1:])
                 / max(1, len(frames) - 1))


def _motion(ev: dict, ho: str) -> list[str]:
    rows, ratios = [], []
    for run, view in (("mv", "input"), ("mv", ho), ("sv", "input"), ("sv", ho)):
        if (run, view) in ev["renders"]:
            g = silhouette_change(ev["gt"][view])
            o = silhouette_change(ev["renders"][(run, view)])
            ratios.append(o / g if g > 0 else float("nan"))
            rows.append(f"| {run} | {view} | {g:.3f} | {o:.3f} |")
    if not rows:
        return []
    lo, hi = min(ratios), max(ratios)
    verdict = (f"Ours changes {lo:.0%} to {hi:.0%} as much as the ground truth"
               + (": the deformation field has learnt only part of the motion on this schedule."
                  if hi < 0.6 else "."))
    return ["How much the creature moves: the mean over frames of 1 - IoU(silhouette at "
            "frame 0, silhouette at frame t), ground truth against ours. " + verdict, "",
            "| run | view | ground truth | ours |", "|---|---|---|---|", *rows, ""]
