"""DSFD on hand-made features; TSSF sampling, GA weights and DA against GA."""

from __future__ import annotations

import torch

from backend.methods.ds4d.dsfd import decouple, dsfd, dsfd_grid
from backend.methods.ds4d.tssf import TSSF, DAFusion, GAFusion, sample_point_features
from backend.render.cameras import intrinsics_from_fov, orbit_cameras


def test_decouple_equal_parallel_and_orthogonal_tokens():
    r = torch.tensor([[1.0, 2.0, 0.0, -1.0]])
    static, dyn = decouple(r.clone(), r)
    assert torch.equal(static, r) and float(dyn.abs().max()) == 0.0  # equal: no dynamic part
    static, dyn = decouple(-3 * r, r)
    assert torch.allclose(static, -3 * r) and float(dyn.abs().max()) < 1e-6
    ortho = torch.tensor([[2.0, -1.0, 5.0, 0.0]])  # r . ortho = 0
    static, dyn = decouple(ortho, r)
    assert float(static.abs().max()) == 0.0 and torch.equal(dyn, ortho)  # all dynamic
    mixed = 0.5 * r + ortho
    static, dyn = decouple(mixed, r)
    assert torch.allclose(static, 0.5 * r) and torch.allclose(dyn, ortho)
    static, dyn = decouple(ortho, torch.zeros(1, 4))  # no reference direction: all dynamic
    assert float(static.abs().max()) == 0.0 and torch.equal(dyn, ortho)


def test_dsfd_by_hand():
    # One view, 3 frames, 2 tokens, 2 channels. Token 0 is constant (static); token 1 turns.
    f = torch.tensor([
        [[1.0, 0.0], [1.0, 0.0]],
        [[1.0, 0.0], [0.0, 1.0]],  # the middle frame (T // 2 = 1)
        [[1.0, 0.0], [-1.0, 0.0]],
    ])
    out = dsfd(f)
    assert out.shape == (3, 2, 4) and torch.equal(out[..., :2], f)
    assert float(out[:, 0, 2:].abs().max()) == 0.0  # constant token: no dynamic part
    # Token 1, reference mid = (0, 1), mean = (0, 1/3): both references point along +y.
    # Frame 0: f = (1, 0) is orthogonal to both -> dynamic (1, 0) for each -> average (1, 0).
    assert torch.allclose(out[0, 1, 2:], torch.tensor([1.0, 0.0]))
    # Frame 1: f = (0, 1) equals mid, parallel to mean -> dynamic 0.
    assert float(out[1, 1, 2:].abs().max()) < 1e-6
    assert torch.allclose(out[2, 1, 2:], torch.tensor([-1.0, 0.0]))
    # Two different references: token (1, 1) at frame 0; mid (1, 0); mean (2, 1).
    # vs mid: static (1, 0), dynamic (0, 1); vs mean: static 3/5 (2, 1), dynamic (-0.2, 0.4);
    # average of the dynamic parts (-0.1, 0.7).
    g = torch.tensor([[[1.0, 1.0]], [[1.0, 0.0]], [[4.0, 2.0]]])
    out = dsfd(g)
    assert torch.allclose(out[0, 0], torch.tensor([1.0, 1.0, -0.1, 0.7]), atol=1e-6)
    # Batched over views and grids.
    grids = torch.randn(2, 5, 3, 4, 6)
    og = dsfd_grid(grids)
    assert og.shape == (2, 5, 3, 4, 12)
    assert torch.allclose(og[1].reshape(5, 12, 12), dsfd(grids[1].reshape(5, 12, 6)))


def test_point_features_sample_patch_centres_exactly():
    viewmats, Ks = orbit_cameras([0.0, 90.0], [0.0, 0.0], 2.0, 49.1, 56, 56)
    maps = torch.arange(2 * 4 * 4 * 3, dtype=torch.float32).reshape(2, 4, 4, 3)
    # World points that project to the centre of patch (row 1, col 2) of view 0: pixel
    # (2.5 * 14, 1.5 * 14) on a 56 px image.
    K = intrinsics_from_fov(49.1, 56, 56)
    u, v, depth = 2.5 * 14, 1.5 * 14, 2.0
    pc = torch.tensor([(u - K[0, 2]) * depth / K[0, 0], (v - K[1, 2]) * depth / K[1, 1], depth])
    R, t = viewmats[0, :3, :3], viewmats[0, :3, 3]
    p = (R.T @ (pc.float() - t))[None]
    feats, vis = sample_point_features(maps, p, viewmats, Ks, (56, 56))
    assert torch.allclose(feats[0, 0], maps[0, 1, 2]) and bool(vis[0, 0])
    # Between four patch centres: their average.
    p2 = (R.T @ (torch.tensor([(3 * 14 - 28) * depth / K[0, 0], 0.0, depth]).float() - t))[None]
    f2, _ = sample_point_features(maps, p2, viewmats, Ks, (56, 56))
    # pixel (42, 28): between patch columns 2 and 3 (centres 35, 49) and rows 1 and 2 (21, 35).
    quad = maps[0, 1:3, 2:4].reshape(4, 3).mean(0)
    assert torch.allclose(f2[0, 0], quad, atol=1e-4)
    # A point behind view 1's camera is invisible there.
    behind = torch.tensor([[3.0, 0.0, 0.0]])
    _, vis = sample_point_features(maps, behind, viewmats, Ks, (56, 56))
    assert not bool(vis[1, 0])


@torch.no_grad()
def test_ga_weights_sum_to_one_and_skip_invisible_views():
    torch.manual_seed(0)
    ga = GAFusion(5)
    feats = torch.randn(4, 50, 5)
    fused, w = ga(feats)
    assert w.shape == (4, 50) and float((w.sum(0) - 1).abs().max()) < 1e-6
    assert torch.allclose(fused, (w[..., None] * feats).sum(0), atol=1e-6)
    logits = ga.fc(feats)[..., 0]
    assert torch.allclose(w, torch.softmax(logits, 0), atol=1e-6)
    vis = torch.rand(4, 50) > 0.4
    vis[:, 0] = False  # seen by no view: equal weights
    _, w = ga(feats, vis)
    assert float((w.sum(0) - 1).abs().max()) < 1e-6
    seen = vis.any(0, keepdim=True)
    assert float(w[~vis & seen].abs().max()) == 0.0 and int((~vis & seen).sum()) > 20
    assert torch.allclose(w[:, 0], torch.full((4,), 0.25))


@torch.no_grad()
def test_da_with_identical_views_equals_ga():
    torch.manual_seed(1)
    one = torch.randn(1, 30, 6)
    same = one.expand(5, 30, 6).clone()
    ga, da = TSSF(6, "ga"), TSSF(6, "da")
    assert da.out_dim == 7
    g, _ = ga(same)
    d, w = da(same)
    assert torch.allclose(d[:, :6], g, atol=1e-6) and float(d[:, 6].abs().max()) == 0.0
    assert torch.allclose(g, one[0], atol=1e-6)
    assert float((w.sum(0) - 1).abs().max()) < 1e-6
    # With different views DA differs from GA and its distance channel is the fused L1.
    diff = torch.randn(5, 30, 6)
    d, _ = da(diff)
    assert float(d[:, 6].min()) > 0
    # DA by hand on two views: front f, one pseudo p.
    fuse = DAFusion(6)
    f, p = torch.randn(1, 30, 6), torch.randn(1, 30, 6)
    out, w = fuse(torch.cat([f, p]))
    dist = (p - f).abs().mean(-1, keepdim=True)[0]
    pseudo = torch.cat([p[0], dist], -1)  # GA over one pseudo view returns it
    front = torch.cat([f[0], torch.zeros(30, 1)], -1)
    s = torch.softmax(torch.stack([fuse.final.fc(front), fuse.final.fc(pseudo)])[..., 0], 0)
    assert torch.allclose(out, s[0, :, None] * front + s[1, :, None] * pseudo, atol=1e-6)


def test_point_feature_sampler_runs_dsfd_and_interpolates_in_time():
    from backend.methods.ds4d.point_features import PointFeatureSampler

    viewmats, Ks = orbit_cameras([0.0, 120.0], [10.0, -5.0], 2.0, 49.1, 56, 42)
    g = torch.Generator().manual_seed(3)
    maps = [torch.randn(4, 3, 4, 5, generator=g), torch.randn(4, 3, 4, 5, generator=g)]
    times = torch.tensor([0.0, 0.25, 0.5, 1.0])
    sampler = PointFeatureSampler(maps, times, viewmats, Ks, [(56, 42)] * 2)
    pts = torch.randn(20, 3, generator=g) * 0.3
    f, vis = sampler(pts, 0.5)
    assert f.shape == (2, 20, 10) and sampler.dim == 10
    want, want_vis = sample_point_features([dsfd_grid(m)[2] for m in maps], pts, viewmats, Ks,
                                           (56, 42))
    assert torch.allclose(f, want) and torch.equal(vis, want_vis)
    mid, _ = sampler(pts, 0.75)  # half way between frames 2 and 3
    f3, _ = sampler(pts, 1.0)
    assert torch.allclose(mid, 0.5 * (f + f3), atol=1e-6)
    f_before, _ = sampler(pts, -0.1)
    f0, _ = sampler(pts, 0.0)
    assert torch.equal(f_before, f0)
