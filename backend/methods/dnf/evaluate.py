"""Results of a checkpoint: reconstruction tables (a)-(d) and the shape-fitting table.

- training instances (at most ``eval.max_train_instances``, evenly spread): decoded from their
  own vectors;
- held-out clips: their vectors are first fitted with everything shared frozen (shape from SDF
  samples, then motion from correspondences), starting from the mean training vectors;
- metrics: Chamfer (2,048 points per frame, mean over frames, x 10^3), volumetric IoU of the
  canonical shape, and the motion error (mean distance, x 10^2, between ground-truth
  correspondences and canonical points moved by the motion field: motion alone, free of the
  surface's error);
- shape fitting (stage d): the unseen procedural creature(s) and the held-out animal, Chamfer
  and IoU of the canonical shape from the mean vector (before) and after fitting.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np
import torch

from .checkpoint import load_checkpoint
from .data import Instance, add_eval_arrays
from .decode import displace, marching_cubes, query_sdf, sdf_grid
from .fit_shape import fit_instances, fit_shape_arrays, mean_shape_vector
from .metrics import chamfer, iou, mesh_pieces, sequence_chamfer, surface_points
from .model import STAGE_TITLES
from .pipeline import run_prepare
from .sdf import OpenMeshWarning
from .train import Report, TrainData, _no_report


def eval_instance(model, stage: str, svec: torch.Tensor, mvec: torch.Tensor | None,
                  inst: Instance, resolution: int, seed: int = 0) -> dict[str, float]:
    """Chamfer x1e3 (over frames; canonical only when ``mvec`` is None), IoU, motion error x1e2."""
    rep = model.shape_rep(stage)
    verts, faces = marching_cubes(sdf_grid(rep, svec, resolution))
    occ = query_sdf(rep, svec, inst["iou_points"]) < 0
    out = {"iou": iou(occ, inst["iou_inside"]), "pieces": float(mesh_pieces(faces)),
           "source_pieces": float(inst["pieces"]) if "pieces" in inst.arrays else np.nan}
    if faces.shape[0] == 0:
        out.update(chamfer=float("nan"), motion=float("nan"))
        return out
    code = model.shape_code(stage, svec)
    if mvec is None:
        pred = surface_points(verts, faces, inst["eval_points"].shape[1], seed)
        out["chamfer"] = 1e3 * chamfer(pred, inst["eval_points"][0])
        return out
    mrep = model.motion_rep(stage)
    moved = displace(mrep, verts, code, mvec)
    pred = surface_points(moved, faces, inst["eval_points"].shape[1], seed)
    out["chamfer"] = 1e3 * sequence_chamfer(pred, inst["eval_points"])
    corr = inst["corr"]
    if "corr_surface" in inst.arrays:  # surface points only (the rest are offset off it)
        corr = corr[:, :int(inst["corr_surface"])]
    with torch.no_grad():
        x0 = torch.as_tensor(corr[0])[None].expand(mvec.shape[0], -1, -1)
        d = mrep(x0, mvec.float(), code.reshape(1, -1).expand(mvec.shape[0], -1))
    err = (x0 + d).numpy() - corr
    out["motion"] = 1e2 * float(np.linalg.norm(err, axis=-1).mean())
    return out


def _mean(rows: list[dict], key: str) -> float:
    vals = [r[key] for r in rows if np.isfinite(r.get(key, np.nan))]
    return float(np.mean(vals)) if vals else float("nan")


def evaluate(checkpoint: Path, cache: Path, report: Report = _no_report,
             stages: tuple[str, ...] | None = None, shape_fits: bool = True) -> dict:
    """Every number of the results page (see module docstring) as a dict.

    ``stages`` (default: all the checkpoint holds) and ``shape_fits`` select parts; every part
    is computed independently with fixed seeds, so parts evaluated apart (e.g. in two
    processes) and merged with :func:`merge_results` give the page one run gives."""
    t0 = time.monotonic()
    model = load_checkpoint(checkpoint)
    preset, ev = model.preset, model.preset.eval
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OpenMeshWarning)
        instances = run_prepare(preset, cache, report)
    by_name = {i.name: i for i in instances}
    missing = [r["name"] for r in model.instances if r["name"] not in by_name]
    if missing:
        raise ValueError(f"{checkpoint}: instances {missing[:3]} are not in the data of its "
                         "preset; was the data folder changed?")
    n = len(model.instances)
    keep = list(range(n))
    if ev.max_train_instances and n > ev.max_train_instances:
        keep = sorted(set(np.round(np.linspace(0, n - 1, ev.max_train_instances)).astype(int)))
    held = [i for i in instances if i.spec.split == "heldout_clip"]
    frames = len(model.instances[0]["times"])
    res: dict = {"stages": {}, "train_count": len(keep), "train_total": n,
                 "heldout_count": len(held), "frames": frames}
    for stage in [s for s in model.stages if stages is None or s in stages]:
        row: dict = {"title": STAGE_TITLES[stage],
                     "per_instance": model.per_instance_counts(stage, frames),
                     "shared": model.shared_counts(stage)}
        report(f"eval-{stage}", 0.0, "training instances")
        rows = [eval_instance(model, stage, model.shape_vecs[stage][i],
                              model.motion_vecs[stage][i],
                              add_eval_arrays(by_name[model.instances[i]["name"]], preset.data),
                              ev.mc_resolution, seed=i) for i in keep]
        row["train"] = {k: _mean(rows, k) for k in ("chamfer", "iou", "motion")}
        row["train_pieces"] = _pieces_summary(rows)
        if held:
            data = TrainData.from_instances(held)
            svec, mvec = fit_instances(model, stage, data, report=report)
            rows = [eval_instance(model, stage, svec[k], mvec[k], inst, ev.mc_resolution, k)
                    for k, inst in enumerate(held)]
            row["heldout"] = {k: _mean(rows, k) for k in ("chamfer", "iou", "motion")}
            row["heldout_pieces"] = _pieces_summary(rows)
        res["stages"][stage] = row
    fits = []
    stage = "d" if "d" in model.stages else model.stages[-1]
    for inst in [i for i in instances
                 if shape_fits and i.spec.split in ("fit", "heldout_animal")]:
        init = mean_shape_vector(model, stage)
        before = eval_instance(model, stage, init, None, inst, ev.mc_resolution)
        fit = fit_shape_arrays(model, inst.arrays, stage, name=inst.name, report=report)
        after = eval_instance(model, stage, fit.vector, None, inst, ev.mc_resolution)
        fits.append({"name": inst.name, "split": inst.spec.split, "before": before,
                     "after": after, "loss_before": fit.loss_before,
                     "loss_after": fit.loss_after})
    res["shape_fits"] = fits
    res["fit_stage"] = stage
    res["meshes"] = mesh_table(instances)
    res["open_shell"] = preset.data.open_shell
    res["info"] = model.info
    res["layouts"] = {"shape": model.shape_layout(stage).markdown(f"shape vector, stage {stage}"),
                      "motion": model.motion_layout(stage).markdown(
                          f"motion vector (per frame), stage {stage}")}
    res["preset"] = preset.name
    dc = preset.dictionary
    topk = (f"top-k keeps {dc.shape_topk} / {dc.motion_topk} directions per hidden layer"
            if dc.shape_topk and dc.motion_topk else
            f"top-k keeps {dc.shape_keep:.0%} / {dc.motion_keep:.0%} of each hidden layer's rank")
    res["sizes"] = (f"shape MLP {preset.shape.layers} x {preset.shape.hidden} (code "
                    f"{preset.shape.code_dim}), motion MLP {preset.motion.layers} x "
                    f"{preset.motion.hidden} (pose code {preset.motion.pose_dim}), {topk}, "
                    f"residual rank {preset.dictionary.shape_residual}"
                    f" / {preset.dictionary.motion_residual} per layer, "
                    f"{preset.data.sdf_points:,} SDF samples per shape, marching cubes at "
                    f"{ev.mc_resolution}^3")
    res["eval_seconds"] = round(time.monotonic() - t0, 1)
    return res


def merge_results(parts: list[dict]) -> dict:
    """One result dict from :func:`evaluate` runs over disjoint stages (shape fits from the
    part that has them; the evaluation time is the longest part's)."""
    out = dict(parts[0])
    out["stages"] = {}
    for stage in ("a", "b", "c", "d"):
        for p in parts:
            if stage in p["stages"]:
                out["stages"][stage] = p["stages"][stage]
    out["shape_fits"] = [f for p in parts for f in p["shape_fits"]]
    out["eval_seconds"] = max(p["eval_seconds"] for p in parts)
    return out


def _pieces_summary(rows: list[dict]) -> dict:
    """Decoded pieces over ``rows``: mean, max, and how many instances whose source is in one
    piece decode in one piece."""
    p = [r["pieces"] for r in rows]
    one = [r for r in rows if r.get("source_pieces") == 1]
    return {"mean": float(np.mean(p)) if p else float("nan"), "max": int(max(p, default=0)),
            "one_source": len(one), "one_decoded": sum(1 for r in one if r["pieces"] == 1),
            "count": len(rows)}


def mesh_table(instances: list[Instance]) -> list[dict]:
    """One row per source file (glTF) or procedural creature: is it watertight after welding,
    its connected components, its open ones, and what the SDF sampling did about them."""
    seen: dict[str, dict] = {}
    for inst in instances:
        key = Path(inst.spec.path).stem if inst.spec.path else inst.name.split("|")[0]
        if key in seen or "components" not in inst.arrays:
            continue
        closed = int(inst["boundary_edges"]) == 0 and int(inst.arrays.get(
            "nonmanifold_edges", 0)) == 0
        opened = int(inst["open_components"])
        seen[key] = {"mesh": key, "kind": inst.spec.kind, "split": inst.spec.split,
                     "watertight": closed, "components": int(inst["components"]),
                     "open_components": opened, "boundary_edges": int(inst["boundary_edges"]),
                     "nonmanifold_edges": int(inst.arrays.get("nonmanifold_edges", 0))}
    return list(seen.values())


def _f(x: float, digits: int = 2) -> str:
    return "n/a" if not np.isfinite(x) else f"{x:.{digits}f}"


def to_markdown(res: dict, command: str) -> str:
    """The results page (Markdown) for :func:`evaluate`'s dict."""
    lines = ["# DNF part 1: neural fields and the SVD dictionary (results)", "",
             f"Remake with: `{command}`", ""]
    info = res.get("info", {})
    lines += [f"Preset `{res.get('preset', '?')}`: {res.get('sizes', '')}.", ""]
    lines += [f"Checkpoint trained on {info.get('train_instances', '?')} instances x "
              f"{res['frames']} frames; left out: {info.get('left_out', '?')}.",
              f"Training instances evaluated: {res['train_count']} of {res['train_total']} "
              f"(evenly spread); held-out clips: {res['heldout_count']} (vectors fitted with "
              "everything shared frozen). Chamfer: 2,048 points per frame, mean over frames, "
              "x 10^3, units where frame 0's largest side is 1.8. IoU: canonical shape. "
              "Motion error: mean distance of ground-truth correspondences to the moved "
              "canonical points, x 10^2.", ""]
    head = ("| representation | per-instance numbers (shape + motion, all frames) | "
            "shared numbers | train Chamfer | train IoU | train motion | held-out Chamfer | "
            "held-out IoU | held-out motion |")
    lines += [head, "|---|---|---|---|---|---|---|---|---|"]
    for _, row in res["stages"].items():
        pi, sh = row["per_instance"], row["shared"]
        tr = row["train"]
        ho = row.get("heldout", {"chamfer": np.nan, "iou": np.nan, "motion": np.nan})
        per_frame = pi["motion"] // max(1, res["frames"])
        lines.append(
            f"| {row['title']} | {pi['total']:,} ({pi['shape']:,} + {res['frames']} x "
            f"{per_frame:,}) | {sh['shape'] + sh['motion']:,} | {_f(tr['chamfer'])} | "
            f"{_f(tr['iou'], 3)} | {_f(tr['motion'])} | {_f(ho['chamfer'])} | "
            f"{_f(ho['iou'], 3)} | {_f(ho['motion'])} |")
    st = res["stages"]
    if all(k in st for k in "abd"):
        a, b, d = st["a"], st["b"], st["d"]
        ratio = d["per_instance"]["total"] / max(1, b["per_instance"]["total"])
        lines += ["", "Summary: (d) keeps "
                  f"{ratio:.0%} of the per-instance numbers of (b) "
                  f"({d['per_instance']['total']:,} vs {b['per_instance']['total']:,}); "
                  f"training Chamfer (a) {_f(a['train']['chamfer'])}, (b) "
                  f"{_f(b['train']['chamfer'])}, (d) {_f(d['train']['chamfer'])}; held-out "
                  f"Chamfer (a) {_f(a.get('heldout', {}).get('chamfer', np.nan))}, (d) "
                  f"{_f(d.get('heldout', {}).get('chamfer', np.nan))}."]
        mlp = a["shared"]
        per_mlp = mlp["shape"] + res["frames"] * mlp["motion"]
        lines += ["", f"For scale: one MLP per instance (what HyperDiffusion diffuses: all "
                  f"shape weights plus the motion weights per frame) would be {per_mlp:,} "
                  f"numbers per instance; (d) needs {d['per_instance']['total']:,} "
                  f"({d['per_instance']['total'] / per_mlp:.1%})."]
    lines += ["", "How to read this: (a) is the auto-decoder as trained, where an instance is "
              "only its latent codes and the MLP weights are shared; (b) re-expresses every "
              "linear layer by its SVD, freezes the singular vectors and biases and gives each "
              "instance (each frame, for motion) its own singular values, which are then "
              "fine-tuned (at the start, (b) equals (a) exactly); (c) keeps only the top-k "
              "directions per layer; (d) adds a shared, trained low-rank residual basis per "
              "layer with per-instance coefficients. Shared numbers are the MLP weights for (a) "
              "and the dictionary (U, V, biases, residual bases) for (b)-(d). Per-instance "
              "numbers are what part 2's diffusion model generates."]
    lines += ["", f"## Fitting unseen shapes (stage {res['fit_stage']}, dictionary frozen)", "",
              "| mesh | split | Chamfer before | Chamfer after | IoU before | IoU after | "
              "SDF loss before | SDF loss after | pieces: source | pieces after |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for f in res["shape_fits"]:
        name = f["name"].replace("|", "\\|")  # a table cell cannot hold a bare '|'
        lines.append(
            f"| {name} | {f['split']} | {_f(f['before']['chamfer'])} | "
            f"{_f(f['after']['chamfer'])} | {_f(f['before']['iou'], 3)} | "
            f"{_f(f['after']['iou'], 3)} | {f['loss_before']:.4f} | {f['loss_after']:.4f} | "
            f"{_f(f['after'].get('source_pieces', np.nan), 0)} | "
            f"{_f(f['after'].get('pieces', np.nan), 0)} |")
    lines += ["", "'Before' decodes the mean training vector; Chamfer here is of the canonical "
              "shape alone (frame 0). Pieces: connected components of the decoded canonical "
              "mesh (marching cubes, no post-processing) and of the source (its mesh parts "
              "joined where they touch, overlap or lie inside one another).", ""]
    lines += _pieces_markdown(res)
    lines += _meshes_markdown(res)
    t = info.get("timings_s", {})
    if t:
        lines += ["## Training time (seconds per stage, as printed by fit-fields)", "",
                  "| stage | seconds |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in t.items()]
        lines += [""]
    lines += ["## Flat vector layout (what part 2 reads)", "", res["layouts"]["shape"], "",
              res["layouts"]["motion"], "",
              f"Evaluation took {res['eval_seconds']} s.", ""]
    return "\n".join(lines)


def _pieces_markdown(res: dict) -> list[str]:
    rows = [(k, r) for k, r in res["stages"].items() if "train_pieces" in r]
    if not rows:
        return []
    out = ["## Clean shapes: pieces of the decoded canonical meshes", "",
           "Connected components of the marching-cubes mesh, as decoded (no fragment removal "
           "or other post-processing).", "",
           "| representation | train: mean pieces | train: max | train: one-piece sources "
           "decoded in one piece | held-out clips: mean pieces | held-out: one-piece sources "
           "in one piece |", "|---|---|---|---|---|---|"]
    for _, r in rows:
        tp = r["train_pieces"]
        hp = r.get("heldout_pieces", {"mean": np.nan, "one_decoded": 0, "one_source": 0})
        out.append(f"| {r['title']} | {_f(tp['mean'], 1)} | {tp['max']} | "
                   f"{tp['one_decoded']} of {tp['one_source']} | {_f(hp['mean'], 1)} | "
                   f"{hp['one_decoded']} of {hp['one_source']} |")
    return out + [""]


def _meshes_markdown(res: dict) -> list[str]:
    meshes = res.get("meshes", [])
    if not meshes:
        return []
    shell = res.get("open_shell", 0.0)
    n_closed = sum(1 for m in meshes if m["watertight"])
    out = ["## Source meshes: watertight after welding, and what the SDF did", "",
           f"{n_closed} of {len(meshes)} sources are watertight after welding by position. The "
           "SDF's solid is the generalised-winding-number inside region united with a shell of "
           f"half-thickness {shell:g} around every open component (boundary or non-manifold "
           "edges): SDF = min(winding-signed distance, distance to open parts - "
           f"{shell:g}). A single-plane fin becomes a slab {2 * shell:g} thick instead of "
           "vanishing; an open body (a few boundary edges) keeps its winding-number inside and "
           f"grows by at most {shell:g} near its open edges.", "",
           "| mesh | kind | split | watertight after weld | components | open components | "
           "boundary edges | non-manifold edges | what was done |",
           "|---|---|---|---|---|---|---|---|---|"]
    for m in meshes:
        done = ("nothing (winding-number SDF)" if m["open_components"] == 0 else
                f"shell around {m['open_components']} open part"
                f"{'s' if m['open_components'] > 1 else ''}")
        out.append(f"| {m['mesh']} | {m['kind']} | {m['split']} | "
                   f"{'yes' if m['watertight'] else 'no'} | {m['components']} | "
                   f"{m['open_components']} | {m['boundary_edges']} | "
                   f"{m['nonmanifold_edges']} | {done} |")
    return out + [""]


def evaluate_to_markdown(checkpoint: Path, cache: Path, report: Report = _no_report,
                         command: str = "anim4d dnf evaluate") -> str:
    return to_markdown(evaluate(checkpoint, cache, report), command)
