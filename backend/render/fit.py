"""Static fitting: optimise 3D Gaussians to posed multi-view RGBA images (DS4D's first stage).

Loss per step: ``(1 - l) L1 + l (1 - SSIM)`` on the colour composited over a random background
(which forces the alpha to be right) plus ``mask_weight`` x L1 between rendered alpha and the
masks. Adam with per-parameter learning rates as in 3DGS (position lr decayed exponentially and
scaled by the scene size), SH degree raised step by step, densification and pruning by
:class:`~backend.render.strategy.CPUDefaultStrategy` (gsplat's ``DefaultStrategy`` on CUDA when
gsplat is installed). Initial Gaussians come from given points, from the visual hull of the masks
or from a random ball.

``fit_static`` reports ``progress(stage, fraction, message)`` and polls ``cancelled()`` every
step; cancelling raises :class:`backend.jobs.api.JobCancelled`. The loop itself is
:class:`~backend.render.trainer.GaussianTrainer`, which DS4D's stages share.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor

from .dispatch import gsplat_available
from .gaussians import Gaussians, random_ball_points, visual_hull_points
from .losses import composite, dssim, l1, mask_loss, psnr
from .strategy import DensifyConfig
from .trainer import GaussianTrainer, RenderOut, make_strategy

Progress = Callable[[str, float, str], None]


def _default_densify() -> DensifyConfig:
    return DensifyConfig(
        grow_grad2d=0.0002, refine_start_iter=100, refine_every=100, refine_stop_iter=1200,
        reset_every=100_000, max_gaussians=60_000,
    )


@dataclass
class FitConfig:
    iterations: int = 1500
    init: Literal["visual_hull", "random", "points"] = "visual_hull"
    n_init: int = 6000
    hull_resolution: int = 64
    init_opacity: float = 0.5
    init_scale: float = 1.0  # x the hull voxel size (or x radius / n^(1/3) for random init)
    sh_degree: int = 0
    sh_degree_interval: int = 500  # raise the active SH degree every this many steps
    views_per_step: int = 4
    lr_means: float = 1.6e-4  # x scene scale, decayed to lr_means_final
    lr_means_final: float = 1.6e-6
    lr_scales: float = 5e-3
    lr_quats: float = 1e-3
    lr_opacities: float = 5e-2
    lr_sh0: float = 2.5e-3
    lr_shN: float = 2.5e-3 / 20
    ssim_lambda: float = 0.2
    mask_weight: float = 0.1
    random_background: bool = True
    densify: DensifyConfig = field(default_factory=_default_densify)
    # Densification also stops after this fraction of the iterations, so that the last split
    # Gaussians have time to settle (None: only densify.refine_stop_iter applies).
    densify_until: float | None = 0.75
    time_budget_s: float | None = None  # stop early (cleanly) after this many seconds
    seed: int = 0
    tile_size: int | None = None
    num_threads: int | None = None  # torch CPU threads during the fit (None: leave as is)
    progress_every: int = 10


@dataclass
class FitStats:
    iterations: int
    seconds: float
    n_gaussians: int
    final_loss: float
    stopped_by_budget: bool
    history: list[dict] = field(default_factory=list)
    densify_log: list[dict] = field(default_factory=list)


def scene_scale_from_cameras(viewmats: Tensor) -> float:
    """1.1 x the largest distance of a camera centre from their mean (3DGS's scene extent).

    When every camera shares one centre (a single view, or views from one point) that spread is
    zero; the scene is then sized by the cameras' distance from the world origin (the orbit
    target, where the object sits), and 1.0 if they sit at the origin too, so that the position
    learning rate (proportional to the scale) is never zero.
    """
    R = viewmats[:, :3, :3]
    centres = -(R.transpose(1, 2) @ viewmats[:, :3, 3:])[..., 0]
    spread = float((centres - centres.mean(0)).norm(dim=-1).max())
    if spread <= 1e-6:
        spread = float(centres.norm(dim=-1).max())
    if spread <= 1e-6:
        spread = 1.0
    return 1.1 * spread


def _as_rgba(images: Tensor | object) -> Tensor:
    t = torch.as_tensor(images)
    if t.dim() != 4 or t.shape[-1] != 4:
        raise ValueError(f"images must be [V, H, W, 4] RGBA, got {list(t.shape)}")
    return t.float() / 255.0 if t.dtype == torch.uint8 else t.float()


def _initial_gaussians(cfg, images, viewmats, Ks, points, colors, scale, gen) -> Gaussians:
    if cfg.init == "points" or points is not None:
        if points is None:
            raise ValueError("init='points' needs init_points")
        pts = torch.as_tensor(points, dtype=torch.float32)
        if pts.dim() != 2 or pts.shape[-1] != 3 or pts.shape[0] == 0:
            raise ValueError(f"init_points must be [N, 3] with N > 0, got {list(pts.shape)}")
        cols = torch.full_like(pts, 0.5) if colors is None else torch.as_tensor(colors).float()
        if pts.shape[0] > 1:  # mean distance to the 3 nearest neighbours (3DGS's initial scale)
            k = min(4, pts.shape[0])
            d = float(torch.cdist(pts[:2048], pts).topk(k, largest=False).values[:, 1:].mean())
        else:
            d = 0.01 * scale
        return Gaussians.from_points(pts, cols, d * cfg.init_scale, cfg.init_opacity,
                                     cfg.sh_degree)
    # Half the width seen at the orbit distance bounds the object.
    dist = scale / 1.1
    bound = dist * 0.5 * float(images.shape[1]) / float(Ks[0, 1, 1])
    if cfg.init == "visual_hull":
        pts, cols, voxel = visual_hull_points(images, viewmats, Ks, bound, cfg.n_init,
                                              cfg.hull_resolution, generator=gen)
        return Gaussians.from_points(pts, cols, voxel * cfg.init_scale, cfg.init_opacity,
                                     cfg.sh_degree)
    if cfg.init == "random":
        pts, cols = random_ball_points(cfg.n_init, bound, gen)
        s = bound / cfg.n_init ** (1 / 3) * cfg.init_scale
        return Gaussians.from_points(pts, cols, s, cfg.init_opacity, cfg.sh_degree)
    raise ValueError(f"unknown init {cfg.init!r}")


def _learning_rates(cfg: FitConfig, scale: float) -> dict[str, float]:
    return {"means": cfg.lr_means * scale, "scales": cfg.lr_scales, "quats": cfg.lr_quats,
            "opacities": cfg.lr_opacities, "sh0": cfg.lr_sh0, "shN": cfg.lr_shN}


def fit_static(
    images: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    init_points: Tensor | None = None,
    init_colors: Tensor | None = None,
    config: FitConfig | None = None,
    progress: Progress | None = None,
    cancelled: Callable[[], bool] | None = None,
    device: str | torch.device = "cpu",
    on_step: Callable[[int, Gaussians], None] | None = None,
) -> tuple[Gaussians, FitStats]:
    """Fit Gaussians to V posed views.

    Args:
        images: [V, H, W, 4] RGBA, straight alpha (alpha = mask), float in [0, 1] or uint8.
        viewmats: [V, 4, 4] world-to-camera (OpenCV axes); Ks: [V, 3, 3].
        init_points, init_colors: optional [N, 3] starting points and colours in [0, 1].
        config: :class:`FitConfig`.
        progress: ``progress(stage, fraction, message)``; stages "init", "fit", "done".
        cancelled: polled every step; True raises ``JobCancelled``.
        device: where to optimise; on "cuda" gsplat's rasterizer and ``DefaultStrategy`` are used
            when gsplat is installed, otherwise the built-in ones (which run on any device).
        on_step: called as ``on_step(step, gaussians)`` every ``progress_every`` steps with the
            current parameters (live tensors: read, do not modify), e.g. to evaluate.

    Returns:
        the fitted :class:`Gaussians` (detached, on the CPU) and :class:`FitStats`.
    """
    cfg = config or FitConfig()
    threads = torch.get_num_threads()
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    try:
        return _fit(images, viewmats, Ks, init_points, init_colors, cfg, progress, cancelled,
                    device, on_step)
    finally:
        torch.set_num_threads(threads)


def _fit(images, viewmats, Ks, init_points, init_colors, cfg, progress, cancelled, device,
         on_step):
    report = progress or (lambda stage, frac, msg: None)
    device = torch.device(device)
    t0 = time.monotonic()
    gen = torch.Generator().manual_seed(cfg.seed)
    images = _as_rgba(images)
    viewmats, Ks = torch.as_tensor(viewmats).float(), torch.as_tensor(Ks).float()
    V, H, W, _ = images.shape
    if viewmats.shape != (V, 4, 4) or Ks.shape != (V, 3, 3):
        raise ValueError(f"need viewmats [{V}, 4, 4] and Ks [{V}, 3, 3] for {V} images")
    scale = scene_scale_from_cameras(viewmats)

    report("init", 0.0, f"initialising ({cfg.init})")
    g0 = _initial_gaussians(cfg, images, viewmats, Ks, init_points, init_colors, scale, gen)
    dcfg = cfg.densify
    if cfg.densify_until is not None:
        stop = min(dcfg.refine_stop_iter, int(cfg.densify_until * cfg.iterations))
        dcfg = dataclasses.replace(dcfg, refine_stop_iter=stop)
    use_gsplat = device.type == "cuda" and gsplat_available()
    strategy, gs_state = make_strategy(dcfg, scale, gen, device, use_gsplat)
    trainer = GaussianTrainer(g0, _learning_rates(cfg, scale), strategy, device, gs_state)
    images_d, viewmats_d, Ks_d = images.to(device), viewmats.to(device), Ks.to(device)
    report("init", 1.0, f"{trainer.count} Gaussians")

    decay = (cfg.lr_means_final / cfg.lr_means) ** (1.0 / max(1, cfg.iterations))
    views = {"order": torch.randperm(V, generator=gen), "cursor": 0}
    kw = {"packed": False} if use_gsplat else {"tile_size": cfg.tile_size, "backend": "torch"}

    def render(step: int, params: dict) -> RenderOut:
        k = min(cfg.views_per_step or V, V)
        if views["cursor"] + k > V:
            views["order"], views["cursor"] = torch.randperm(V, generator=gen), 0
        c = views["cursor"]
        idx = views["order"][c : c + k].to(device)
        views["cursor"] = c + k
        if cfg.random_background:
            bg = torch.rand(k, 3, generator=gen).to(device)
        else:
            bg = torch.zeros(k, 3, device=device)
        target = images_d[idx]
        sh_deg = min(cfg.sh_degree, step // max(1, cfg.sh_degree_interval))
        rgb, alpha, info = trainer.gaussians().render(viewmats_d[idx], Ks_d[idx], W, H,
                                                      backgrounds=bg, sh_degree=sh_deg, **kw)
        return RenderOut(rgb, alpha, info, {"target": target,
                                            "gt_rgb": composite(target, bg[:, None, None, :])})

    def loss(step: int, out: RenderOut) -> tuple[Tensor, dict]:
        gt_rgb, target = out.extras["gt_rgb"], out.extras["target"]
        value = ((1 - cfg.ssim_lambda) * l1(out.rgb, gt_rgb)
                 + cfg.ssim_lambda * dssim(out.rgb, gt_rgb))
        value = value + cfg.mask_weight * mask_loss(out.alpha, target[..., 3:])
        return value, {"psnr": lambda: psnr(out.rgb, gt_rgb)}

    def schedule(step: int) -> None:
        if step > 0:  # the same float sequence as multiplying after every step
            for group in trainer.optimizers["means"].param_groups:
                group["lr"] *= decay

    def after_step(step: int, out: RenderOut, value: float) -> None:
        if on_step is not None and (step % cfg.progress_every == 0
                                    or step == cfg.iterations - 1):
            with torch.no_grad():
                on_step(step, trainer.gaussians())

    budget = None if cfg.time_budget_s is None else cfg.time_budget_s - (time.monotonic() - t0)
    run = trainer.run(cfg.iterations, render, loss, stage="fit", schedule=schedule,
                      progress=report, cancelled=cancelled, progress_every=cfg.progress_every,
                      on_step=after_step, time_budget_s=budget)
    fitted = trainer.snapshot()
    stats = FitStats(
        iterations=run.steps, seconds=time.monotonic() - t0,
        n_gaussians=fitted.count, final_loss=run.final_loss,
        stopped_by_budget=run.stopped_by_budget, history=run.history,
        densify_log=list(getattr(strategy, "log", [])),
    )
    report("done", 1.0, f"{fitted.count} Gaussians in {stats.seconds:.1f} s")
    return fitted, stats


@torch.no_grad()
def evaluate(
    gaussians: Gaussians, images: Tensor, viewmats: Tensor, Ks: Tensor,
    background: float = 1.0,
) -> dict[str, float]:
    """PSNR of renders vs images ([V, H, W, 4] straight RGBA), both composited over ``background``
    (white by default, as in the Blender synthetic benchmarks); also over black, of the alpha,
    and the mean SSIM."""
    images = _as_rgba(images)
    V, H, W, _ = images.shape
    rgb, alpha, _ = gaussians.render(torch.as_tensor(viewmats).float(), torch.as_tensor(Ks).float(),
                                     W, H, backgrounds=torch.full((V, 3), float(background)))
    gt = composite(images, background)
    black = rgb - background * (1 - alpha)
    return {
        "psnr": psnr(rgb.clamp(0, 1), gt),
        "psnr_black": psnr(black.clamp(0, 1), composite(images, 0.0)),
        "psnr_alpha": psnr(alpha, images[..., 3:]),
        "ssim": float(1 - dssim(rgb.clamp(0, 1), gt)),
    }
