"""Issue 11's ablation switches: ``point_features`` (dsfd | raw | none) and TSSF ``mean``."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from backend.methods.ds4d.model import DS4DModel
from backend.methods.ds4d.presets import preset
from backend.methods.ds4d.train import train
from backend.methods.ds4d.tssf import TSSF

from .test_train import _scene


def test_mean_fusion_averages_the_views_that_see_a_point():
    feats = torch.tensor([[[1.0, 2.0], [1.0, 0.0]],
                          [[3.0, 4.0], [5.0, 6.0]],
                          [[5.0, 9.0], [7.0, 8.0]]])  # [V=3, P=2, C=2]
    visible = torch.tensor([[True, False], [True, True], [False, False]])
    fused, w = TSSF(2, "mean")(feats, visible)
    assert torch.allclose(fused, torch.tensor([[2.0, 3.0], [5.0, 6.0]]))
    assert torch.allclose(w.sum(0), torch.ones(2))
    nobody = torch.zeros(3, 2, dtype=torch.bool)  # seen by none: all views, equally
    fused, _ = TSSF(2, "mean")(feats, nobody)
    assert torch.allclose(fused, feats.mean(0))
    assert not list(TSSF(2, "mean").parameters())
    assert TSSF(2, "none").out_dim == 0
    with pytest.raises(ValueError, match="mean, none"):
        TSSF(2, "max")


@pytest.mark.parametrize("point_features,tssf,mode,dim", [
    ("none", "auto", "none", 0), ("raw", "mean", "mean", 8), ("dsfd", "mean", "mean", 16)])
def test_training_switches_reach_the_model(tmp_path, point_features, tssf, mode, dim):
    """tiny: descriptor_dim 8; DSFD appends the dynamic part (2C), raw keeps C, none uses no
    point features at all (the deformation sees the HexPlane alone)."""
    cfg = dataclasses.replace(preset("tiny"), static_steps=4, dynamic_steps=4, n_init=200,
                              point_features=point_features, tssf_mode=tssf)
    res = train(_scene(), cfg)
    m = res.model
    assert m.tssf.mode == mode and m.tssf.out_dim == dim
    assert m.field.cfg.point_dim == dim
    if point_features != "none":
        assert m.sampler.dim == dim
    before = m.frames(None, [0.0, 1.0])
    loaded, _ = DS4DModel.load(m.save(tmp_path / "state.pt"))
    after = loaded.frames(None, [0.0, 1.0])
    for a, b in zip(before, after, strict=True):
        assert torch.equal(a.means, b.means)


def test_job_params_offer_the_configs_choices():
    import typing

    from backend.methods.ds4d import jobs
    from backend.methods.ds4d.presets import DS4DConfig

    hints = typing.get_type_hints(DS4DConfig)
    assert jobs.POINT_FEATURES == typing.get_args(hints["point_features"])
    assert jobs.TSSF_CHOICES == typing.get_args(hints["tssf_mode"])
    spec = {p.name: p for p in jobs.TO4D_KIND.params}
    assert spec["point_features"].choices == jobs.POINT_FEATURES
    assert spec["tssf"].choices == jobs.TSSF_CHOICES
