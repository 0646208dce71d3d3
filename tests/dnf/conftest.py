"""Fixtures for the DNF tests: a micro preset and a micro model trained on one creature.

Everything here is made in code (procedural creatures, hand-built meshes and files); the shared
animal data is never needed. (``test_published_figures.py`` fits one held-out animal clip from
``../shared/data/animals`` when present and skips that test, saying why, when absent.)
"""

from __future__ import annotations

import warnings
from dataclasses import replace

import pytest
import torch

from backend.methods.dnf.config import (
    DataConfig,
    DictConfig,
    EvalConfig,
    MotionNetConfig,
    ShapeNetConfig,
    TrainConfig,
    get_preset,
)


def micro_preset(**train):
    """Tiny sizes: one procedural creature, 5 frames, 4k SDF samples, 32-wide MLPs."""
    p = get_preset("tiny")
    return replace(
        p, name="micro",
        data=DataConfig(animals_dir="/nonexistent-dnf-test-data", creatures_dir="-",
                        procedural=((3, "walk"),),
                        fit_seeds=(), frames=5, fps=10.0, sdf_uniform=1000, sdf_near=3000,
                        corr_points=256, iou_points=1000, eval_points=256),
        shape=ShapeNetConfig(code_dim=8, hidden=32, layers=3, skip=(1,), pe_freqs=4),
        motion=MotionNetConfig(pose_dim=4, hidden=32, layers=2, skip=(), pe_freqs=2),
        train=replace(TrainConfig(shape_iters=400, shape_batch=1, shape_points=512,
                                  motion_iters=300, motion_batch=5, motion_points=128,
                                  ft_shape_iters=30, ft_motion_iters=30), **train),
        dictionary=DictConfig(shape_keep=0.5, motion_keep=0.5, shape_residual=2,
                              motion_residual=2),
        eval=EvalConfig(mc_resolution=24, fit_iters=40, max_train_instances=0),
        threads=1,
    )


@pytest.fixture(scope="session")
def micro_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("dnf_cache")


@pytest.fixture(scope="session")
def micro_trained(micro_cache):
    """(model, instances) after a full micro fit-fields run (all stages)."""
    from backend.methods.dnf.pipeline import fit_fields, run_prepare

    torch.set_num_threads(1)
    preset = micro_preset()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        instances = run_prepare(preset, micro_cache)
    model = fit_fields(preset, instances, log=lambda s: None)
    return model, instances


def micro_generator_preset():
    """Generator sizes for tests: 16 wide, one block, a few dozen steps (random-ish samples)."""
    from backend.methods.dnf.gen.config import (
        DenoiserConfig,
        MotionDenoiserConfig,
        MotionDiffusionConfig,
        OptimConfig,
        ShapeDiffusionConfig,
    )
    from backend.methods.dnf.gen.store import GeneratorPreset

    opt = OptimConfig(iters=30, batch=8, lr=1e-3, warmup=5, log_every=10)
    return GeneratorPreset(
        "micro", ShapeDiffusionConfig(denoiser=DenoiserConfig(width=16, depth=1, heads=2),
                                      optim=opt),
        MotionDiffusionConfig(denoiser=MotionDenoiserConfig(width=16, depth=1, heads=2,
                                                            window=4), optim=opt, context=2,
                              resample=1))


@pytest.fixture(scope="session")
def creature_models(micro_cache, tmp_path_factory):
    """A models folder with ``dnf/micro``: a micro model of two procedural creatures (token
    statistics need two instances) plus a micro generator."""
    from backend.methods.dnf.checkpoint import load_checkpoint, save_checkpoint
    from backend.methods.dnf.gen.store import fit_generator
    from backend.methods.dnf.pipeline import fit_fields, run_prepare

    torch.set_num_threads(1)
    preset = micro_preset()
    preset = replace(preset, data=replace(preset.data, procedural=((3, "walk"), (5, "gallop"))))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        instances = run_prepare(preset, micro_cache)
    model = fit_fields(preset, instances, log=lambda s: None)
    root = tmp_path_factory.mktemp("creature_models")
    folder = save_checkpoint(model, root / "dnf" / "micro")
    fit_generator(load_checkpoint(folder), folder, micro_generator_preset())
    return root
