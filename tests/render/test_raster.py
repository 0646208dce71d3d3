"""The CPU rasterizer against an independent dense float64 reference, plus edge cases.

Seeded tests run the fixed seeds of ``make test`` (tests/render/conftest.py); the seed is in the
test id, and ``ANIM4D_SEED=<seed> pytest tests/render/test_raster.py`` replays one.

How float32 is compared with float64. The image is discontinuous where a contribution crosses the
alpha cut-off (1/255), the alpha clamp (0.999) or the transmittance stop (1e-4): a Gaussian that
sits on such an edge in float64 may sit on the other side in float32 and flip a pixel by up to
~4e-3. As gsplat's own tests do, :func:`~backend.render.reference.near_edges` finds the pixels
where any contribution lies within a small band of an edge in the reference; only those are left
out (and they must be few), every other pixel is compared by its largest error, and gradients are
those of a loss that ignores the left-out pixels, compared Gaussian by Gaussian.
"""

from __future__ import annotations

import math
import sys

import pytest
import torch
from render_helpers import PARAMS, grad_err, leaf_params, max_err, random_scene

from backend.render import RasterizerUnavailable, rasterize
from backend.render import dispatch as dispatch_mod
from backend.render.reference import composite_literal, near_edges, project_dense, render_dense
from backend.render.sh import rgb_to_sh0, sh_basis, sh_to_rgb

# Float32 path vs float64 reference, pixels away from the edges. Measured on seeds 0-39 (random,
# opaque and antialiased scenes): worst case and, in brackets, the median of each seed's worst.
FWD_TOL = 1e-5  # largest error of any pixel, colour or alpha: 2.2e-6 (1e-6)
GRAD_TOL = 3e-4  # render_helpers.grad_err, worst Gaussian of any parameter: 7.1e-5 (2e-5)
EDGE_FRACTION = 0.05  # pixels left out: opaque scene 3.6e-2 (2.4e-2), others 1.3e-3 (3e-4)
ED_TOL = 2e-6  # expected depth x alpha, in units of the largest depth (see test_expected_depth)


def _reference(scene, params=None, **kw):
    p = params or {k: scene[k] for k in PARAMS}
    return render_dense(
        p["means"], p["quats"], p["scales"], p["opacities"], p["colors"], scene["viewmats"],
        scene["Ks"], scene["width"], scene["height"], **kw,
    )


def _ours(scene, params, dtype=torch.float32, **kw):
    return rasterize(
        params["means"], params["quats"], params["scales"], params["opacities"],
        params["colors"], scene["viewmats"].to(dtype), scene["Ks"].to(dtype), scene["width"],
        scene["height"], **kw,
    )


def _smooth_pixels(scene, seed, antialiased=False):
    """[C, H, W] bool: pixels away from every edge in the float64 reference (few are not)."""
    edge = near_edges(
        scene["means"], scene["quats"], scene["scales"], scene["opacities"], scene["viewmats"],
        scene["Ks"], scene["width"], scene["height"], antialiased=antialiased,
    )
    frac = float(edge.double().mean())
    assert frac <= EDGE_FRACTION, f"{frac:.1%} of the pixels sit near an edge, seed={seed}"
    return ~edge


def _compare_fwd_and_grads(scene, seed, bg=True, antialiased=False, device="cpu"):
    """Forward (worst pixel) and per-Gaussian gradients of a random linear loss vs float64.

    ``device="cuda"`` renders ours on the GPU (through gsplat, as ``rasterize`` dispatches).
    """
    keep = _smooth_pixels(scene, seed, antialiased)
    bgs = scene["backgrounds"] if bg else None
    ref_p = leaf_params(scene, torch.float64)
    ref_c, ref_a = _reference(scene, ref_p, backgrounds=bgs, antialiased=antialiased)
    g = torch.Generator().manual_seed(seed ^ 0x5EED)
    mask = keep[..., None].double()  # the loss ignores pixels near an edge
    wc = torch.randn(ref_c.shape, generator=g, dtype=torch.float64) * mask
    wa = torch.randn(ref_a.shape, generator=g, dtype=torch.float64) * mask
    ((ref_c * wc).sum() + (ref_a * wa).sum()).backward()

    ours_p = {k: v.to(device).detach().requires_grad_(True) for k, v in leaf_params(scene).items()}
    on_dev = {**scene, "viewmats": scene["viewmats"].to(device), "Ks": scene["Ks"].to(device)}
    c, a, meta = _ours(
        on_dev, ours_p, backgrounds=None if bgs is None else bgs.float().to(device),
        rasterize_mode="antialiased" if antialiased else "classic",
    )
    ((c * wc.float().to(device)).sum() + (a * wa.float().to(device)).sum()).backward()
    c, a = c.cpu(), a.cpu()
    msg = f"seed={seed}"
    assert c.shape == ref_c.shape and a.shape == ref_a.shape, msg
    assert max_err(c, ref_c, keep) < FWD_TOL, f"colour {max_err(c, ref_c, keep):.2e} {msg}"
    assert max_err(a, ref_a, keep) < FWD_TOL, f"alpha {max_err(a, ref_a, keep):.2e} {msg}"
    for k in PARAMS:
        err = grad_err(ours_p[k].grad.cpu(), ref_p[k].grad)
        assert err < GRAD_TOL, f"grad {k}: {err:.2e} {msg}"
    return c, a, meta


def test_reference_follows_the_kernel_rules(seed):
    """The dense reference agrees with a literal per-pixel transcription of gsplat's loop."""
    scene = random_scene(seed, n=60, cameras=1, width=20, height=16, opacity=(0.3, 1.0))
    c, a = _reference(scene)
    m2, conic, depth, ok, _ = project_dense(
        scene["means"], scene["quats"], scene["scales"], scene["viewmats"][0], scene["Ks"][0],
        20, 16, 0.3, 0.01, 1e10,
    )
    order = [i for i in torch.argsort(depth).tolist() if ok[i]]
    conics = [[float(conic[i, 0, 0]), float(conic[i, 0, 1]), float(conic[i, 1, 1])] for i in order]
    for y, x in [(0, 0), (5, 7), (8, 10), (15, 19), (11, 3)]:
        want_c, want_a = composite_literal(
            m2[order].tolist(), conics, scene["opacities"][order].tolist(),
            scene["colors"][order].tolist(), x + 0.5, y + 0.5,
        )
        assert torch.allclose(c[0, y, x], torch.tensor(want_c, dtype=torch.float64)), seed
        assert abs(float(a[0, y, x, 0]) - want_a) < 1e-12, seed


def test_forward_and_gradients_match_reference(seed):
    scene = random_scene(seed)
    c, a, meta = _compare_fwd_and_grads(scene, seed)
    assert meta["n_isects"] > 0 and float(a.detach().max()) > 0.5, f"renders nothing, seed={seed}"


def test_opaque_scene_exercises_early_stop(seed):
    """Many opaque Gaussians: most pixels hit T <= 1e-4 and stop, which must match exactly."""
    scene = random_scene(seed, n=500, opacity=(0.6, 0.99), log_scale=(-1.8, 0.3), spread=0.4)
    c, a, _ = _compare_fwd_and_grads(scene, seed)
    assert float((a > 0.9998).float().mean()) > 0.2, f"too few saturated pixels, seed={seed}"


def test_background_gradient(seed):
    scene = random_scene(seed, n=150)
    keep = _smooth_pixels(scene, seed)
    bg64 = scene["backgrounds"].clone().requires_grad_(True)
    ref_c, _ = _reference(scene, backgrounds=bg64)
    w = torch.randn(ref_c.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    w = w * keep[..., None]
    (ref_c * w).sum().backward()
    bg32 = scene["backgrounds"].float().requires_grad_(True)
    c, _, _ = _ours(scene, leaf_params(scene), backgrounds=bg32)
    (c * w.float()).sum().backward()
    assert grad_err(bg32.grad, bg64.grad) < GRAD_TOL, seed  # rows: cameras


def test_no_background_and_many_channels(seed):
    scene = random_scene(seed, n=150, channels=5)
    _compare_fwd_and_grads(scene, seed, bg=False)


def test_antialiased_mode(seed):
    scene = random_scene(seed, n=200)
    _compare_fwd_and_grads(scene, seed, antialiased=True)


def test_expected_depth(seed):
    scene = random_scene(seed, n=200)
    keep = _smooth_pixels(scene, seed)
    p = leaf_params(scene)
    c, a, meta = _ours(scene, p, render_mode="RGB+ED", backgrounds=scene["backgrounds"].float())
    # Reference: depth as a fourth colour channel, per camera.
    vm = scene["viewmats"]
    depth = (scene["means"] @ vm[:, :3, :3].transpose(1, 2))[..., 2] + vm[:, None, :3, 3][..., 2]
    cols = torch.cat([scene["colors"].expand(len(vm), -1, -1), depth[..., None]], dim=-1)
    bgs = torch.cat([scene["backgrounds"], torch.zeros(len(vm), 1, dtype=torch.float64)], -1)
    ref_c, ref_a = render_dense(
        scene["means"], scene["quats"], scene["scales"], scene["opacities"], cols, vm,
        scene["Ks"], scene["width"], scene["height"], backgrounds=bgs,
    )
    assert max_err(c[..., :3], ref_c[..., :3], keep) < FWD_TOL, seed
    # ED = accumulated depth / alpha: its error grows like 1 / alpha where a pixel is nearly
    # empty, so compare ED * alpha_ref (the accumulated depth, conditioned like the colours) in
    # units of the largest depth. Measured on seeds 0-39: worst 4.2e-7 (median 2.5e-7).
    zmax = float(depth.abs().max())
    ed_acc = c[..., 3:].detach().double() * ref_a
    assert max_err(ed_acc, ref_c[..., 3:], keep) < ED_TOL * zmax, seed
    empty = (ref_a[..., 0] == 0) & keep
    assert (c[..., 3][empty] == 0).all(), seed  # empty pixels: depth 0, not NaN
    d, _, _ = _ours(scene, p, render_mode="ED")
    assert max_err(d, c[..., 3:]) < ED_TOL * zmax, seed  # same pixels, 3 fewer channels: 2.4e-7


def test_tile_size_and_block_budget_do_not_change_results(seed):
    """Exact invariance in float64 (in float32 a pair at the 1/255 threshold may flip)."""
    scene = random_scene(seed, n=250)
    p = leaf_params(scene, torch.float64)
    bg = scene["backgrounds"]
    kw = {"dtype": torch.float64, "backgrounds": bg}
    base, base_a, _ = _ours(scene, p, tile_size=16, **kw)
    base.sum().backward()
    g0 = {k: p[k].grad.clone() for k in PARAMS}
    for ts, be in [(4, 1 << 20), (8, 3000), (16, 600), (5, 1 << 14)]:
        for k in PARAMS:
            p[k].grad = None
        c, a, _ = _ours(scene, p, tile_size=ts, block_elems=be, **kw)
        c.sum().backward()
        assert max_err(c, base) < 1e-12 and max_err(a, base_a) < 1e-12, (seed, ts, be)
        for k in PARAMS:
            assert grad_err(p[k].grad, g0[k]) < 1e-10, (seed, ts, be, k)


def test_batched_cameras_equal_one_by_one(seed):
    """Three cameras at once render what each renders alone (catches cross-camera indexing).

    Not bit for bit: with three times the tiles the compositing blocks are cut differently, so
    float32 rounding differs (measured up to 1.3e-6) and a pixel near an edge may flip (seed
    4254986196: one pixel 1.2e-3 in alpha, near the T = 1e-4 stop). Both results are within
    FWD_TOL of float64 away from the edges, so they are compared there, by the worst pixel.
    """
    scene = random_scene(seed, n=200, cameras=3)
    keep = _smooth_pixels(scene, seed)
    p = leaf_params(scene)
    c, a, _ = _ours(scene, p, backgrounds=scene["backgrounds"].float())
    for i in range(3):
        ci, ai, _ = rasterize(
            p["means"], p["quats"], p["scales"], p["opacities"], p["colors"],
            scene["viewmats"][i : i + 1].float(), scene["Ks"][i : i + 1].float(),
            scene["width"], scene["height"], backgrounds=scene["backgrounds"][i : i + 1].float(),
        )
        k = keep[i : i + 1]
        assert max_err(ci, c[i : i + 1], k) < FWD_TOL, (seed, i, max_err(ci, c[i : i + 1], k))
        assert max_err(ai, a[i : i + 1], k) < FWD_TOL, (seed, i, max_err(ai, a[i : i + 1], k))


def test_float64_path_is_exact(seed):
    scene = random_scene(seed, n=120)
    p = leaf_params(scene, torch.float64)
    c, a, _ = _ours(scene, p, dtype=torch.float64, backgrounds=scene["backgrounds"])
    ref_c, ref_a = _reference(scene, backgrounds=scene["backgrounds"])
    assert max_err(c, ref_c) < 1e-12 and max_err(a, ref_a) < 1e-12, seed


# -- edge cases ---------------------------------------------------------------------------------


def test_gaussians_behind_the_camera_or_outside_the_image(seed):
    scene = random_scene(seed, n=200)
    vm = scene["viewmats"][0]
    R, t = vm[:3, :3], vm[:3, 3]
    cam_center = -R.T @ t
    forward = R[2]
    right = R[0]
    m = scene["means"].clone()
    m[:50] = cam_center - (1.0 + torch.rand(50, 1, dtype=torch.float64)) * forward  # behind
    m[50:60] = cam_center + 0.001 * forward + 0.01 * right  # in front of the near plane
    m[60:100] = cam_center + 2.0 * forward + 30.0 * right  # far outside the image
    scene["means"] = m
    c, a, meta = _compare_fwd_and_grads(scene, seed)
    radii = meta["radii"][0]
    assert (radii[:100] == 0).all(), f"culled Gaussians were rendered, seed={seed}"


def test_only_invisible_gaussians_give_background(seed):
    scene = random_scene(seed, n=30, cameras=1)
    vm = scene["viewmats"][0]
    cam_center = -vm[:3, :3].T @ vm[:3, 3]
    scene["means"] = cam_center - 2.0 * vm[2, :3] + 0.1 * torch.randn(30, 3, dtype=torch.float64)
    p = leaf_params(scene)
    c, a, _ = _ours(scene, p, backgrounds=scene["backgrounds"].float())
    assert torch.allclose(c, scene["backgrounds"].float()[:, None, None, :].expand_as(c))
    assert (a == 0).all()
    c.sum().backward()
    for k in PARAMS:
        assert p[k].grad is not None and torch.count_nonzero(p[k].grad) == 0, k


def test_degenerate_scales(seed):
    scene = random_scene(seed, n=200)
    s = scene["scales"].clone()
    s[:40, 0] = 0.0  # flat
    s[40:60] = 0.0  # a point: only the eps2d blur remains
    s[60:70, 1:] = 0.0  # a needle
    scene["scales"] = s
    _compare_fwd_and_grads(scene, seed)


def test_one_gaussian(seed):
    scene = random_scene(seed, n=1, cameras=2, opacity=(0.5, 0.9), log_scale=(-0.7, 0.1))
    scene["means"] = torch.zeros(1, 3, dtype=torch.float64)  # at the look-at target
    c, a, _ = _compare_fwd_and_grads(scene, seed)
    assert float(a.detach().max()) > 0.3, seed


def test_zero_gaussians(seed):
    scene = random_scene(seed, n=0, cameras=2)
    p = leaf_params(scene)
    c, a, meta = _ours(scene, p, backgrounds=scene["backgrounds"].float())
    assert c.shape == (2, scene["height"], scene["width"], 3) and (a == 0).all()
    assert torch.allclose(c, scene["backgrounds"].float()[:, None, None, :].expand_as(c))
    c.sum().backward()  # gradients of empty parameters must not fail
    assert p["means"].grad is None or p["means"].grad.shape == (0, 3)
    assert meta["n_isects"] == 0


# -- SH ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_sh_colours(seed, degree):
    scene = random_scene(seed, n=150)
    g = torch.Generator().manual_seed(seed)
    K = (degree + 1) ** 2
    coeffs = 0.3 * torch.randn(150, 16, 3, generator=g)
    coeffs[:, 0] = rgb_to_sh0(torch.rand(150, 3, generator=g))
    p = leaf_params(scene)
    c, a, _ = rasterize(
        p["means"], p["quats"], p["scales"], p["opacities"], coeffs, scene["viewmats"].float(),
        scene["Ks"].float(), scene["width"], scene["height"], sh_degree=degree,
    )
    # Same thing with colours evaluated up front (camera centre from the inverse view matrix).
    vm = scene["viewmats"].float()
    centres = torch.inverse(vm)[:, :3, 3]
    dirs = p["means"].detach()[None] - centres[:, None]
    cols = sh_to_rgb(degree, dirs, coeffs[None, :, :K].expand(len(vm), -1, -1, -1))
    c2, _, _ = rasterize(
        p["means"], p["quats"], p["scales"], p["opacities"], cols, vm, scene["Ks"].float(),
        scene["width"], scene["height"],
    )
    assert max_err(c, c2) < 1e-6, seed


def test_sh_basis_is_orthonormal():
    """Monte Carlo check of the basis itself: integral of Y_i Y_j over the sphere = delta_ij."""
    g = torch.Generator().manual_seed(0)
    d = torch.randn(400_000, 3, generator=g, dtype=torch.float64)
    Y = sh_basis(3, d)
    gram = (Y.T @ Y) * (4 * math.pi / d.shape[0])
    assert torch.allclose(gram, torch.eye(16, dtype=torch.float64), atol=0.02)


def test_sh_matches_gsplat_torch_impl(seed):
    ti = pytest.importorskip(
        "gsplat.cuda._torch_impl", reason="cross-check needs gsplat (pip install -e '.[cuda]')")
    g = torch.Generator().manual_seed(seed)
    dirs = torch.randn(500, 3, generator=g, dtype=torch.float64)
    coeffs = torch.randn(500, 16, 3, generator=g, dtype=torch.float64)
    for deg in range(4):
        ours = sh_to_rgb(deg, dirs, coeffs) - 0.5
        theirs = ti._spherical_harmonics(deg, dirs, coeffs)
        assert torch.allclose(ours.clamp_min(-0.5), theirs.clamp_min(-0.5), atol=1e-12), deg


# -- against gsplat's own pure-torch pieces ---------------------------------------------------


def test_projection_matches_gsplat_torch_impl(seed):
    ti = pytest.importorskip(
        "gsplat.cuda._torch_impl", reason="cross-check needs gsplat (pip install -e '.[cuda]')")
    from backend.render.project import project_gaussians

    scene = random_scene(seed, n=300)
    s = {k: v.float() for k, v in scene.items() if torch.is_tensor(v)}
    ours = project_gaussians(
        s["means"], s["quats"], s["scales"], torch.ones(300), s["viewmats"], s["Ks"],
        scene["width"], scene["height"],
    )
    covars, _ = ti._quat_scale_to_covar_preci(s["quats"], s["scales"], compute_preci=False)
    radii, m2, depths, conics, _ = ti._fully_fused_projection(
        s["means"], covars, s["viewmats"], s["Ks"], scene["width"], scene["height"]
    )
    vis = ours.visible & (radii > 0).all(-1)
    assert vis.sum() > 50, seed
    assert torch.allclose(ours.means2d[vis], m2[vis], rtol=1e-5, atol=1e-3), seed
    assert torch.allclose(ours.conics[vis], conics[vis], rtol=1e-4, atol=1e-6), seed
    assert torch.allclose(ours.depths, depths), seed
    # gsplat's torch version uses 3.33 sigma; ours, like its CUDA kernel, sqrt(2 ln 255) for o = 1.
    assert (ours.radii[vis] <= radii[vis]).all() and (ours.radii[vis] >= radii[vis] - 1).all()


def test_tile_intersections_match_gsplat_torch_impl(seed):
    ti = pytest.importorskip(
        "gsplat.cuda._torch_impl", reason="cross-check needs gsplat (pip install -e '.[cuda]')")
    from backend.render.project import project_gaussians
    from backend.render.tiles import intersect_tiles

    scene = random_scene(seed, n=60, cameras=2)
    s = {k: v.float() for k, v in scene.items() if torch.is_tensor(v)}
    proj = project_gaussians(
        s["means"], s["quats"], s["scales"], s["opacities"], s["viewmats"], s["Ks"],
        scene["width"], scene["height"],
    )
    tw, th = math.ceil(scene["width"] / 8), math.ceil(scene["height"] / 8)
    ours = intersect_tiles(proj.means2d, proj.radii, proj.depths, 8, tw, th)
    per_gauss, isect_ids, flatten_ids = ti._isect_tiles(
        proj.means2d, proj.radii, proj.depths, 8, tw, th
    )
    n_bits = (tw * th).bit_length()
    hi = isect_ids >> 32
    theirs_tiles = (hi >> n_bits) * (tw * th) + (hi & ((1 << n_bits) - 1))
    assert torch.equal(ours.tile_ids, theirs_tiles), seed
    assert torch.equal(ours.gauss_ids, flatten_ids.long()), seed
    assert torch.equal(ours.tiles_per_gauss, per_gauss.long()), seed


# -- dispatch -------------------------------------------------------------------------------


def test_bad_arguments_are_explained():
    scene = random_scene(1, n=10, cameras=1)
    p = leaf_params(scene)
    with pytest.raises(ValueError, match="colors"):
        rasterize(p["means"], p["quats"], p["scales"], p["opacities"], p["colors"][:5],
                  scene["viewmats"].float(), scene["Ks"].float(), 8, 8)
    with pytest.raises(ValueError, match="render_mode"):
        _ours(scene, p, render_mode="RGBA")
    with pytest.raises(ValueError, match="only gsplat"):
        _ours(scene, p, packed=False)


def test_cuda_without_gsplat_is_a_clear_error(monkeypatch):
    """gsplat missing (an import that fails, as on a machine without it): the error says so.

    ``sys.modules["gsplat"] = None`` makes ``from gsplat import ...`` raise ImportError whether or
    not gsplat is installed, so the real import path of the dispatch runs; the check for gsplat
    comes before the one for CUDA tensors, so CPU tensors reach it too.
    """
    monkeypatch.setitem(sys.modules, "gsplat", None)
    dispatch_mod._gsplat_rasterization.cache_clear()
    try:
        scene = random_scene(2, n=10, cameras=1)
        p = leaf_params(scene)
        with pytest.raises(RasterizerUnavailable) as info:
            _ours(scene, p, backend="gsplat")
        msg = str(info.value)
        assert "needs the gsplat package" in msg and "pip install -e '.[cuda]'" in msg, msg
        assert "backend='torch'" in msg, msg  # and what to do instead
        assert not dispatch_mod.gsplat_available()
    finally:
        dispatch_mod._gsplat_rasterization.cache_clear()
    assert RasterizerUnavailable.code == "rasterizer_unavailable"


def test_gsplat_backend_on_cpu_tensors_is_a_clear_error(monkeypatch):
    """With gsplat importable, backend='gsplat' on CPU tensors names the device."""
    monkeypatch.setattr(dispatch_mod, "_gsplat_rasterization", lambda: None)
    scene = random_scene(2, n=10, cameras=1)
    with pytest.raises(RasterizerUnavailable, match="needs CUDA tensors, got means on cpu"):
        _ours(scene, leaf_params(scene), backend="gsplat")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_gsplat_matches_reference(seed):
    """gsplat on the GPU, through our dispatch, against the same float64 reference and limits."""
    pytest.importorskip("gsplat", reason="the CUDA path needs gsplat (pip install -e '.[cuda]')")
    scene = random_scene(seed, n=400, width=64, height=48)
    _, _, meta = _compare_fwd_and_grads(scene, seed, device="cuda")
    assert meta.get("backend") != "torch", "the CUDA tensors did not go to gsplat"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_torch_backend_runs_on_cuda(seed):
    scene = random_scene(seed, n=100)
    keep = _smooth_pixels(scene, seed)
    p = leaf_params(scene)
    c, a, _ = _ours(scene, p)
    pc = {k: v.detach().cuda() for k, v in p.items()}
    cg, ag, _ = rasterize(
        pc["means"], pc["quats"], pc["scales"], pc["opacities"], pc["colors"],
        scene["viewmats"].float().cuda(), scene["Ks"].float().cuda(), scene["width"],
        scene["height"], backend="torch",
    )
    # Same float32 code on another device: only the rounding of a few ops differs.
    assert max_err(cg.cpu(), c, keep) < FWD_TOL and max_err(ag.cpu(), a, keep) < FWD_TOL, seed
