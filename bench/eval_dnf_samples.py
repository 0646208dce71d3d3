"""DNF samples against the issue's bar: ``creature.sample n=4 frames=24`` with the shipped model.

Per creature: connected components (bar: at most 3), watertight, motion (mean per-vertex distance
from frame 0 over the other frames, as a share of the canonical bounding-box diagonal; bar: at
least 1 %), the largest and smallest frame bounding-box diagonal against the canonical one (bar:
within 1.5x); and the pairwise Chamfer of the canonical shapes (2,048 points, x 10^3, the
dictionary's normalised units) against 3x the training Chamfer of docs/results/dnf_fields.md.

    python bench/eval_dnf_samples.py [--seed 0 [1 ...]] [--n 4] [--frames 24] [--json PATH]
                                     [--doc docs/results/dnf_generate.md]

Runs the job's own code (``backend.methods.dnf.gen.creature.sample_creatures``) in-process: about
20 s a seed on 2 CPU cores. ``--doc`` writes the per-seed table into the "Sample checks" section
of that Markdown file.
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


SECTION = "## Sample checks"


def _e3(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 1e3:.1f}"


def copy_summary(results: list[dict], train_nn: np.ndarray | None, min_novelty: float) -> str:
    """One paragraph: the creatures' distances to their nearest training instance against the
    training set's own nearest-neighbour distances (both as the copy guard measures them)."""
    cs = [c for r in results for c in r["creatures"] if c["novelty"] is not None]
    if not cs or train_nn is None:
        return "The copy guard was off (`--min-novelty 0`): no distances to training instances."
    near = min(cs, key=lambda c: c["novelty"])
    med = float(np.median(train_nn))
    pct = 100.0 * float(np.mean(train_nn < near["novelty"]))
    redrawn = sum(c["novelty_redraws"] > 0 for c in cs)
    return (f"Copy guard (`min_novelty` {min_novelty:g}: a creature within that of a training "
            "instance beyond the instance's sampling floor, by the sequence Chamfer of "
            "`backend/methods/dnf/gen/novelty.py`, is redrawn): each creature's novelty against "
            "its nearest training instance, x 10^3, in the table. The training instances' own "
            f"novelty against the others, measured the same way: median {med * 1e3:.2f}, lowest "
            f"{train_nn.min() * 1e3:.2f} (identical meshes doing the same clip), 10th percentile "
            f"{np.percentile(train_nn, 10) * 1e3:.2f}. Nearest creature of the {len(cs)}: "
            f"{near['novelty'] * 1e3:.2f} from {near['nearest_training'].replace('|', ' ')} "
            f"(ratio {near['novelty'] / med:.2f} to the median, percentile {pct:.0f}); "
            f"{redrawn} of {len(cs)} creatures were redrawn as copies.")


def run_seed(model, sgen, mgen, info, args, seed: int) -> dict:
    """One ``creature.sample`` batch of ``seed``: prints its table, returns its result."""
    from backend.methods.dnf.gen.creature import sample_creatures
    from backend.methods.dnf.metrics import chamfer, surface_points

    t0 = time.perf_counter()
    times = np.arange(args.frames) / args.fps
    creatures, verts = sample_creatures(model, sgen, mgen, args.n, times, seed,
                                        args.steps, args.resolution, info.get("stage", "d"),
                                        min_piece=args.min_piece, min_motion=args.min_motion,
                                        min_spread=args.min_spread,
                                        min_chamfer=args.min_chamfer,
                                        min_novelty=args.min_novelty)
    seconds = time.perf_counter() - t0
    rows = [creature_row(c, f, v) for c, f, v in zip(creatures.canonical, creatures.faces, verts,
                                                      strict=True)]
    for r, d in zip(rows, creatures.meta["dropped_pieces"], strict=True):
        r["dropped_pieces"] = d
    for r, k in zip(rows, creatures.meta["motion_redraws"], strict=True):
        r["motion_redraws"] = k
    for r, k in zip(rows, creatures.meta["surface_redraws"], strict=True):
        r["shape_redraws"] = k
    m = creatures.meta
    for k, r in enumerate(rows):  # the copy guard's figures (min_novelty; none when it is off)
        r["novelty"] = m["novelty"][k] if "novelty" in m else None
        r["nearest_training"] = m["nearest_training"][k] if "novelty" in m else None
        r["novelty_redraws"] = m["novelty_redraws"][k] if "novelty" in m else 0
    pts = [surface_points(c, f, 2048, seed=i)
           for i, (c, f) in enumerate(zip(creatures.canonical, creatures.faces, strict=True))]
    pair = {f"{i}-{j}": chamfer(pts[i], pts[j]) * 1e3
            for i, j in itertools.combinations(range(len(pts)), 2)}
    bar = 3 * TRAIN_CHAMFER_D
    print(f"seed {seed}")
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
    print(f"{seconds:.1f} s (sample + mesh + animate)")
    return {"seed": seed, "creatures": rows, "pairwise_chamfer_e3": pair, "diversity_bar": bar,
            "all_pass": bool(ok_all and low >= bar), "seconds": seconds}


def markdown_section(results: list[dict], args, generator: dict,
                     train_nn: np.ndarray | None = None) -> str:
    """The ``## Sample checks`` section of docs/results/dnf_generate.md for ``results``."""
    seeds = " ".join(str(r["seed"]) for r in results)
    moving = sum(c["motion_share"] >= 0.01 for r in results for c in r["creatures"])
    total = sum(len(r["creatures"]) for r in results)
    lines = [
        SECTION, "",
        f"Remake with: `python bench/eval_dnf_samples.py --seed {seeds} --doc "
        "docs/results/dnf_generate.md` (the job's own code, in-process; about 20 s a seed on 2 "
        "CPU cores).", "",
        f"The issue's bar for `anim4d submit creature.sample --param n={args.n} "
        f"frames={args.frames}` with the shipped `tiny` model and generator (motion weights "
        f"`{generator.get('motion.safetensors', '?')[:12]}...`), the job's defaults "
        f"(fps {args.fps:g}, resolution {args.resolution}, {args.steps} DDIM steps, min_piece "
        f"{args.min_piece:g}, min_motion {args.min_motion:g}, min_spread {args.min_spread:g}, "
        f"min_chamfer {args.min_chamfer:g}, min_novelty {args.min_novelty:g}): "
        "each creature in at most 3 pieces, closed (watertight), moving (mean vertex distance "
        "from frame 0 over the other frames at least 1 % of the canonical bounding-box "
        "diagonal), every frame's bounding-box diagonal within 1.5x of the canonical one; the "
        "4 canonical shapes pairwise apart (Chamfer x 10^3 at least 3 x the training Chamfer "
        f"{TRAIN_CHAMFER_D} = {3 * TRAIN_CHAMFER_D:.2f}).", "",
        "| seed | pieces | closed | bbox max / min | motion % | motion redraws | shape redraws "
        "(min_chamfer) | min pairwise Chamfer x 10^3 | novelty x 10^3 | copy redraws "
        "| all bars |",
        "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        cs = r["creatures"]
        motion = " / ".join(f"{100 * c['motion_share']:.2f}" for c in cs)
        lines.append(
            f"| {r['seed']} | {' / '.join(str(c['components']) for c in cs)} | "
            f"{'yes' if all(c['watertight'] for c in cs) else 'NO'} | "
            f"{max(c['bbox_ratio_max'] for c in cs):.3f} / "
            f"{min(c['bbox_ratio_min'] for c in cs):.3f} | "
            f"{motion} | "
            f"{' / '.join(str(c['motion_redraws']) for c in cs)} | "
            f"{' / '.join(str(c['shape_redraws']) for c in cs)} | "
            f"{min(r['pairwise_chamfer_e3'].values()):.1f} | "
            f"{' / '.join(_e3(c['novelty']) for c in cs)} | "
            f"{' / '.join(str(c['novelty_redraws']) for c in cs)} | "
            f"{'pass' if r['all_pass'] else 'FAIL'} |")
    failing = []
    for r in results:
        bars = [name for name, ok in (
            ("pieces", all(c["components"] <= 3 for c in r["creatures"])),
            ("closed", all(c["watertight"] for c in r["creatures"])),
            ("motion", all(c["motion_share"] >= 0.01 for c in r["creatures"])),
            ("bbox", all(c["bbox_ratio_max"] <= 1.5 and c["bbox_ratio_min"] >= 1 / 1.5
                         for c in r["creatures"])),
            ("diversity", min(r["pairwise_chamfer_e3"].values()) >= r["diversity_bar"]))
            if not ok]
        if bars:
            failing.append(f"seed {r['seed']} ({', '.join(bars)})")
    lines += ["", f"{moving} of {total} creatures move at least 1 %. Bars failed: "
              f"{'; '.join(failing) if failing else 'none'}.", "",
              copy_summary(results, train_nn, args.min_novelty), "",
              "The motion diffusion is "
              "trained without the training clips that move under 1 % (`min_clip_motion`, "
              "`backend/methods/dnf/gen/clips.py`; the list, and the figures before, when it "
              "was trained on them too, are in `backend/methods/dnf/checkpoints/tiny/"
              "README.md`); `tests/dnf/test_shipped_samples.py` holds seed 0."]
    return "\n".join(lines) + "\n"


def write_section(path: Path, section: str) -> None:
    """Replace the ``## Sample checks`` section of ``path`` (up to the next ``## `` heading)
    with ``section``, or append it."""
    text = path.read_text() if path.is_file() else ""
    start = text.find(SECTION)
    if start < 0:
        text = text.rstrip("\n") + ("\n\n" if text else "") + section
    else:
        end = text.find("\n## ", start + len(SECTION))
        text = text[:start] + section + (text[end:] if end >= 0 else "")
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, nargs="+", default=[0], help="one or more seeds")
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--fps", type=float, default=20.0)
    ap.add_argument("--resolution", type=int, default=96)
    ap.add_argument("--steps", type=int, default=25)
    from backend.methods.dnf.creature_jobs import sample_guards

    for name, default in sample_guards().items():  # min_piece, min_motion, ...: the job's
        ap.add_argument("--" + name.replace("_", "-"), type=float, default=default,
                        help=f"the job's {name} (default %(default)s, the job's default)")
    ap.add_argument("--model-dir", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--doc", type=Path, default=None,
                    help="write the table into this Markdown file's '## Sample checks' section")
    args = ap.parse_args(argv)
    from backend.methods.dnf.checkpoint import load_checkpoint
    from backend.methods.dnf.gen.store import load_model_generator
    from backend.methods.dnf.model_files import SHIPPED_DIR

    folder = args.model_dir or SHIPPED_DIR / "tiny"
    model = load_checkpoint(folder)
    sgen, mgen, info = load_model_generator(folder, model.sha256)
    results = [run_seed(model, sgen, mgen, info, args, s) for s in args.seed]
    train_nn = None
    if args.min_novelty > 0:  # the training set's own distances, as the copy guard measures
        from backend.methods.dnf.gen.novelty import training_prints
        from backend.methods.dnf.gen_metrics import pairwise_chamfer

        prints = training_prints(model, info.get("stage", "d"), args.resolution, args.min_piece)
        d = pairwise_chamfer(prints.points)
        np.fill_diagonal(d, np.inf)
        train_nn = np.maximum((d - prints.floors[None, :]).min(1), 0.0)  # novelty, as a creature
        print(copy_summary(results, train_nn, args.min_novelty))
    if args.doc is not None:
        write_section(args.doc, markdown_section(results, args, info.get("weights_sha256", {}),
                                                 train_nn))
        print(f"wrote the {SECTION[3:]!r} section of {args.doc}")
    head = {"bench": "eval_dnf_samples", "args": vars(args) | {"model_dir": str(folder)}}
    result = head | results[0] if len(results) == 1 else \
        head | {"seeds": results, "all_pass": all(r["all_pass"] for r in results)}
    return emit_json_line(json.loads(json.dumps(result, default=str)), args.json)


if __name__ == "__main__":
    sys.exit(main())
