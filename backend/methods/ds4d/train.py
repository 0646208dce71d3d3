"""DS4D training: a static stage on the middle frame, then the dynamic stage (TSSF + deformation).

Both stages run on :class:`backend.render.trainer.GaussianTrainer` (the loop ``fit_static`` uses).

- **Static stage** (``static_steps``): the canonical Gaussians alone, fitted to every view's
  middle frame.
- **Dynamic stage** (``dynamic_steps``): each step picks a frame time ``t``; the canonical
  centres (detached) are projected into every view and sample its DSFD feature map at ``t``
  (:class:`.point_features.PointFeatureSampler`), TSSF fuses them, the deformation field
  (HexPlane(x, t) + fused features -> MLP heads) moves the Gaussians to ``t``; all views are
  rendered at ``t``.
- **Losses**: on the real (input) view ``(1 - l) L1 + l D-SSIM`` plus ``mask_weight`` x L1 on
  alpha, composited over a random background (which forces the alpha to be right). On the other
  views (user-supplied or, in part 2, generated) the paper uses LPIPS; until part 2 brings LPIPS,
  its substitute here is a multi-scale D-SSIM (full, 1/2 and 1/4 resolution: structure rather
  than exact pixels, tolerant to the small misalignments of views from other sources, which is
  what LPIPS is used for) plus the mask term, weighted ``other_view_weight``. Dynamic stage
  regularisers: HexPlane total variation (``tv_weight``) and time smoothness (second difference
  along t, ``smooth_weight``).
- **Densification**: per stage, the top 2.5 % by accumulated image-plane gradient are cloned or
  split every ``every`` steps in [start, stop) (:class:`~backend.render.strategy.DensifyConfig`
  ``grow_top_fraction``), transparent ones pruned.
- **Learning rates** (log-linear decays): positions 2e-4 -> 2e-6 x scene scale over the whole
  run; over the dynamic stage TSSF and deformation MLP 1.6e-4 -> 1.6e-6, HexPlane grids 1.6e-3
  -> 1.6e-5 (the paper's; the short ``tiny`` and ``cpu`` schedules use 10x, see
  :mod:`.presets`).
- **Cancel**: ``cancelled()`` is polled every step; training stops and the latest state is kept
  (:attr:`TrainResult.cancelled_at_step`), so a cancelled run still gives a usable result.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from backend.render.fit import scene_scale_from_cameras
from backend.render.gaussians import Gaussians
from backend.render.losses import composite, dssim, l1, mask_loss, psnr
from backend.render.strategy import CPUDefaultStrategy, DensifyConfig
from backend.render.trainer import GaussianTrainer, RenderOut, exp_decay, set_lr

from .features import FeatureConfig, extract_features
from .init_points import HullConfig, carve_hull, hull_points, inflated_silhouette
from .model import DS4DModel
from .point_features import PointFeatureSampler
from .presets import DS4DConfig, StageDensify
from .view_loss import ViewLoss, make_view_loss, multiscale_dssim  # noqa: F401 (re-exported)
from .views import ViewSource

Progress = Callable[[str, float, str], None]
#: ``on_preview(stage, step, times, frames)``: frames are Gaussians at ``times`` (detached).
PreviewHook = Callable[[str, int, list[float], list[Gaussians]], None]


@dataclass
class Scene:
    """Training data: rgba [V, T, H, W, 4] in [0, 1], viewmats [V, 4, 4], Ks [V, 3, 3], frame
    times [T] in [0, 1], view names (view 0 the input) and which views are real."""

    rgba: Tensor
    viewmats: Tensor
    Ks: Tensor
    times: Tensor
    names: list[str]
    real: list[bool]

    @classmethod
    def from_source(cls, source: ViewSource) -> Scene:
        rgba, vms, Ks = source.stacked()
        views = source.views()
        return cls(torch.from_numpy(rgba).float(), torch.from_numpy(vms).float(),
                   torch.from_numpy(Ks).float(), torch.as_tensor(source.times).float(),
                   [v.name for v in views], [v.real for v in views])

    @property
    def mid(self) -> int:
        return self.rgba.shape[1] // 2


@dataclass
class TrainResult:
    model: DS4DModel
    steps: int
    seconds: float
    cancelled_at_step: int | None
    history: list[dict] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase, summed
    feature_kind: str = ""
    stage_timings: dict[str, dict[str, float]] = field(default_factory=dict)  # per stage
    view_loss: str = ""  # "lpips" or "msdssim" (the other views' loss; "" with one view)
    view_loss_why: str = ""


def _strategy(d: StageDensify, scale: float, gen: torch.Generator) -> CPUDefaultStrategy | None:
    if d.stop <= d.start:
        return None
    cfg = DensifyConfig(prune_opa=d.prune_opa, refine_start_iter=d.start,
                        refine_stop_iter=d.stop, refine_every=d.every, reset_every=1 << 30,
                        max_gaussians=d.max_gaussians, grow_top_fraction=d.top_fraction)
    return CPUDefaultStrategy(cfg, scale, generator=gen)


def initial_gaussians(scene: Scene, cfg: DS4DConfig, gen: torch.Generator) -> Gaussians:
    """Inflated silhouette of the input view (one view) or a voted visual hull (several), on
    the middle frame."""
    mid = scene.mid
    if scene.rgba.shape[0] == 1:
        pts, cols, foot = inflated_silhouette(scene.rgba[0, mid], scene.viewmats[0],
                                              scene.Ks[0], cfg.n_init, generator=gen)
        return Gaussians.from_points(pts, cols, 1.5 * foot, cfg.init_opacity)
    dist = float(scene.viewmats[:, :3, 3].norm(dim=-1).mean())
    bound = dist * 0.5 * scene.rgba.shape[2] / float(scene.Ks[0, 1, 1])
    votes = max(1, scene.rgba.shape[0] // 4)
    hull = carve_hull(scene.rgba[:, mid, ..., 3], scene.viewmats, scene.Ks,
                      HullConfig(bound=bound, resolution=cfg.hull_resolution, min_votes=votes))
    pts, cols = hull_points(hull, scene.rgba[:, mid], scene.viewmats, scene.Ks, cfg.n_init,
                            generator=gen)
    return Gaussians.from_points(pts, cols, hull.voxel, cfg.init_opacity)


def train(
    scene: Scene,
    cfg: DS4DConfig,
    progress: Progress | None = None,
    cancelled: Callable[[], bool] | None = None,
    on_preview: PreviewHook | None = None,
    device: str | torch.device = "cpu",
) -> TrainResult:
    """Train DS4D on ``scene`` (see the module docstring); never raises on cancel."""
    report = progress or (lambda s, f, m: None)
    is_cancelled = cancelled or (lambda: False)
    device = torch.device(device)
    t0 = time.monotonic()
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    V, T, H, W, _ = scene.rgba.shape

    report("features", 0.0, f"frame features of {V} view(s) x {T} frames")
    tf = time.monotonic()
    feats = extract_features([scene.rgba[v] for v in range(V)], FeatureConfig(
        backend=cfg.feature_backend, model=cfg.feature_model, image_size=cfg.feature_image_size,
        descriptor_dim=cfg.descriptor_dim))
    sampler = PointFeatureSampler(feats.maps, scene.times, scene.viewmats, scene.Ks,
                                  [(W, H)] * V, apply_dsfd=cfg.point_features == "dsfd")
    t_features = time.monotonic() - tf
    other: ViewLoss | None = (make_view_loss(cfg.view_loss, cfg.lpips_folder, device)
                              if V > 1 else None)
    report("init", 0.0, "initial points")
    g0 = initial_gaussians(scene, cfg, gen)
    mode = cfg.tssf_mode if cfg.tssf_mode != "auto" else ("da" if V > 1 else "ga")
    if cfg.point_features == "none":
        mode = "none"
    model = DS4DModel.create(g0, sampler, mode, cfg.hexplane, cfg.mlp_width,
                             torch.Generator().manual_seed(cfg.seed + 1))
    scale = scene_scale_from_cameras(scene.viewmats)
    lrs = {"means": cfg.lr_position * scale, "scales": cfg.lr_scales, "quats": cfg.lr_quats,
           "opacities": cfg.lr_opacities, "sh0": cfg.lr_sh0, "shN": cfg.lr_sh0 / 20}
    trainer = GaussianTrainer(g0, lrs, None, device)
    model.to(device)
    rgba_d, vms_d, Ks_d = scene.rgba.to(device), scene.viewmats.to(device), scene.Ks.to(device)
    total = cfg.static_steps + cfg.dynamic_steps
    deform_opt = torch.optim.Adam(model.mlp_parameters(), lr=cfg.lr_deform, eps=1e-15)
    grid_opt = torch.optim.Adam(model.field.grid_parameters(), lr=cfg.lr_grid, eps=1e-15)
    report("init", 1.0, f"{trainer.count} Gaussians, TSSF {mode.upper()}, "
                        f"features: {feats.kind}")

    def losses(out: RenderOut, target: Tensor, bg: Tensor) -> tuple[Tensor, Tensor]:
        gt = composite(target, bg[:, None, None, :])
        main = ((1 - cfg.ssim_lambda) * l1(out.rgb[:1], gt[:1])
                + cfg.ssim_lambda * dssim(out.rgb[:1], gt[:1])
                + cfg.mask_weight * mask_loss(out.alpha[:1], target[:1, ..., 3:]))
        if V > 1:
            main = main + cfg.other_view_weight * (
                other.fn(out.rgb[1:], gt[1:])
                + cfg.mask_weight * mask_loss(out.alpha[1:], target[1:, ..., 3:]))
        return main, gt

    def render_at(g: Gaussians, frame: int) -> RenderOut:
        bg = torch.rand(V, 3, generator=gen).to(device)
        rgb, alpha, info = g.render(vms_d, Ks_d, W, H, backgrounds=bg, tile_size=cfg.tile_size,
                                    backend=cfg.rasterizer)
        return RenderOut(rgb, alpha, info, {"target": rgba_d[:, frame], "bg": bg})

    def loss_of(out: RenderOut, extra: Tensor | None = None) -> tuple[Tensor, dict]:
        value, gt = losses(out, out.extras["target"], out.extras["bg"])
        if extra is not None:
            value = value + extra
        return value, {"psnr": lambda: psnr(out.rgb[:1], gt[:1])}

    def schedule(offset: int) -> Callable[[int], None]:
        def apply(i: int) -> None:
            step = offset + i
            set_lr(trainer.optimizers["means"],
                   exp_decay(cfg.lr_position, cfg.lr_position_final, step, total) * scale)
            if offset:
                j = i
                set_lr(deform_opt, exp_decay(cfg.lr_deform, cfg.lr_deform_final, j,
                                             cfg.dynamic_steps))
                set_lr(grid_opt, exp_decay(cfg.lr_grid, cfg.lr_grid_final, j, cfg.dynamic_steps))
        return apply

    preview_ts = [float(x) for x in torch.linspace(0, 1, max(1, cfg.preview_times))]

    def after(offset: int, stage: str) -> Callable[[int, RenderOut, float], None]:
        def hook(i: int, out: RenderOut, value: float) -> None:
            step = offset + i + 1
            if on_preview and cfg.preview_every and step % cfg.preview_every == 0:
                with torch.no_grad():
                    frames = model.frames(trainer.snapshot(), preview_ts)
                on_preview(stage, step, preview_ts, frames)
        return hook

    def frac(offset: int) -> Callable[[int], float]:
        return lambda i: (offset + i + 1) / max(1, total)

    # ---- static stage ----------------------------------------------------------------------
    trainer.strategy = _strategy(cfg.static_densify, scale, gen)
    s1 = trainer.run(
        cfg.static_steps, lambda i, p: render_at(trainer.gaussians(), scene.mid),
        lambda i, out: loss_of(out), stage="static", schedule=schedule(0), progress=report,
        cancelled=is_cancelled, keep_on_cancel=True, progress_every=cfg.progress_every,
        on_step=after(0, "static"), fraction=frac(0))
    history, timings = list(s1.history), dict(s1.timings)
    stage_timings = {"static": dict(s1.timings)}
    cancelled_at = trainer.step if s1.cancelled else None

    # ---- dynamic stage ---------------------------------------------------------------------
    if cancelled_at is None and cfg.dynamic_steps > 0:
        trainer.strategy = _strategy(cfg.dynamic_densify, scale, gen)
        model.train()

        def render_dynamic(i: int, params: dict) -> RenderOut:
            k = int(torch.randint(0, T, (1,), generator=gen))
            t = float(scene.times[k])
            moved = model.deform(trainer.gaussians(), t)
            out = render_at(moved, k)
            out.extras["frame"] = k
            return out

        def loss_dynamic(i: int, out: RenderOut) -> tuple[Tensor, dict]:
            hp = model.field.hexplane
            reg = cfg.tv_weight * hp.plane_tv() + cfg.smooth_weight * hp.time_smoothness()
            return loss_of(out, reg)

        s2 = trainer.run(
            cfg.dynamic_steps, render_dynamic, loss_dynamic, stage="dynamic",
            extra_optimizers={"deformation": deform_opt, "grid": grid_opt},
            schedule=schedule(cfg.static_steps), progress=report, cancelled=is_cancelled,
            keep_on_cancel=True, progress_every=cfg.progress_every,
            on_step=after(cfg.static_steps, "dynamic"), fraction=frac(cfg.static_steps))
        history += [{**h, "step": h["step"] + cfg.static_steps} for h in s2.history]
        timings = {k: timings.get(k, 0.0) + v for k, v in s2.timings.items()}
        stage_timings["dynamic"] = dict(s2.timings)
        if s2.cancelled:
            cancelled_at = trainer.step
    timings["features"] = t_features
    model.gaussians = trainer.snapshot()
    model.to("cpu")
    model.eval()
    return TrainResult(model, trainer.step, time.monotonic() - t0, cancelled_at, history,
                       timings, feats.kind, stage_timings,
                       other.name if other else "", other.why if other else "")
