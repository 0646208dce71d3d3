"""HexPlane against a hand-computed bilinear evaluation; the deformation starts at identity."""

from __future__ import annotations

import math

import torch

from backend.methods.ds4d.deformation import DeformationConfig, DeformationField
from backend.methods.ds4d.hexplane import PLANES, HexPlane, HexPlaneConfig


def _bilinear(plane: torch.Tensor, ca: float, cb: float) -> torch.Tensor:
    """plane [C, nb, na]; coordinates in [-1, 1] with vertex i at -1 + 2 i / (n - 1)."""
    C, nb, na = plane.shape
    fa = (min(max(ca, -1), 1) + 1) / 2 * (na - 1)
    fb = (min(max(cb, -1), 1) + 1) / 2 * (nb - 1)
    a0, b0 = min(int(math.floor(fa)), na - 2), min(int(math.floor(fb)), nb - 2)
    wa, wb = fa - a0, fb - b0
    return ((1 - wa) * (1 - wb) * plane[:, b0, a0] + wa * (1 - wb) * plane[:, b0, a0 + 1]
            + (1 - wa) * wb * plane[:, b0 + 1, a0] + wa * wb * plane[:, b0 + 1, a0 + 1])


def test_hexplane_matches_a_direct_evaluation():
    cfg = HexPlaneConfig(bound=1.6, resolution=(5, 4, 6, 3), channels=3, multires=(1, 2))
    hp = HexPlane(cfg, generator=torch.Generator().manual_seed(0))
    assert len(hp.grids) == 12 and hp.grids[6].shape == (1, 3, 8, 10)  # scale 2, xy plane
    with torch.no_grad():  # random planes everywhere (time planes start at ones)
        for g in hp.grids:
            g.uniform_(-1, 1, generator=torch.Generator().manual_seed(g.numel()))
    gen = torch.Generator().manual_seed(1)
    pts = (torch.rand(7, 3, generator=gen) * 2 - 1) * 1.7  # a few outside the bound (clamped)
    t = torch.rand(7, generator=gen)
    out = hp(pts, t)
    assert out.shape == (7, 6)
    for p in range(7):
        q = [float(pts[p, 0]) / 1.6, float(pts[p, 1]) / 1.6, float(pts[p, 2]) / 1.6,
             2 * float(t[p]) - 1]
        expect = []
        for s in range(2):
            prod = torch.ones(3)
            for i, (a, b) in enumerate(PLANES):
                prod = prod * _bilinear(hp.grids[s * 6 + i][0].detach(), q[a], q[b])
            expect.append(prod)
        assert torch.allclose(out[p], torch.cat(expect), atol=1e-5), p


def test_hexplane_default_settings_are_stag4d():
    cfg = HexPlaneConfig()
    assert (cfg.bound, cfg.resolution, cfg.channels, cfg.multires) == (
        1.6, (64, 64, 64, 25), 32, (1, 2, 4, 8))
    assert cfg.out_dim == 128


def test_deformation_starts_at_identity_and_learns():
    cfg = DeformationConfig(HexPlaneConfig(resolution=(8, 8, 8, 4), channels=4, multires=(1, 2)),
                            point_dim=5, width=16)
    net = DeformationField(cfg, generator=torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(2)
    means, scales = torch.randn(40, 3, generator=gen), torch.randn(40, 3, generator=gen)
    quats, feats = torch.randn(40, 4, generator=gen), torch.randn(40, 5, generator=gen)
    for t in (0.0, 0.37, torch.rand(40, generator=gen)):
        d = net(means, scales, quats, t, feats)
        assert torch.equal(d.means, means) and torch.equal(d.log_scales, scales)
        assert torch.equal(d.quats, quats)
    # The zero-initialised last layers still receive gradients (their inputs are not zero).
    d = net(means, scales, quats, 0.5, feats)
    (d.means.sum() + d.log_scales.sum() + d.quats.sum()).backward()
    for head in (net.position, net.scale, net.rotation):
        assert float(head[-1].weight.grad.abs().max()) > 0
    n_grid, n_mlp = len(net.grid_parameters()), len(net.mlp_parameters())
    assert n_grid == 12 and n_mlp == 2 + 3 * 4
