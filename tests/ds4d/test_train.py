"""DS4D training on a small multi-view scene (Blender-rendered views of a static object)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from backend.methods.ds4d.presets import PRESETS, StageDensify, preset
from backend.methods.ds4d.train import Scene, multiscale_dssim, train
from backend.render.losses import composite, psnr

VIEWS = Path(__file__).resolve().parents[1] / "render" / "data" / "views48.npz"


def _scene(views=(0, 4, 8)) -> Scene:
    d = np.load(VIEWS)
    rgba = torch.from_numpy(d["images"][list(views)]).float() / 255  # [V, 48, 48, 4]
    return Scene(rgba[:, None].repeat(1, 2, 1, 1, 1), torch.from_numpy(d["viewmats"][list(views)]),
                 torch.from_numpy(d["Ks"][list(views)]), torch.tensor([0.0, 1.0]),
                 ["input", "b", "c"], [True, True, True])


def test_presets_carry_the_papers_schedule():
    p = PRESETS["paper"]
    assert (p.static_steps, p.dynamic_steps, p.n_init) == (1000, 6000, 10_000)
    assert (p.lr_deform, p.lr_deform_final, p.lr_position, p.lr_position_final, p.lr_grid) == (
        1.6e-4, 1.6e-6, 2e-4, 2e-6, 1.6e-3)
    assert p.dynamic_densify.top_fraction == 0.025 and p.mlp_width == 64
    assert p.hexplane.resolution == (64, 64, 64, 25) and p.hexplane.multires == (1, 2, 4, 8)
    assert preset("tiny") is not PRESETS["tiny"]


def test_two_stages_fit_the_views_with_da_fusion_and_densification():
    scene = _scene()
    cfg = dataclasses.replace(preset("tiny"), static_steps=40, dynamic_steps=8, n_init=400,
                              static_densify=StageDensify(9, 40, 10, top_fraction=0.05),
                              dynamic_densify=StageDensify(3, 8, 4, top_fraction=0.05))
    stages, previews = [], []
    res = train(scene, cfg, progress=lambda s, f, m: stages.append((s, f)),
                on_preview=lambda s, step, ts, fr: previews.append((s, step, len(fr))))
    assert res.model.tssf.mode == "da" and res.cancelled_at_step is None and res.steps == 48
    assert [s for s, _ in stages if s in ("static", "dynamic")][-1] == "dynamic"
    fr = [f for s, f in stages if s in ("static", "dynamic")]
    assert fr == sorted(fr) and fr[-1] == 1.0
    assert [p[1] for p in previews] == list(range(4, 49, 4)) and previews[-1][0] == "dynamic"
    # densification grew the top 5 % (a split adds one) and the history logged it
    assert res.model.gaussians.count > 400
    # the fit: the input view's PSNR over white rose well above the first step's
    first, last = res.history[0]["psnr"], res.history[-1]["psnr"]
    g = res.model.frames(None, [0.0])[0]
    rgb, _, _ = g.render(scene.viewmats, scene.Ks, 48, 48, backgrounds=torch.ones(3, 3))
    white = psnr(rgb[:1].clamp(0, 1), composite(scene.rgba[:1, 0], 1.0))
    print(f"psnr first {first:.2f} last {last:.2f} input view over white {white:.2f}")
    assert last > first + 4 and white > 20  # measured: 16.8 -> 21.7, 21.4 over white


def test_multiscale_dssim_is_zero_for_equal_images_and_tolerates_a_shift():
    g = torch.Generator().manual_seed(0)
    img = torch.nn.functional.avg_pool2d(torch.rand(1, 3, 36, 36, generator=g), 3, 1).permute(
        0, 2, 3, 1)
    assert float(multiscale_dssim(img, img)) < 1e-6
    shifted = torch.roll(img, 1, dims=2)
    noise = torch.rand(img.shape, generator=g)
    assert float(multiscale_dssim(img, shifted)) < float(multiscale_dssim(img, noise))
