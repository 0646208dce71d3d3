"""Tokens of the flat layout: exact round trip, one token per layer, standardisation, files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from backend.methods.dnf.gen.tokens import Tokenizer, token_ranges
from backend.methods.dnf.layout import FlatLayout
from shared.errors import FormatError

SHIPPED = Path(__file__).resolve().parents[2] / "backend/methods/dnf/checkpoints/tiny"


def layout() -> FlatLayout:
    return FlatLayout(5, [7, 3, 1], [2, 0, 2])  # tokens: code 5, L0 9, L1 3, L2 3


def vectors(n: int = 40, seed: int = 0) -> torch.Tensor:
    """[n, 20] float32 whose dimensions differ in spread by 4 orders of magnitude, some zeros."""
    g = torch.Generator().manual_seed(seed)
    d = layout().size
    scale = 10.0 ** torch.linspace(-3, 1, d)
    v = (torch.randn(n, d, generator=g) * scale + torch.randn(d, generator=g)).float()
    v[::5, 3] = 0.0  # exact zeros survive too
    return v


def test_one_token_per_layer_plus_the_code_in_layout_order():
    lay = layout()
    assert token_ranges(lay) == [("code", 0, 5), ("L0", 5, 14), ("L1", 14, 17), ("L2", 17, 20)]
    tok = Tokenizer.fit(lay, vectors())
    assert tok.n_tokens == 4 and tok.width == 9 and tok.widths == [5, 9, 3, 3]
    assert tok.mask.sum(1).tolist() == [5, 9, 3, 3]
    v = vectors(6, seed=1)
    t = tok.to_tokens(v)
    assert t.shape == (6, 4, 9)
    z = tok.standardize(v)
    parts = lay.split(z)
    assert torch.equal(t[:, 1, :9], torch.cat([parts["L0.logsv"], parts["L0.res"]], -1))
    assert torch.equal(t[:, 2, :3], parts["L1.logsv"])
    assert torch.equal(t[:, 0, :5], parts["code"])
    assert (t[:, 0, 5:] == 0).all() and (t[:, 2, 3:] == 0).all()  # padding is zero


def test_round_trip_is_exact_for_instances_and_frames():
    lay = layout()
    v = vectors()
    tok = Tokenizer.fit(lay, v)
    assert torch.equal(tok.from_tokens(tok.to_tokens(v)), v)
    frames = vectors(3 * 5, seed=2).reshape(3, 5, -1)  # [N, T, D] motion-like
    back = tok.from_tokens(tok.to_tokens(frames))
    assert back.shape == frames.shape and torch.equal(back, frames)
    # padding entries are ignored on the way back (a sampler may leave anything there)
    t = tok.to_tokens(v)
    t[..., ~tok.mask] = 123.0
    assert torch.equal(tok.from_tokens(t), v)


def test_round_trip_is_exact_on_the_shipped_checkpoint_vectors():
    tensors = load_file(str(SHIPPED / "model.safetensors"))
    import json

    lays = json.loads((SHIPPED / "config.json").read_text())["layouts"]["d"]
    for name in ("shape", "motion"):
        vec = tensors[f"{name}.d.vecs"]
        tok = Tokenizer.fit(FlatLayout.from_json(lays[name]), vec)
        assert torch.equal(tok.from_tokens(tok.to_tokens(vec)), vec), name


def test_standardised_dimensions_have_mean_zero_and_unit_spread():
    v = vectors(400)
    tok = Tokenizer.fit(layout(), v)
    z = tok.standardize(v)
    # the mean is stored rounded to float32 (for the exact round trip): off by half an ulp
    rounding = tok.mean.abs() * 2.0 ** -24 / tok.scale
    assert (z.mean(0).abs() <= rounding + 1e-12).all()
    std = z.std(0, unbiased=False)
    # scales are powers of two: a spread in [2^-0.5, 2^0.5] whatever the raw spread (1e-3..10)
    assert std.min() >= 2 ** -0.5 - 1e-9 and std.max() <= 2 ** 0.5 + 1e-9, std
    assert torch.equal(torch.log2(tok.scale), torch.round(torch.log2(tok.scale)))
    raw = v.double().std(0)
    assert raw.max() / raw.min() > 1e3  # the raw spreads really differ


def test_constant_dimensions_do_not_divide_by_zero():
    v = vectors()
    v[:, 2] = 0.25
    tok = Tokenizer.fit(layout(), v)
    z = tok.standardize(v)
    assert torch.isfinite(z).all() and (z[:, 2] == 0).all()
    assert torch.equal(tok.from_tokens(tok.to_tokens(v)), v)


def test_statistics_files_round_trip(tmp_path):
    tok = Tokenizer.fit(layout(), vectors())
    meta, tens = tok.save(tmp_path, "shape")
    assert meta.name == "shape.tokens.json" and tens.name == "shape.tokens.safetensors"
    back = Tokenizer.load(tmp_path, "shape")
    assert torch.equal(back.mean, tok.mean) and torch.equal(back.scale, tok.scale)
    assert back.layout.to_json() == tok.layout.to_json() and back.count == 40
    v = vectors(3, seed=5)
    assert torch.equal(back.to_tokens(v), tok.to_tokens(v))


def test_bad_inputs_say_what_is_wrong(tmp_path):
    tok = Tokenizer.fit(layout(), vectors())
    with pytest.raises(ValueError, match="20"):
        tok.to_tokens(torch.zeros(2, 19))
    with pytest.raises(ValueError, match=r"\[\.\.\., 4, 9\]"):
        tok.from_tokens(torch.zeros(2, 4, 8))
    with pytest.raises(ValueError, match="NaN"):
        Tokenizer.fit(layout(), torch.full((3, 20), float("nan")))
    with pytest.raises(FormatError, match="not found"):
        Tokenizer.load(tmp_path, "missing")
