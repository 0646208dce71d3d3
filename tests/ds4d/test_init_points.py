"""Initial points: voted visual hull of a sphere, inflated silhouette; one-centre scene scale."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from backend.methods.ds4d.init_points import (
    HullConfig,
    carve_hull,
    hull_points,
    inflated_silhouette,
)
from backend.render.cameras import orbit_cameras
from backend.render.fit import FitConfig, fit_static, scene_scale_from_cameras
from shared.errors import FormatError, ParamError

RADIUS = 0.5
CENTRE = (0.12, 0.08, -0.05)  # off the origin, so that a flipped image axis shows
VIEWS48 = Path(__file__).resolve().parents[1] / "render" / "data" / "views48.npz"


def _sphere_views(size=64):
    az = [0.0, 60.0, 120.0, 180.0, 240.0, 300.0, 0.0]
    el = [20.0, -10.0, 20.0, -10.0, 20.0, -10.0, 80.0]
    viewmats, Ks = orbit_cameras(az, el, 2.0, 49.1, size, size)
    # Exact masks: a pixel is inside where its centre ray passes within RADIUS of CENTRE.
    ax = torch.arange(size, dtype=torch.float64) + 0.5
    v, u = torch.meshgrid(ax, ax, indexing="ij")
    centre = torch.tensor(CENTRE, dtype=torch.float64)
    masks = []
    for vm, K in zip(viewmats.double(), Ks.double(), strict=True):
        d = torch.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], torch.ones_like(u)], -1)
        d = d @ vm[:3, :3]  # camera -> world directions (R^T d, row-wise)
        d = d / d.norm(dim=-1, keepdim=True)
        c = -vm[:3, :3].T @ vm[:3, 3] - centre  # camera centre relative to the sphere's
        closest = c - (d @ c)[..., None] * d  # the ray's point nearest the sphere's centre
        masks.append((closest.norm(dim=-1) <= RADIUS).float())
    return torch.stack(masks), viewmats, Ks


def test_voted_hull_contains_the_sphere_and_is_bounded():
    masks, vms, Ks = _sphere_views()
    hull = carve_hull(masks, vms, Ks, HullConfig(bound=1.0, resolution=40))
    r = (hull.centres - torch.tensor(CENTRE)).norm(dim=-1)
    # Contains: every voxel whose centre is inside the sphere (less a pixel's footprint,
    # 0.03 at this distance: mask pixels are sampled at their centres) is kept.
    assert bool(hull.occupied[r < RADIUS - 0.03].all())
    # Bounded: the farthest kept voxel centre (measured 0.53) and the volume (measured 1.01 x
    # the sphere's) stay close to the sphere: half a voxel diagonal is 0.043.
    far = float(r[hull.occupied].max())
    assert far < 0.55, far
    centre, half = hull.bounds()
    assert float((centre - torch.tensor(CENTRE)).abs().max()) < hull.voxel
    assert abs(half - RADIUS) < hull.voxel, half
    vol = float(hull.occupied.float().sum()) * hull.voxel ** 3
    assert vol < 1.1 * 4 / 3 * np.pi * RADIUS ** 3, vol
    # Surface points with colours from the views.
    rgba = torch.cat([torch.ones(*masks.shape, 3) * torch.tensor([0.2, 0.6, 0.9]),
                      masks[..., None]], -1)
    pts, cols = hull_points(hull, rgba, vms, Ks, 500, torch.Generator().manual_seed(0))
    assert pts.shape == (500, 3) and torch.allclose(cols, torch.tensor([0.2, 0.6, 0.9]))
    assert float((pts - torch.tensor(CENTRE)).norm(dim=-1).min()) > RADIUS - 3 * hull.voxel


def test_the_vote_survives_one_bad_mask():
    masks, vms, Ks = _sphere_views()
    bad = masks.clone()
    bad[2, :, : 34] = 0  # view 2 lost half the object
    cfg = HullConfig(bound=1.0, resolution=32)
    core = (carve_hull(bad, vms, Ks, cfg).centres - torch.tensor(CENTRE)).norm(dim=-1)
    core = core < RADIUS - 0.04
    k1 = carve_hull(bad, vms, Ks, cfg).occupied
    k2 = carve_hull(bad, vms, Ks, HullConfig(bound=1.0, resolution=32, min_votes=2)).occupied
    assert not bool(k1[core].all())  # one vote cuts the sphere
    assert bool(k2[core].all())  # two votes keep it
    with pytest.raises(ParamError, match="min_votes 9"):
        carve_hull(masks, vms, Ks, HullConfig(min_votes=9))
    with pytest.raises(FormatError, match="hull is empty"):
        hull_points(carve_hull(masks * 0, vms, Ks, cfg), masks[..., None].expand(-1, -1, -1, 4),
                    vms, Ks, 10)


def test_inflated_disk_is_a_sphere():
    size = 64
    vms, Ks = orbit_cameras([0.0], [0.0], 2.0, 49.1, size, size)
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    disk = ((xx - 32) ** 2 + (yy - 32) ** 2 <= 12 ** 2).astype(np.float32)
    rgba = torch.from_numpy(np.stack([disk, disk * 0.5, disk * 0, disk], -1))
    pts, cols, foot = inflated_silhouette(rgba, vms[0], Ks[0], 2000,
                                          generator=torch.Generator().manual_seed(0))
    R = 12 * foot  # the disk's radius in world units at the origin's depth
    d = pts.norm(dim=-1)
    # Points lie on the sphere of the disk's radius (pixel steps at the rim: measured 9.9 %).
    assert float((d - R).abs().max()) < 0.12 * R, (float(d.min()), float(d.max()), R)
    assert float(pts[:, 2].max()) > 0.8 * R and float(pts[:, 2].min()) < -0.8 * R  # two sides
    assert torch.allclose(cols, torch.tensor([1.0, 0.5, 0.0]))
    # From a turned camera, a disk off the image centre: the points project back onto it
    # (measured 13.0 px from its centre: in perspective the near half of the sphere looks a
    # little larger than the 12 px disk, plus the sub-pixel jitter).
    off = ((xx - 38) ** 2 + (yy - 27) ** 2 <= 12 ** 2).astype(np.float32)
    rgba2 = torch.from_numpy(np.stack([off, off, off, off], -1))
    vms2, Ks2 = orbit_cameras([40.0], [25.0], 2.0, 49.1, size, size)
    pts2, _, _ = inflated_silhouette(rgba2, vms2[0], Ks2[0], 2000,
                                     generator=torch.Generator().manual_seed(0))
    pc = pts2.double() @ vms2[0, :3, :3].double().T + vms2[0, :3, 3].double()
    uv = (pc @ Ks2[0].double().T)[:, :2] / pc[:, 2:]
    r_px = ((uv - torch.tensor([38.0, 27.0], dtype=torch.float64)) ** 2).sum(-1).sqrt()
    assert float(r_px.max()) < 13.5, float(r_px.max())
    with pytest.raises(FormatError, match="empty silhouette"):
        inflated_silhouette(rgba * 0, vms[0], Ks[0], 10)


def test_scene_scale_is_never_zero():
    vms, _ = orbit_cameras([0.0], [0.0], 2.0, 49.1, 32, 32)
    assert scene_scale_from_cameras(vms) == pytest.approx(2.2)
    # Several cameras at one centre looking different ways.
    turned = vms.clone()
    rot = torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])
    turned[0, :3, :3] = rot @ vms[0, :3, :3]
    turned[0, :3, 3] = rot @ vms[0, :3, 3]
    assert scene_scale_from_cameras(torch.cat([vms, turned])) == pytest.approx(2.2, rel=1e-5)
    assert scene_scale_from_cameras(torch.eye(4)[None]) == pytest.approx(1.1)
    ring, _ = orbit_cameras([0.0, 90.0, 180.0, 270.0], [0.0] * 4, 3.0, 49.1, 32, 32)
    assert scene_scale_from_cameras(ring) == pytest.approx(3.3, rel=1e-5)


def test_single_view_fit_moves_the_gaussians():
    d = np.load(VIEWS48)
    imgs, vms, Ks = (torch.from_numpy(d[k][:1]) for k in ("images", "viewmats", "Ks"))
    pts = (torch.rand(300, 3, generator=torch.Generator().manual_seed(0)) - 0.5) * 0.5
    cfg = FitConfig(iterations=3, init="points", num_threads=1, views_per_step=1)
    g, stats = fit_static(imgs, vms, Ks, init_points=pts, config=cfg)
    moved = float((g.means - pts).abs().max())
    assert moved > 1e-5, moved  # a zero scene scale gave a zero position learning rate
