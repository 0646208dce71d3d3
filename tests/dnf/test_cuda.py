"""DNF training on CUDA (fields stages a-d, shape and motion diffusion): skipped without CUDA."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from backend.methods.dnf.config import get_preset
from backend.methods.dnf.data import Instance, SourceSpec
from backend.methods.dnf.gen.config import DenoiserConfig, OptimConfig, ShapeDiffusionConfig
from backend.methods.dnf.gen.training import train_shape_diffusion
from backend.methods.dnf.pipeline import fit_fields

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _instances(n: int = 4, samples: int = 4000, corr: int = 512, frames: int = 5) -> list:
    rng = np.random.default_rng(0)
    times = np.arange(frames, dtype=np.float32) / 24
    out = []
    for i in range(n):
        pts = rng.uniform(-1, 1, (samples, 3)).astype(np.float32)
        r = 0.3 + 0.1 * i
        c0 = rng.normal(size=(corr, 3)).astype(np.float32)
        c0 *= r / np.linalg.norm(c0, axis=1, keepdims=True)
        shift = 0.05 * np.sin(np.arange(frames) + i)[:, None, None] * np.array([1, 0, 0])
        out.append(Instance(SourceSpec(f"s{i}", "procedural", "train"), {
            "sdf_points": pts, "sdf": (np.linalg.norm(pts, axis=1) - r).astype(np.float32),
            "corr": (c0[None] + shift).astype(np.float32), "times": times,
            "center": np.zeros(3, np.float32), "scale": np.float32(1)}))
    return out


def test_every_fields_stage_trains_on_cuda():
    tiny = get_preset("tiny")
    preset = dataclasses.replace(tiny, device="cuda", train=dataclasses.replace(
        tiny.train, shape_iters=60, motion_iters=60, ft_shape_iters=10, ft_motion_iters=10))
    model = fit_fields(preset, _instances(), log=lambda m: None)
    assert model.stages == ["a", "b", "c", "d"]
    first, final = model.info["initial_losses"], model.info["final_losses"]
    for stage in ("shape-a", "motion-a"):
        assert final[stage] < first[stage], (stage, first[stage], final[stage])
    for stage, loss in final.items():
        assert np.isfinite(loss), stage


def test_shape_diffusion_draws_the_same_batches_on_cuda_and_cpu():
    torch.backends.cuda.matmul.allow_tf32 = False
    layout_vecs = torch.randn(16, 24, generator=torch.Generator().manual_seed(0))
    from backend.methods.dnf.layout import FlatLayout

    layout = FlatLayout(8, [8, 8], [0, 0], "code")
    assert layout.size == 24
    cfg = ShapeDiffusionConfig(denoiser=DenoiserConfig(width=32, depth=2, heads=4),
                               optim=OptimConfig(iters=5, batch=8, log_every=1, lr=1e-3))
    cpu = train_shape_diffusion(cfg, layout_vecs, layout, device="cpu")
    gpu = train_shape_diffusion(cfg, layout_vecs, layout, device="cuda")
    a, b = cpu.info["losses"], gpu.info["losses"]
    # same seed: same initial weights, batches, noise and timesteps on both devices; float32
    # kernels differ in summation order only (passed at this tolerance on an H200, TF32 off)
    assert np.allclose(a, b, rtol=1e-4, atol=1e-7), (a, b)
    assert next(gpu.denoiser.parameters()).device.type == "cpu"
