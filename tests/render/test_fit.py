"""Static fitting: held-out PSNR on Blender-rendered views, hooks, densification, losses."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from backend.jobs.api import JobCancelled
from backend.render.fit import FitConfig, evaluate, fit_static, scene_scale_from_cameras
from backend.render.gaussians import Gaussians, visual_hull_points
from backend.render.losses import dssim, psnr, ssim
from backend.render.strategy import CPUDefaultStrategy, DensifyConfig

DATA = Path(__file__).parent / "data" / "views48.npz"


def _views():
    d = np.load(DATA)
    test = torch.from_numpy(d["is_test"])
    imgs = torch.from_numpy(d["images"])
    return imgs, torch.from_numpy(d["viewmats"]), torch.from_numpy(d["Ks"]), test


def test_stored_views_are_what_the_script_promises():
    d = np.load(DATA)
    assert DATA.stat().st_size < 1 << 20
    assert d["images"].dtype == np.uint8 and d["images"].shape == (16, 48, 48, 4)
    assert int(d["samples"]) >= 64 and int((~d["is_test"]).sum()) == 12
    a = d["images"][..., 3]
    assert (a == 0).mean() > 0.3 and (a == 255).mean() > 0.2  # transparent film, opaque object
    rgb = d["images"][..., :3][a == 255].astype(float)
    assert rgb.std(axis=0).min() > 10, "the object should be coloured and textured"


# Measured with this configuration (seed 1, one thread, 300 steps; torch 2.13.0 CPU, x86_64,
# three runs on the development VM): held-out PSNR 33.68, 33.78, 33.68 dB, alpha PSNR 28.73,
# 28.78, 28.73 dB, 7043, 7041, 7043 Gaussians. Runs differ slightly even on one machine (float32
# reductions in the BLAS need not sum in the same order run to run, and densification amplifies
# that), so the floors sit ~0.35 dB (3.5x that spread) under the lowest run. A rasterizer whose
# mean gradient drops one chain-rule term still fits to 33.04 / 28.00 dB: these floors catch it.
PSNR_FLOOR = 33.3
ALPHA_FLOOR = 28.4


@pytest.mark.slow
@pytest.mark.timeout(1800)  # a ceiling for a hang only: 36 s on an idle core, >300 s at load 15
def test_fit_reaches_the_measured_psnr_on_held_out_views():
    """How well, not how fast (bench/fit.py times the same fit): no time budget, no clock."""
    imgs, vms, Ks, test = _views()
    cfg = FitConfig(iterations=300, num_threads=1, seed=1)
    g, stats = fit_static(imgs[~test], vms[~test], Ks[~test], config=cfg)
    held_out = evaluate(g, imgs[test], vms[test], Ks[test])
    train = evaluate(g, imgs[~test], vms[~test], Ks[~test])
    print(f"fit: {stats.iterations} steps, {g.count} Gaussians; "
          f"held-out {held_out}; train PSNR {train['psnr']:.2f}")
    assert stats.iterations == 300 and not stats.stopped_by_budget
    assert held_out["psnr"] >= PSNR_FLOOR, (held_out, stats.iterations)
    assert held_out["psnr_alpha"] >= ALPHA_FLOOR, held_out


def test_progress_and_cancel_hooks():
    imgs, vms, Ks, test = _views()
    seen: list[tuple[str, float, str]] = []
    cfg = FitConfig(iterations=6, n_init=300, hull_resolution=24, progress_every=1, num_threads=1)
    g, stats = fit_static(imgs[:4], vms[:4], Ks[:4], config=cfg,
                          progress=lambda s, f, m: seen.append((s, f, m)))
    stages = [s for s, _, _ in seen]
    assert stages[0] == "init" and stages[-1] == "done" and "fit" in stages
    fracs = [f for s, f, _ in seen if s == "fit"]
    assert fracs == sorted(fracs) and math.isclose(fracs[-1], 1.0)
    assert stats.iterations == 6 and g.count == 300 and not stats.stopped_by_budget

    calls = {"n": 0}

    def cancelled() -> bool:
        calls["n"] += 1
        return calls["n"] > 3

    with pytest.raises(JobCancelled):
        fit_static(imgs[:4], vms[:4], Ks[:4], config=cfg, cancelled=cancelled)
    assert calls["n"] == 4


def test_time_budget_stops_cleanly(monkeypatch):
    """The budget check stops the loop between steps and returns a usable model.

    The fit's clock is replaced by one that advances 0.1 s per reading, so the budget expires
    after the same number of steps on any machine, however loaded: the test waits on the event
    (the budget running out), never on the real clock.
    """
    import backend.render.fit as fit_mod

    class FakeClock:
        t = 0.0

        def monotonic(self) -> float:
            self.t += 0.1
            return self.t

    import backend.render.trainer as trainer_mod

    clock = FakeClock()
    monkeypatch.setattr(fit_mod, "time", clock)
    monkeypatch.setattr(trainer_mod, "time", clock)  # the shared loop reads the clock
    imgs, vms, Ks, _ = _views()
    cfg = FitConfig(iterations=10_000, n_init=300, hull_resolution=24, time_budget_s=1.0,
                    num_threads=1)
    g, stats = fit_static(imgs[:4], vms[:4], Ks[:4], config=cfg)
    assert stats.stopped_by_budget and 0 < stats.iterations < 20, stats.iterations
    assert stats.seconds > 1.0 and g.count == 300
    assert all(torch.isfinite(t).all() for t in (g.means, g.quats, g.log_scales))


@pytest.mark.parametrize("init", ["random", "points"])
def test_other_initialisations_run(init, seed):
    imgs, vms, Ks, _ = _views()
    g = torch.Generator().manual_seed(seed)
    pts = torch.rand(400, 3, generator=g) - 0.5 if init == "points" else None
    cfg = FitConfig(iterations=3, init=init, n_init=400, sh_degree=1, sh_degree_interval=1,
                    num_threads=1)
    out, stats = fit_static(imgs[:3], vms[:3], Ks[:3], init_points=pts, config=cfg)
    assert out.count == 400 and out.sh_degree == 1 and math.isfinite(stats.final_loss)
    with pytest.raises(ValueError, match="RGBA"):
        fit_static(imgs[:3, ..., :3], vms[:3], Ks[:3], config=cfg)


def test_visual_hull_points_lie_inside_every_mask():
    imgs, vms, Ks, test = _views()
    rgba = imgs.float() / 255
    scale = scene_scale_from_cameras(vms) / 1.1
    pts, cols, voxel = visual_hull_points(rgba, vms, Ks, scale * 0.5, 2000, resolution=40)
    assert pts.shape == (2000, 3) and cols.shape == (2000, 3) and voxel > 0
    uv = torch.einsum("vij,pj->vpi", vms[:, :3, :3], pts) + vms[:, None, :3, 3]
    px = torch.einsum("vij,vpj->vpi", Ks[:, :2], uv) / uv[..., 2:]
    x, y = px[..., 0].long().clamp(0, 47), px[..., 1].long().clamp(0, 47)
    alpha = rgba[torch.arange(16)[:, None], y, x, 3]
    assert float((alpha > 0.2).float().mean()) > 0.95  # jitter may step off the edge slightly


def _toy_params(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    params = {
        "means": torch.randn(n, 3, generator=g),
        "scales": torch.log(torch.rand(n, 3, generator=g) * 0.05 + 0.001),
        "quats": torch.randn(n, 4, generator=g),
        "opacities": torch.randn(n, generator=g),
        "sh0": torch.randn(n, 1, 3, generator=g),
        "shN": torch.zeros(n, 0, 3),
    }
    params = {k: nn.Parameter(v) for k, v in params.items()}
    opts = {k: torch.optim.Adam([p], lr=1e-3) for k, p in params.items()}
    for p in params.values():  # give every optimizer some state
        p.grad = torch.ones_like(p)
    for o in opts.values():
        o.step()
    return params, opts


def test_densification_grows_splits_prunes_and_keeps_optimizer_state_aligned(seed):
    n = 200
    params, opts = _toy_params(n, seed)
    cfg = DensifyConfig(grow_grad2d=0.01, grow_scale3d=0.02, refine_start_iter=0,
                        refine_every=1, reset_every=1000, prune_opa=0.05)
    strat = CPUDefaultStrategy(cfg, scene_scale=1.0, generator=torch.Generator().manual_seed(1))
    means2d = torch.zeros(2, n, 2, requires_grad=True)
    info = {"means2d": means2d, "width": 48, "height": 48, "n_cameras": 2,
            "radii": torch.ones(2, n, 2, dtype=torch.int32)}
    strat.step_pre_backward(info)
    (means2d * torch.rand(2, n, 2) * 0.01).sum().backward()  # some Gaussians get large grads
    with torch.no_grad():
        params["opacities"][:20] = -10.0  # certainly pruned
    big = torch.exp(params["scales"]).max(-1).values > 0.02
    grads = (means2d.grad * torch.tensor([24.0 * 2, 24.0 * 2])).norm(dim=-1).sum(0) / 2
    high = grads > 0.01
    strat.step_post_backward(params, opts, step=1, info=info)
    log = strat.log[-1]
    assert log["duplicated"] == int((high & ~big).sum()) and log["split"] == int((high & big).sum())
    expected = n + log["duplicated"] + log["split"] - log["pruned"]
    assert params["means"].shape[0] == expected == log["count"] and log["pruned"] >= 20
    for k, p in params.items():
        assert p.shape[0] == expected, k
        st = opts[k].state[p]
        assert st["exp_avg"].shape == p.shape and st["exp_avg_sq"].shape == p.shape, k
        assert opts[k].param_groups[0]["params"][0] is p
    assert torch.sigmoid(params["opacities"]).min() >= 0.05


def test_split_samples_inside_the_parent_and_shrinks_it():
    params, opts = _toy_params(1, 0)
    with torch.no_grad():
        params["scales"][:] = math.log(0.5)
        params["opacities"][:] = 3.0
    strat = CPUDefaultStrategy(DensifyConfig(), generator=torch.Generator().manual_seed(0))
    mean0 = params["means"].detach().clone()
    strat._split(params, opts, torch.tensor([True]))
    assert params["means"].shape == (2, 3)
    assert torch.allclose(torch.exp(params["scales"]), torch.full((2, 3), 0.5 / 1.6))
    assert float((params["means"].detach() - mean0).norm(dim=-1).max()) < 0.5 * 5


def test_losses():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(2, 20, 24, 3, generator=g)
    b = (a + 0.1 * torch.randn(2, 20, 24, 3, generator=g)).clamp(0, 1)
    assert math.isclose(float(ssim(a, a)), 1.0, rel_tol=1e-5)
    assert 0 < float(dssim(a, b)) < 1 and math.isclose(float(ssim(a, b)), float(ssim(b, a)))
    assert math.isclose(psnr(torch.zeros(4), torch.full((4,), 0.1)), 20.0, rel_tol=1e-6)
    with pytest.raises(ValueError):
        ssim(a, b[..., :2])


def test_gaussians_to_gsply_frame(tmp_path):
    from shared import gsply

    g = Gaussians.from_points(torch.rand(10, 3), torch.rand(10, 3), 0.05, 0.3, sh_degree=1)
    frame = g.to_frame()
    assert frame.count == 10 and frame.sh_degree == 1
    path = gsply.write_gsply(tmp_path / "g.ply", frame)
    back = gsply.read_gsply(path)
    assert np.allclose(back.means, g.means.numpy()) and np.allclose(back.rgb, frame.rgb)
