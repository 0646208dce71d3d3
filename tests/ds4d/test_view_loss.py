"""The other views' loss: LPIPS where the package and its backbone weights are here, else the
multi-scale D-SSIM substitute; the choice reaches the training result."""

from __future__ import annotations

import pytest
import torch

from backend.methods.ds4d.features import ModelMissingError
from backend.methods.ds4d.view_loss import (
    ALEXNET_FILE,
    SUBSTITUTE,
    build_lpips,
    lpips_backbone,
    lpips_loss,
    make_view_loss,
    multiscale_dssim,
)
from shared.errors import ParamError

try:
    import lpips  # noqa: F401

    HAS_LPIPS = True
except Exception:  # absent, or a torchvision that does not load beside this torch
    HAS_LPIPS = False


@pytest.fixture
def no_torch_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path


def _pair(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(2, 32, 32, 3, generator=g), torch.rand(2, 32, 32, 3, generator=g)


def test_auto_without_weights_uses_the_substitute_and_says_why(no_torch_cache):
    vl = make_view_loss("auto", str(no_torch_cache / "nowhere"))
    assert vl.name == SUBSTITUTE == "msdssim" and vl.fn is multiscale_dssim
    assert "substitute" in vl.why
    assert ("lpips package" in vl.why) if not HAS_LPIPS else ("lpips-alex" in vl.why)
    a, b = _pair()
    assert float(vl.fn(a, a)) == pytest.approx(0.0, abs=1e-6) and float(vl.fn(a, b)) > 0.1
    assert make_view_loss("msdssim").name == SUBSTITUTE


def test_lpips_forced_without_weights_is_a_clear_error(no_torch_cache):
    with pytest.raises(ModelMissingError) as e:
        make_view_loss("lpips", str(no_torch_cache / "nowhere"))
    assert "lpips" in str(e.value).lower() and e.value.code == "model_missing"
    with pytest.raises(ParamError, match="accepted auto, lpips, msdssim"):
        make_view_loss("vgg")


def test_backbone_is_found_in_the_models_folder_then_torch_cache(no_torch_cache):
    folder = no_torch_cache / "models" / "ds4d" / "lpips-alex"
    assert lpips_backbone(str(folder)) is None
    cache = no_torch_cache / "torch" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    (cache / ALEXNET_FILE).write_bytes(b"x")
    assert lpips_backbone(str(folder)) == cache / ALEXNET_FILE
    folder.mkdir(parents=True)
    (folder / ALEXNET_FILE).write_bytes(b"y")
    assert lpips_backbone(str(folder)) == folder / ALEXNET_FILE


@pytest.mark.skipif(not HAS_LPIPS, reason="the lpips package (with a working torchvision) is "
                                          "not installed beside this torch")
def test_lpips_with_a_random_backbone_and_a_saved_one(no_torch_cache):
    torch.manual_seed(0)
    net = build_lpips(None, random_backbone=True)
    fn = lpips_loss(net)
    a, b = _pair(1)
    assert float(fn(a, a)) == pytest.approx(0.0, abs=1e-6) and float(fn(a, b)) > 0
    # a backbone file in torchvision's layout is loaded into the LPIPS slices
    import torchvision

    alex = torchvision.models.alexnet()
    folder = no_torch_cache / "lpips"
    folder.mkdir()
    torch.save(alex.state_dict(), folder / ALEXNET_FILE)
    vl = make_view_loss("auto", str(folder))
    assert vl.name == "lpips"
    loaded = build_lpips(folder / ALEXNET_FILE)
    assert torch.equal(loaded.net.slice1[0].weight, alex.features[0].weight)
    assert torch.equal(loaded.net.slice5[10].weight, alex.features[10].weight)
