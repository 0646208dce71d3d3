"""DNF part 2 results: MMD / COV / 1-NNA of generated creatures -> docs/results/dnf_generate.md.

Trains (or loads, from ``--gen-dir``) the diffusion generators on two representations of the
checkpoint: ``d``, the dictionary (per-instance singular values, residual coefficients and
codes), and ``a``, the auto-decoder's latent codes alone (the baseline); samples as many
creatures as there are held-out references (motion conditioned on the sampled shapes), decodes
them (marching cubes once, displace) and compares both sets with the held-out sequences of the
checkpoint's preset (protocol: ``backend/methods/dnf/gen_eval.py``). Also the copy check and a
picture of sampled creatures at three frames.

Run: ``python bench/eval_dnf_generate.py`` (full: the generators' default sizes, 2,048 points per
frame) or ``--quick`` (small generators, 512 points, marching cubes 32^3: minutes on a CPU; the
page then says QUICK SETTING at the top). ``--retrain`` ignores saved generators; ``--iters N``
sets both generators' training steps.

Cost of the full run, measured on a shared, loaded 2-core CPU with one torch thread (tiny
checkpoint, 14 references, 60 training instances): training steps of the default generators
(shape / motion) 0.19 / 3.5 s for (d) and 0.075 / 0.58 s for (a), so 4,000 steps each take
about 4.9 h, 3.9 h of it (d)'s motion; then marching cubes 64^3 + displacement 6.3 s per
creature (148 decodes: 16 min), 0.15 s per sequence pair for Chamfer at 2,048 points x 17
frames (about 5,900 pairs: 15 min), sampling 50 DDIM steps 2-4 s per creature. About 5.5 h in
all; the quick run takes 3-4 minutes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PAPER = "paper (DeformingThings4D): MMD 15.3 vs 16.0, COV 54.1 % vs 45.9 %, 1-NNA 58.2 % vs 63.5 %"


def settings_for(quick: bool, seed: int, sizes: str = "default", frames: int = 17):
    """The evaluation's settings: ``quick``, or the full protocol with the generators of
    ``sizes``: ``default`` (:mod:`backend.methods.dnf.gen.config`'s) or ``tiny`` (the shipped
    generator's sizes and steps, :func:`~backend.methods.dnf.gen.store.generator_preset`)."""
    from backend.methods.dnf.gen.config import (
        DenoiserConfig,
        MotionDenoiserConfig,
        MotionDiffusionConfig,
        OptimConfig,
        ShapeDiffusionConfig,
    )
    from backend.methods.dnf.gen_eval import GenEvalSettings

    if not quick and sizes == "tiny":
        from backend.methods.dnf.gen.store import generator_preset

        gp = generator_preset("tiny", frames)
        return GenEvalSettings(
            seed=seed,
            shape=replace(gp.shape, optim=replace(gp.shape.optim, seed=seed)),
            motion=replace(gp.motion, optim=replace(gp.motion.optim, seed=seed)))
    if not quick:
        return GenEvalSettings(seed=seed)
    opt = OptimConfig(iters=300, batch=32, warmup=30, log_every=25, seed=seed)
    return GenEvalSettings(
        points=512, resolution=32, steps=20, max_train=12, seed=seed,
        shape=ShapeDiffusionConfig(denoiser=DenoiserConfig(width=64, depth=2), optim=opt),
        motion=MotionDiffusionConfig(
            denoiser=MotionDenoiserConfig(width=64, depth=2, window=8),
            optim=opt, context=4, resample=1))


def _last(info: dict) -> str:
    losses = info.get("losses") or [float("nan")]
    return f"{losses[-1]:.3f}"


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _moves(points: list) -> str:
    from backend.methods.dnf.gen_metrics import motion_amount

    vals = [motion_amount(p) for p in points if p is not None]
    return f"{100 * np.mean(vals):.2f}" if vals else "n/a"


def _describe(res, name: str) -> str:
    m = res.metrics
    return (f"| {name} | {m.mmd * 1e3:.3f} | {_pct(m.cov)} | {_pct(m.nna)} | {res.empty} of "
            f"{m.samples} | {_moves(res.sampled.points)} |")


def verdict(d, a) -> str:
    """Which representation wins on each metric, and by how much."""
    md, ma = d.metrics, a.metrics
    parts = []
    better = "dictionary (d)" if md.mmd < ma.mmd else "baseline (a)"
    parts.append(f"MMD: {better} lower, {md.mmd * 1e3:.3f} vs {ma.mmd * 1e3:.3f} "
                 f"(ratio d/a {md.mmd / ma.mmd:.2f})")
    if md.cov == ma.cov:
        parts.append(f"COV: tie at {_pct(md.cov)}")
    else:
        better = "dictionary (d)" if md.cov > ma.cov else "baseline (a)"
        parts.append(f"COV: {better} higher, {_pct(md.cov)} vs {_pct(ma.cov)} "
                     f"({100 * (md.cov - ma.cov):+.1f} points for d)")
    dd, da = abs(md.nna - 0.5), abs(ma.nna - 0.5)
    if dd == da:
        parts.append(f"1-NNA: equally far from 50 % ({_pct(md.nna)} vs {_pct(ma.nna)})")
    else:
        better = "dictionary (d)" if dd < da else "baseline (a)"
        parts.append(f"1-NNA: {better} nearer 50 %, {_pct(md.nna)} vs {_pct(ma.nna)}")
    return "; ".join(parts) + "."


def _redrawn(res, key: str) -> int:
    """How many of the job sampler's creatures were kept from a redraw by guard ``key``."""
    return sum(k > 0 for k in res.meta.get(key, []))


def copy_rows(res, model, label: str, guard_min: float) -> list[str]:
    c = res.copy
    names = [model.instances[i]["name"] for i in res.train_index]
    rows = []
    for s in range(len(c.nearest)):
        if not np.isfinite(c.nearest[s]):
            rows.append(f"| {label} | {s} | no surface | | | | |")
            continue
        nm = names[c.nearest_index[s]].replace("|", "\\|")
        g = res.guard[s] if s < len(res.guard) else float("nan")
        flag = " (copy)" if g < guard_min else ""
        rows.append(f"| {label} | {s} | {nm} | {c.nearest[s] * 1e3:.3f} | "
                    f"{c.ratio[s]:.2f} | {c.percentile[s]:.0f} | {g * 1e3:.2f}{flag} |")
    return rows


def to_markdown(model, refs, ref_pts, results, settings, quick: bool, command: str,
                picture: str, seconds: float, sizes: str = "default") -> str:
    from backend.methods.dnf.creature_jobs import sample_guards

    d, a, j = results["d"], results["a"], results["j"]
    guards = sample_guards()
    gmin = guards["min_novelty"]
    cfg = model.preset.data
    lines = ["# DNF part 2: generated creatures against held-out sequences (results)", ""]
    if sizes == "tiny" and not quick:
        lines += ["> **Generators of the shipped size** (`--sizes tiny`): both representations' "
                  "generators have the sizes and training steps of the shipped `tiny` generator "
                  f"({settings.shape.optim.iters} steps each), not the larger "
                  "`gen.config` defaults (about 5 h of CPU training); everything else is the "
                  "full protocol. They are trained on every training clip (the shipped "
                  "generator leaves the still ones out of its motion training).", ""]
    if quick:
        lines += ["> **QUICK SETTING** (`--quick`): small generators trained for "
                  f"{settings.shape.optim.iters} steps, {settings.points} points per frame, "
                  f"marching cubes {settings.resolution}^3, {settings.steps} DDIM steps, copy "
                  f"check on {settings.max_train} training instances. It checks that the "
                  "protocol runs end to end; its numbers are not the model's quality. Run "
                  "without `--quick` for the real table.", ""]
    lines += [f"Remake with: `{command}`", ""]
    sc, mc = d.gens[0].config, d.gens[1].config
    si, mi = d.gens[0].info, d.gens[1].info
    lines += [
        f"Checkpoint: preset `{model.preset.name}`, {len(model.instances)} training instances. "
        f"References: the {len(refs)} held-out sequences of that preset "
        f"({', '.join(r.name.replace('|', ' ') for r in refs)}), {cfg.frames} frames each at "
        f"{cfg.fps:g} fps (shorter clips squeezed evenly, as in training).",
        "",
        f"Protocol: as many samples as references ({len(refs)}) per representation; shape "
        "sampled first, motion conditioned on the sampled shape (not on a ground-truth one); "
        f"decoded with marching cubes {settings.resolution}^3 once and the vertices displaced "
        f"per frame; {cfg.frames} frames for both sets. Both sets are normalised the same way "
        "(frame 0's bounding box centred, its largest side scaled to 1.8, later frames with the "
        f"same transform) and sampled by the same sampler: {settings.points} area-weighted "
        "surface points of frame 0 followed through the frames. Sequence distance: symmetric "
        "squared Chamfer per frame, mean over frames, shown x 10^3. MMD: mean over references "
        "of the distance to the nearest sample; COV: share of references that are some "
        "sample's nearest reference; 1-NNA: leave-one-out 1-nearest-neighbour accuracy over "
        "both sets (50 % = indistinguishable).",
        "",
        f"Generators (the same configuration for both rows): shape transformer width "
        f"{sc.denoiser.width}, depth {sc.denoiser.depth}, {sc.optim.iters} steps of batch "
        f"{sc.optim.batch}; motion transformer width {mc.denoiser.width}, depth "
        f"{mc.denoiser.depth}, window {mc.denoiser.window} (context {mc.context}), "
        f"{mc.optim.iters} steps of batch {mc.optim.batch}; final training losses (d) "
        f"{_last(si)} / {_last(mi)}, (a) {_last(a.gens[0].info)} / {_last(a.gens[1].info)} "
        "(shape / motion); "
        f"{settings.steps} DDIM steps; seed {settings.seed}.",
        "",
        "| representation diffused | MMD x 10^3 (lower) | COV (higher) | 1-NNA (nearer 50 %) "
        "| samples without a surface | motion x 10^2 |", "|---|---|---|---|---|---|",
        _describe(d, "(d) dictionary: codes + singular values + residual coefficients"),
        _describe(a, "(a) baseline: auto-decoder latent codes alone"),
        _describe(j, "(d) drawn through `creature.sample`'s guards (below)"),
        f"| held-out references themselves | | | | | {_moves(ref_pts)} |",
        f"| training instances of the copy check, decoded from (d) / (a) vectors | | | | | "
        f"{100 * d.train_motion:.2f} / {100 * a.train_motion:.2f} |",
        "", verdict(d, a), "",
        "The third row is the (d) generator drawn the way `creature.sample` draws (its own "
        "sampler, `backend/methods/dnf/gen/creature.py`, with the job's default guards: "
        + ", ".join(f"{k} {v:g}" for k, v in guards.items())
        + "): shapes and motions redrawn when a creature is a twin of another in the batch, "
        "idles, or is a copy of a training instance, and pieces under 2 % of the area dropped. "
        f"Creatures of the {len(j.guard)} kept from a redraw: as a twin shape "
        f"{_redrawn(j, 'surface_redraws')}, as an idle {_redrawn(j, 'motion_redraws')}, as a "
        f"copy {_redrawn(j, 'novelty_redraws')}"
        + "".join(f"; creature {i} as a copy on draw {k + 1}" for i, k in
                  enumerate(j.meta.get("novelty_redraws", [])) if k) + ".", "",
        "Motion: mean distance of the followed surface points from their frame 0 position over "
        "frames 1 to the last (normalised units, x 10^2): how much the sequences move.", "",
        f"For scale, the {PAPER} (their baseline, not ours; other data and sizes).", "",
        "## Copy check", "",
        "Each sample's distance to its nearest training instance (decoded from its own vectors "
        "of the same representation, so a memorised vector would be at distance ~0), against "
        "the training set's own leave-one-out nearest-neighbour distances: ratio = distance / "
        "median training NN distance; percentile = share of training NN distances below it "
        "(0 = closer to a training instance than any training instance is to another).", "",
        "Guard: the novelty `creature.sample`'s copy guard measures for the sample "
        "(`backend/methods/dnf/gen/novelty.py`: the distance to the nearest training instance "
        "beyond that instance's sampling floor, 1,024 points, the training instances meshed "
        f"at {settings.resolution}^3, x 10^3); below its default `min_novelty` "
        f"{gmin * 1e3:g} x 10^-3 the job "
        "calls the creature a copy and redraws it (the first two row groups are plain draws, "
        "so copies stay in them; the third went through the guard).", ""]
    rows = (("d", d), ("a", a), ("d+guards", j))
    for label, res in rows:
        c = res.copy
        ok = np.isfinite(c.nearest)
        lines.append(
            f"- ({label}): training NN distance median {np.median(c.train_nn) * 1e3:.3f} "
            f"x 10^-3 over {len(c.train_nn)} training instances; samples: ratio min "
            f"{c.ratio[ok].min():.2f}, median {np.median(c.ratio[ok]):.2f}; percentile min "
            f"{c.percentile[ok].min():.0f}, median {np.median(c.percentile[ok]):.0f}."
            if ok.any() else f"- ({label}): no sample has a surface.")
    lines += ["", "| rep. | sample | nearest training instance | distance x 10^3 | ratio | "
              "percentile | guard x 10^3 |", "|---|---|---|---|---|---|---|"]
    for label, res in rows:
        lines += copy_rows(res, model, label, gmin)
    lines += ["", "## Samples", "",
              f"![sampled creatures]({picture})", "",
              f"Samples of the dictionary generator (d), frames 0, {cfg.frames // 2} and "
              f"{cfg.frames - 1}; shaded orthographic render of the decoded meshes (numpy + "
              "PIL), same view and scale for all.", "",
              "## Time", "", "| step | (d) s | (a) s |", "|---|---|---|"]
    def trained(res) -> float:
        return sum(float(g.info.get("seconds", np.nan)) for g in res.gens)

    lines.append(f"| generator training (as recorded when trained) | {trained(d):.0f} | "
                 f"{trained(a):.0f} |")
    for k in d.seconds:
        label = "generators (load or train, this run)" if k == "generators" else k
        lines.append(f"| {label} | {d.seconds[k]:.0f} | {a.seconds.get(k, float('nan')):.0f} |")
    lines.append("| (d) through the job's sampler: "
                 + ", ".join(f"{k} {v:.0f} s" for k, v in j.seconds.items()) + " | | |")
    lines += ["", f"Whole evaluation: {seconds:.0f} s (one torch thread, shared 2-core CPU).",
              ""]
    return "\n".join(lines)


def render_picture(res, path: Path, frames: int, rows: int = 6) -> None:
    from bench.lib.mesh_render import grid, render_mesh, view_box

    cols = [0, frames // 2, frames - 1]
    images, labels = [], []
    for i, seq in enumerate(res.sampled.meshes):
        if seq is None:
            continue
        box = view_box(seq.vertices.reshape(-1, 3))  # one framing for all frames of a creature
        images.append([render_mesh(seq.vertices[f], seq.faces, 160, box) for f in cols])
        labels.append(f"sample {i}")
        if len(images) == rows:
            break
    if images:
        grid(images, labels, [f"frame {f}" for f in cols]).save(path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=str(ROOT / "backend/methods/dnf/checkpoints/tiny"))
    ap.add_argument("--quick", action="store_true", help="small sizes: minutes on a CPU")
    ap.add_argument("--sizes", default="default", choices=("default", "tiny"),
                    help="generator sizes of the full run (tiny: the shipped generator's)")
    ap.add_argument("--out", default=str(ROOT / "docs/results/dnf_generate.md"))
    ap.add_argument("--gen-dir", default="", help="generators folder (default "
                    "out/dnf/gen_eval/quick|full); loaded when present, else trained and saved")
    ap.add_argument("--retrain", action="store_true", help="train even if saved generators exist")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--backend", default="kdtree", choices=("kdtree", "torch"))
    ap.add_argument("--iters", type=int, default=0, help="training steps of both generators "
                    "(default: the setting's)")
    args = ap.parse_args()

    import torch

    from backend.methods.dnf.checkpoint import load_checkpoint
    from backend.methods.dnf.creature_jobs import sample_guards
    from backend.methods.dnf.gen_eval import (
        evaluate_job_sampler,
        evaluate_representation,
        reference_sequences,
    )
    from backend.methods.dnf.gen_metrics import distances, sequence_points

    torch.set_num_threads(args.threads)
    t0 = time.monotonic()
    model = load_checkpoint(args.checkpoint)
    settings = replace(settings_for(args.quick, args.seed, args.sizes,
                                    model.preset.data.frames), backend=args.backend)
    if args.iters:
        settings = replace(
            settings, shape=replace(settings.shape, optim=replace(settings.shape.optim,
                                                                  iters=args.iters)),
            motion=replace(settings.motion, optim=replace(settings.motion.optim,
                                                          iters=args.iters)))
    refs = reference_sequences(model)
    print(f"{len(refs)} held-out references, {model.preset.data.frames} frames")
    ref_pts = [sequence_points(r.vertices, r.faces, settings.points, settings.seed + 20_000 + k)
               for k, r in enumerate(refs)]
    d_rr = distances(ref_pts, None, settings.backend)
    setting = "quick" if args.quick else ("full" if args.sizes == "default" else "full-tiny")
    gen_root = Path(args.gen_dir or f"out/dnf/gen_eval/{setting}")
    results = {}
    for stage in ("d", "a"):
        folder = gen_root / stage
        if args.retrain:
            for f in folder.glob("*.*"):
                f.unlink()
        results[stage] = evaluate_representation(model, stage, ref_pts, d_rr, settings,
                                                 folder)
        # the baseline is the same diffusion: (d)'s configuration, even when it was loaded
        shape_gen, motion_gen = results[stage].gens
        if stage == "d":
            settings = replace(settings, shape=shape_gen.config, motion=motion_gen.config)
        elif (shape_gen.config, motion_gen.config) != (settings.shape, settings.motion):
            raise SystemExit(f"{folder}: the baseline generators were trained with another "
                             "configuration than (d)'s; run with --retrain")
    results["j"] = evaluate_job_sampler(model, results["d"], ref_pts, d_rr, settings,
                                        sample_guards())
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    picture = out.with_suffix(".png")
    render_picture(results["d"], picture, model.preset.data.frames)
    command = "python bench/eval_dnf_generate.py" + (" --quick" if args.quick else "")
    if args.sizes != "default" and not args.quick:
        command += f" --sizes {args.sizes}"
    if args.iters:
        command += f" --iters {args.iters}"
    if Path(args.checkpoint).resolve() != (ROOT / "backend/methods/dnf/checkpoints/tiny"
                                           ).resolve():
        command += f" --checkpoint {args.checkpoint}"
    seconds = time.monotonic() - t0
    text = to_markdown(model, refs, ref_pts, results, settings, args.quick, command,
                       picture.name, seconds, args.sizes)
    old = out.read_text() if out.is_file() else ""
    if "\n## Sample checks" in old:  # bench/eval_dnf_samples.py's section: kept as it was
        text = text.rstrip("\n") + "\n\n" + old[old.index("\n## Sample checks") + 1:]
    out.write_text(text)
    summary = {k: {"mmd": r.metrics.mmd, "cov": r.metrics.cov, "nna": r.metrics.nna,
                   "empty": r.empty, "copy_ratio_min": float(np.nanmin(r.copy.ratio)),
                   "seconds": r.seconds} for k, r in results.items()}
    (gen_root / "results.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))
    print(f"wrote {out} and {picture} in {seconds:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
