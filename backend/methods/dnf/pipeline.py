"""``prepare`` and ``fit_fields``: the two steps behind ``anim4d dnf prepare`` / ``fit-fields``.

``fit_fields`` runs, printing each stage's time: shape MLP (a), motion MLP (a), then for b, c,
d the dictionary of each MLP and the fine-tuning of every instance's vectors (shape first; the
motion network reads the shape code of the same stage).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from .config import Preset
from .data import Instance, prepare
from .dictionary import convert_vectors
from .model import STAGES, DNFModel
from .train import TrainData, _no_report, motion_loss, optimise, shape_loss

Report = Callable[[str, float, str], None]
Log = Callable[[str], None]


def default_cache_dir() -> Path:
    return Path("out") / "dnf" / "cache"


def instance_table(instances: list[Instance]) -> list[dict]:
    return [{"name": i.name, "split": i.spec.split, "kind": i.spec.kind,
             "source": Path(i.spec.path).name if i.spec.path else "procedural",
             "clip": i.spec.clip, "times": [float(t) for t in i["times"]],
             "center": [float(c) for c in i["center"]], "scale": float(i["scale"])}
            for i in instances]


def run_prepare(preset: Preset, cache_dir: Path, report: Report = _no_report,
                splits: tuple[str, ...] | None = None) -> list[Instance]:
    def prog(fraction: float, message: str) -> None:
        report("prepare", fraction, message)

    return prepare(preset.data, cache_dir, prog, splits)


def fit_fields(preset: Preset, instances: list[Instance], report: Report = _no_report,
               log: Log = print, stages: tuple[str, ...] = STAGES,
               start: DNFModel | None = None,
               fields: tuple[str, ...] = ("shape", "motion")) -> DNFModel:
    """Train on the ``train`` split of ``instances``; returns the model with every stage.

    ``start``: a model whose stage (a) (MLPs and codes, same instances and sizes) is reused, so
    only the dictionary stages run again. ``fields``: which dictionary chains (b, c, d) to run;
    the two are independent (codes are frozen in those stages), so they can run in separate
    processes and be joined (:func:`join_fields`) with the same result as one run.
    """
    torch.manual_seed(preset.train.seed)
    train = [i for i in instances if i.spec.split == "train"]
    data = TrainData.from_instances(train, preset.device)
    model = DNFModel.untrained(preset, instance_table(train))
    model.shape_mlp.to(preset.device)
    model.motion_mlp.to(preset.device)
    tc, n, frames = preset.train, data.count, data.frames
    timings: dict[str, float] = {}
    losses: dict[str, float] = {}
    first: dict[str, float] = {}
    log(f"training on {n} instances x {frames} frames ({preset.left_out()} left out)")

    def run(name: str, rep, vecs, loss, iters, batch, lr, shared=None, shared_lr=0.0,
            vec_mask=None):
        t0 = time.monotonic()
        out, hist = optimise(rep, vecs, loss, iters, batch, lr, shared, shared_lr,
                             seed=tc.seed, report=report, stage=name, vec_mask=vec_mask)
        w = min(len(hist), max(5, len(hist) // 20))  # first / last 5 %, at least 5 steps
        losses[name] = float(np.mean(hist[-w:]))
        first[name] = float(np.mean(hist[:w]))
        timings[name] = round(time.monotonic() - t0, 1)
        log(f"stage {name}: {timings[name]:.1f} s (final loss {losses[name]:.5f})")
        return out

    sloss = shape_loss(data, tc.shape_points, preset.shape.clamp, tc.code_reg)

    if start is not None:
        names = [i["name"] for i in start.instances]
        if names != data.names:
            raise ValueError("the resumed checkpoint was trained on other instances "
                             f"({len(names)} vs {len(data.names)}); train from scratch")
        model.shape_mlp.load_state_dict(start.shape_mlp.state_dict())
        model.motion_mlp.load_state_dict(start.motion_mlp.state_dict())
        model.shape_vecs["a"] = start.shape_vecs["a"].clone()
        model.motion_vecs["a"] = start.motion_vecs["a"].clone()
        for key in ("timings_s", "initial_losses", "final_losses"):
            old = start.info.get(key, {})
            target = {"timings_s": timings, "initial_losses": first,
                      "final_losses": losses}[key]
            target.update({k: v for k, v in old.items() if k.endswith("-a")})
        log("stage a reused from the resumed checkpoint")
    else:
        _train_mlps(model, data, run, sloss)
    for p in list(model.shape_mlp.parameters()) + list(model.motion_mlp.parameters()):
        p.requires_grad_(False)
    _fit_dictionary(model, data, run, stages, fields)
    model.info.update(timings_s=timings, initial_losses=first, final_losses=losses,
                      train_instances=n, frames=frames, left_out=preset.left_out())
    return model


def _train_mlps(model: DNFModel, data: TrainData, run, sloss) -> None:
    """Stage (a): the shape MLP with shape codes, then the motion MLP with pose codes."""
    preset = model.preset
    tc, n, frames = preset.train, data.count, data.frames
    gen = torch.Generator().manual_seed(tc.seed)
    # drawn on the CPU (the same start on every device), then moved to the training device
    codes0 = (torch.randn(n, preset.shape.code_dim, generator=gen) * 0.01).to(preset.device)
    pose0 = (torch.randn(n * frames, preset.motion.pose_dim, generator=gen) * 0.01).to(
        preset.device)
    rep = model.shape_rep("a")
    model.shape_vecs["a"] = run("shape-a", rep, codes0, sloss, tc.shape_iters, tc.shape_batch,
                                tc.code_lr, rep.shared_parameters(), tc.shape_lr)
    rep = model.motion_rep("a")
    mloss = motion_loss(data, model.shape_vecs["a"], tc.motion_points, tc.code_reg)
    model.motion_vecs["a"] = run(
        "motion-a", rep, pose0, mloss, tc.motion_iters, tc.motion_batch, tc.code_lr,
        rep.shared_parameters(), tc.motion_lr).reshape(n, frames, -1)


def code_frozen_mask(layout) -> torch.Tensor:
    """``[D]``: 0 on the code slice of ``layout``, 1 elsewhere."""
    mask = torch.ones(layout.size)
    mask[:layout.code_dim] = 0.0
    return mask


def _fit_dictionary(model: DNFModel, data: TrainData, run, stages: tuple[str, ...],
                    fields: tuple[str, ...] = ("shape", "motion")) -> None:
    """Stages (b), (c), (d) in order, each starting from the previous stage's vectors.

    As in the public code, the shape and pose codes stay frozen (masked gradients) and are not
    regularised while the singular values and residual coefficients are fine-tuned: the motion
    network's shape condition is then the same in every stage.
    """
    tc, n, frames = model.preset.train, data.count, data.frames
    sloss = shape_loss(data, tc.shape_points, model.preset.shape.clamp, 0.0)
    prev = "a"
    for stage in [s for s in ("b", "c", "d") if s in stages]:
        model.build_dictionaries(stage)
        srep, mrep = model.shape_rep(stage), model.motion_rep(stage)
        if prev == "a":
            svec = model.shape_dicts[stage].init_vectors(model.shape_vecs["a"], srep.layout)
            mvec = model.motion_dicts[stage].init_vectors(
                model.motion_vecs["a"].reshape(n * frames, -1), mrep.layout)
        else:
            svec = (convert_vectors(model.shape_vecs[prev], model.shape_layout(prev),
                                    srep.layout) if "shape" in fields else None)
            mvec = (convert_vectors(model.motion_vecs[prev].reshape(n * frames, -1),
                                    model.motion_layout(prev), mrep.layout)
                    if "motion" in fields else None)
        if "shape" in fields:
            shared = srep.shared_parameters() if stage == "d" else None
            model.shape_vecs[stage] = run(
                f"shape-{stage}", srep, svec, sloss, tc.ft_shape_iters, tc.shape_batch,
                tc.ft_lr, shared, tc.ft_residual_lr, code_frozen_mask(srep.layout))
        if "motion" in fields:
            # the shape codes are frozen: every stage's shape code is stage (a)'s
            mloss = motion_loss(data, model.shape_vecs["a"], tc.motion_points, 0.0)
            shared = mrep.shared_parameters() if stage == "d" else None
            model.motion_vecs[stage] = run(
                f"motion-{stage}", mrep, mvec, mloss, tc.ft_motion_iters, tc.motion_batch,
                tc.ft_lr, shared, tc.ft_residual_lr, code_frozen_mask(mrep.layout)
            ).reshape(n, frames, -1)
        for dic in (model.shape_dicts[stage], model.motion_dicts[stage]):
            for p in dic.parameters():
                p.requires_grad_(False)
        prev = stage


def join_fields(shape_model: DNFModel, motion_model: DNFModel) -> DNFModel:
    """One model from two runs of :func:`fit_fields` from the same stage (a), one with
    ``fields=("shape",)`` and one with ``("motion",)``: the shape stages of the first, the
    motion stages of the second, timings and losses of both."""
    if [i["name"] for i in shape_model.instances] != [i["name"] for i in motion_model.instances]:
        raise ValueError("the two runs were trained on different instances")
    if not torch.equal(shape_model.shape_vecs["a"], motion_model.shape_vecs["a"]):
        raise ValueError("the two runs did not start from the same stage (a)")
    out = shape_model
    for stage in STAGES[1:]:
        if stage in motion_model.motion_vecs:
            out.motion_vecs[stage] = motion_model.motion_vecs[stage]
            out.motion_dicts[stage] = motion_model.motion_dicts[stage]
    for key in ("timings_s", "initial_losses", "final_losses"):
        merged = dict(shape_model.info.get(key, {}))
        merged.update({k: v for k, v in motion_model.info.get(key, {}).items()
                       if k.startswith("motion-")})
        out.info[key] = merged
    return out
