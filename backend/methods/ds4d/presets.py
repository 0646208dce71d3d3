"""DS4D training presets (``--param preset=tiny|cpu|paper``), as dataclasses.

- ``tiny``: tests: a 32-pixel, 4-frame clip, a few hundred Gaussians, a few dozen steps.
- ``cpu``: a 16-frame clip at 128 pixels on a 2-core CPU, aimed at about ten minutes
  (``bench/ds4d.py`` measures the seconds per step and projects this schedule against that
  budget; the step counts are to be tuned on an idle machine: the first measurement, on a
  shared machine at load 9.6, gave 4.7 s per static and 6.4 s per dynamic step).
- ``paper``: the paper's schedule with STAG4D's settings where the paper is silent (see
  ``../shared/NOTES.md``): 10k initial Gaussians, 1,000 static steps then 6,000 with TSSF and the
  deformation, HexPlane 64^3 x 25 x 32 channels at {1, 2, 4, 8}, MLP width 64, densification of
  the top 2.5 % by accumulated gradient from step 1,200 to 6,000, learning rates: position
  2e-4 -> 2e-6 (x scene scale), TSSF and deformation MLP 1.6e-4 -> 1.6e-6, grid 1.6e-3 (decayed
  to 1.6e-5 as in 4DGS). ``tiny`` and ``cpu`` train the deformation at 10x those rates (their
  schedules are 13x and more shorter; see the comment at the learning rates).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

from shared.errors import ParamError

from .hexplane import HexPlaneConfig


@dataclass
class StageDensify:
    """Densification of one stage, in that stage's steps (0 = off)."""

    start: int = 0
    stop: int = 0
    every: int = 100
    top_fraction: float = 0.025  # DS4D: the top 2.5 % by accumulated gradient
    max_gaussians: int = 60_000
    prune_opa: float = 0.005


@dataclass
class DS4DConfig:
    name: str = "cpu"
    # input
    size: int = 128
    frames: int = 16
    # features (weight-free descriptor unless DINOv2 weights are on the server)
    feature_backend: Literal["auto", "dinov2", "descriptor"] = "auto"
    feature_model: str = "facebook/dinov2-small"  # a local folder, or an id in the HF cache
    feature_image_size: int = 224
    descriptor_dim: int = 32
    tssf_mode: Literal["auto", "ga", "da", "mean"] = "auto"  # auto: DA with other views, else GA
    # the point features: DSFD of the frame features (the method), the frame features as they
    # are, or none (HexPlane alone); raw, none and tssf_mode mean are issue 11's ablation steps
    point_features: Literal["dsfd", "raw", "none"] = "dsfd"
    # Gaussians
    n_init: int = 3000
    hull_resolution: int = 48
    init_opacity: float = 0.5
    # schedule
    static_steps: int = 150
    dynamic_steps: int = 450
    static_densify: StageDensify = field(default_factory=lambda: StageDensify(30, 120, 30))
    dynamic_densify: StageDensify = field(default_factory=lambda: StageDensify(50, 350, 50))
    # fields
    hexplane: HexPlaneConfig = field(default_factory=lambda: HexPlaneConfig(
        resolution=(32, 32, 32, 9), channels=16, multires=(1, 2)))
    mlp_width: int = 64
    # learning rates (x the scene scale for positions). The deformation's (TSSF + MLP, and the
    # HexPlane grids) are 10x the paper's on the short presets: the paper decays 1.6e-4 ->
    # 1.6e-6 over 6,000 dynamic steps; squeezed into 450, the sum of the step sizes (which
    # bounds how far Adam moves each weight, and the heads' last layers start at zero) is 13x
    # smaller, and the field learnt 26-28 % of a real clip's motion with its gradient still
    # undiminished when the rate had decayed (bench/ds4d_motion.py; docs/results/ds4d.md,
    # "Motion"). ``paper`` keeps the paper's rates.
    lr_position: float = 2e-4
    lr_position_final: float = 2e-6
    lr_deform: float = 1.6e-3
    lr_deform_final: float = 1.6e-5
    lr_grid: float = 1.6e-2
    lr_grid_final: float = 1.6e-4
    lr_scales: float = 5e-3
    lr_quats: float = 1e-3
    lr_opacities: float = 5e-2
    lr_sh0: float = 2.5e-3
    # losses
    ssim_lambda: float = 0.2  # real view: (1 - l) L1 + l D-SSIM
    mask_weight: float = 0.5
    other_view_weight: float = 0.5  # LPIPS (or its substitute) on the other views
    view_loss: Literal["auto", "lpips", "msdssim"] = "auto"  # auto: LPIPS where its weights are
    lpips_folder: str | None = None  # folder holding the AlexNet weights (else torch's cache)
    tv_weight: float = 1e-4  # HexPlane total variation (all planes)
    smooth_weight: float = 1e-3  # HexPlane second difference along time
    # misc
    # "auto": gsplat's CUDA rasterizer when training on CUDA, ours on the CPU; "torch": ours
    # everywhere (a CUDA machine without gsplat)
    rasterizer: Literal["auto", "gsplat", "torch"] = "auto"
    tile_size: int | None = None
    num_threads: int | None = None  # torch CPU threads (None: leave as is; tiny: 1)
    seed: int = 0
    preview_every: int = 50  # steps between preview events (0: none)
    preview_times: int = 3  # times each preview shows
    progress_every: int = 5


PRESETS: dict[str, DS4DConfig] = {
    "tiny": DS4DConfig(
        name="tiny", size=32, frames=4, feature_backend="descriptor", feature_image_size=56,
        descriptor_dim=8, n_init=300, hull_resolution=24, static_steps=12, dynamic_steps=12,
        static_densify=StageDensify(4, 10, 4), dynamic_densify=StageDensify(4, 10, 4),
        hexplane=HexPlaneConfig(resolution=(8, 8, 8, 4), channels=4, multires=(1, 2)),
        mlp_width=16, tile_size=16, num_threads=1, preview_every=4, progress_every=1),
    "cpu": DS4DConfig(),
    "paper": DS4DConfig(
        name="paper", size=256, frames=32, descriptor_dim=32, n_init=10_000,
        hull_resolution=64, static_steps=1000, dynamic_steps=6000,
        static_densify=StageDensify(0, 0), dynamic_densify=StageDensify(200, 5000, 100),
        hexplane=HexPlaneConfig(), mlp_width=64, lr_deform=1.6e-4, lr_deform_final=1.6e-6,
        lr_grid=1.6e-3, lr_grid_final=1.6e-5, preview_every=200, progress_every=10),
}


def preset(name: str) -> DS4DConfig:
    """A fresh copy of preset ``name``."""
    if name not in PRESETS:
        raise ParamError(f"unknown DS4D preset {name!r}; accepted: {', '.join(PRESETS)}")
    return dataclasses.replace(PRESETS[name])
