"""The foundation modules chained as the trainer will use them (a synthetic clip, one view)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from backend.methods.ds4d.clip import InputConfig, load_clip
from backend.methods.ds4d.deformation import DeformationConfig, DeformationField
from backend.methods.ds4d.features import FeatureConfig, extract_features
from backend.methods.ds4d.hexplane import HexPlaneConfig
from backend.methods.ds4d.init_points import inflated_silhouette
from backend.methods.ds4d.point_features import PointFeatureSampler
from backend.methods.ds4d.tssf import TSSF
from backend.methods.ds4d.video_io import RawFrames
from backend.methods.ds4d.views import InputViewOnly, WeakViewsWarning
from backend.render.gaussians import Gaussians


def test_clip_to_deformed_render():
    T, H, W = 5, 60, 80
    yy, xx = np.mgrid[0:H, 0:W]
    frames = np.full((T, H, W, 3), 255, np.uint8)
    for t in range(T):
        body = ((xx - 30 - 3 * t) / 16.0) ** 2 + ((yy - 30) / 10.0) ** 2 <= 1
        frames[t][body] = (150, 90, 40)
    clip = load_clip(RawFrames(frames, [f"f{t}" for t in range(T)]), InputConfig(size=56))
    with pytest.warns(WeakViewsWarning):
        source = InputViewOnly(clip)
    rgba, vms, Ks = (torch.from_numpy(a) for a in source.stacked())
    feats = extract_features([rgba[0]], FeatureConfig(backend="descriptor", image_size=56,
                                                      descriptor_dim=8))
    sampler = PointFeatureSampler(feats.maps, torch.from_numpy(source.times), vms, Ks,
                                  [(56, 56)])
    mid = T // 2
    pts, cols, foot = inflated_silhouette(rgba[0, mid], vms[0], Ks[0], 300,
                                          generator=torch.Generator().manual_seed(0))
    g = Gaussians.from_points(pts, cols, foot, 0.8)
    tssf = TSSF(sampler.dim, "da")
    field = DeformationField(DeformationConfig(
        HexPlaneConfig(resolution=(8, 8, 8, 4), channels=4, multires=(1, 2)),
        point_dim=tssf.out_dim, width=16), generator=torch.Generator().manual_seed(0))
    pf, vis = sampler(g.means, float(source.times[1]))
    assert pf.shape == (1, 300, 16) and bool(vis.all())  # every point projects into the view
    fused, w = tssf(pf, vis)
    d = field(g.means, g.log_scales, g.quats, float(source.times[1]), fused)
    moved = Gaussians(d.means, d.quats, d.log_scales, g.opacity_logits, g.sh0, g.shN)
    rgb, alpha, _ = moved.render(vms.float(), Ks.float(), 56, 56, tile_size=16)
    # At initialisation the deformation is the identity: the render is the canonical one, and
    # it covers the input frame's silhouette.
    rgb0, alpha0, _ = g.render(vms.float(), Ks.float(), 56, 56, tile_size=16)
    assert torch.equal(alpha, alpha0)
    seen = alpha[0, ..., 0] > 0.5
    mask = rgba[0, mid, ..., 3] > 0.5
    # IoU with the silhouette (measured 0.79: Gaussians one pixel wide overhang the edge).
    assert float((seen & mask).sum() / (seen | mask).sum()) > 0.75
    alpha.sum().backward()  # gradients reach the deformation heads through the renderer
    assert float(field.position[-1].weight.grad.abs().max()) > 0
