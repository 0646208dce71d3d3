"""Frame features: the offline DINOv2 loader (tiny random model) and the weight-free descriptor."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from backend.methods.ds4d.features import (
    FeatureConfig,
    FeatureFallbackWarning,
    ModelMissingError,
    center_per_view,
    descriptor_raw,
    extract_features,
    load_dinov2,
    patch_grid,
)


@pytest.fixture(scope="module")
def tiny_dinov2(tmp_path_factory):
    from transformers import Dinov2Config, Dinov2Model

    torch.manual_seed(0)
    cfg = Dinov2Config(hidden_size=24, num_hidden_layers=1, num_attention_heads=2,
                       intermediate_size=32, image_size=56, patch_size=14)
    model = Dinov2Model(cfg).eval()
    folder = tmp_path_factory.mktemp("dinov2_tiny")
    model.save_pretrained(folder)
    return folder, model


def _frames(T=3, H=42, W=56, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(T, H, W, 4, generator=g)
    x[..., 3] = (x[..., 3] > 0.3).float()
    return x


def test_dinov2_from_a_local_folder_gives_the_patch_grid(tiny_dinov2):
    folder, model = tiny_dinov2
    views = [_frames(seed=1), _frames(seed=2)]
    cfg = FeatureConfig(backend="dinov2", model=str(folder), image_size=56)
    feats = extract_features(views, cfg)
    assert feats.kind == "dinov2" and feats.grid == (3, 4) and feats.dim == 24
    assert feats.maps[0].shape == (3, 3, 4, 24)
    # Same as running the model by hand: composite over white, resize to 42 x 56, normalise,
    # drop the CLS token, reshape row-major to the patch grid.
    x = views[1].permute(0, 3, 1, 2)
    rgb = x[:, :3] * x[:, 3:] + (1 - x[:, 3:])
    rgb = torch.nn.functional.interpolate(rgb, size=(42, 56), mode="bilinear", antialias=True)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        h = model(pixel_values=(rgb - mean) / std).last_hidden_state
    ref = h[:, 1:].reshape(3, 3, 4, 24)
    assert float((feats.maps[1] - ref).abs().max()) < 1e-5
    # DINOv2 features are not centred (the paper's DSFD sees them raw).
    assert float(feats.maps[0].mean(dim=(0, 1, 2)).abs().max()) > 1e-3
    net = load_dinov2(str(folder))
    assert not net.training


def test_missing_model_names_it_where_and_the_fetch_command(tmp_path):
    where = tmp_path / "nowhere"
    with pytest.raises(ModelMissingError) as e:
        load_dinov2(str(where))
    msg = str(e.value)
    assert str(where / "config.json") in msg and f"anim4d models fetch dinov2-small " \
        f"--to {where}" in msg and e.value.code == "model_missing"
    with pytest.raises(ModelMissingError) as e:
        load_dinov2("someone/not-a-cached-model")
    msg = str(e.value)
    assert "someone/not-a-cached-model" in msg and "Hugging Face cache" in msg
    assert "hf download someone/not-a-cached-model --local-dir" in msg


def test_auto_falls_back_to_the_descriptor_with_a_warning(tmp_path):
    views = [_frames(T=4, seed=3), _frames(T=4, seed=4)]
    cfg = FeatureConfig(model=str(tmp_path / "absent"), image_size=56, descriptor_dim=12)
    with pytest.warns(FeatureFallbackWarning, match="weight-free descriptor"):
        feats = extract_features(views, cfg)
    assert feats.kind == "descriptor" and feats.grid == patch_grid(42, 56, 56) == (3, 4)
    assert feats.maps[0].shape == (4, 3, 4, 12)
    for m in feats.maps:  # each view centred on its own clip mean
        assert float(m.mean(dim=(0, 1, 2)).abs().max()) < 1e-5
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = extract_features(views, FeatureConfig(backend="descriptor", image_size=56,
                                                      descriptor_dim=12))
    assert all(torch.equal(a, b) for a, b in zip(feats.maps, again.maps, strict=True))
    with pytest.raises(ModelMissingError):
        extract_features(views, FeatureConfig(backend="dinov2", model=str(tmp_path / "x")))


def test_descriptor_channels_by_hand():
    # One 14 x 14 patch, half red opaque, half transparent; a vertical edge in the middle.
    x = torch.zeros(1, 14, 14, 4)
    x[0, :, :7] = torch.tensor([1.0, 0.0, 0.0, 1.0])
    raw = descriptor_raw(x, (1, 1), background=1.0, bins=8)[0, 0, 0]
    assert raw.shape == (7 + 32,)
    # Mean RGB: left half red (1, 0, 0), right half white background (1, 1, 1).
    assert torch.allclose(raw[:3], torch.tensor([1.0, 0.5, 0.5]), atol=1e-6)
    assert torch.allclose(raw[3:6], torch.tensor([0.0, 0.5, 0.5]), atol=1e-6)
    assert float(raw[6]) == pytest.approx(0.5)
    # A vertical edge: horizontal gradient, orientation 0 -> all weight in bin 0 of the cells
    # that touch the edge (the left and right 7 x 7 sub-cells share it).
    hist = raw[7:].reshape(8, 2, 2)
    assert float(hist[0].min()) > 0.99 and float(hist[1:].abs().max()) < 1e-6


def test_center_per_view():
    maps = [torch.randn(3, 2, 2, 5) + 7, torch.randn(2, 2, 2, 5) - 3]
    out = center_per_view(maps)
    assert all(float(o.mean(dim=(0, 1, 2)).abs().max()) < 1e-5 for o in out)
    assert torch.allclose(out[0] - out[0][0, 0, 0], maps[0] - maps[0][0, 0, 0], atol=1e-5)
    assert np.isfinite(out[1].numpy()).all()
