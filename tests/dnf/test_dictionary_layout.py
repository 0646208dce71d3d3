"""SVD dictionary and flat layout: exact round trips, compression, residual, conversions."""

from __future__ import annotations

import torch

from backend.methods.dnf.dictionary import Dictionary, convert_vectors, keep_counts
from backend.methods.dnf.fields import FieldMLP
from backend.methods.dnf.layout import FlatLayout


def double_mlp(seed: int = 0) -> FieldMLP:
    torch.manual_seed(seed)
    return FieldMLP(in_dim=11, hidden=16, layers=3, skip=(2,), out_dim=3).double()


def test_svd_round_trip_reproduces_every_layer_exactly():
    mlp = double_mlp()
    dic = Dictionary(mlp)
    assert dic.ranks == [11, 16, 16, 3]
    for j, lin in enumerate(mlp.linears):
        s = dic.factors(j)[1]
        w = dic.weight(j, s.log())
        rel = (w - lin.weight).norm() / lin.weight.norm()
        assert rel < 1e-6, (j, float(rel))


def test_dictionary_forward_matches_mlp_before_compression():
    mlp = double_mlp(1)
    dic = Dictionary(mlp, residual=[2] * 4)
    layout = dic.layout(5)
    codes = torch.randn(4, 5, dtype=torch.float64)
    vec = dic.init_vectors(codes, layout)
    inp = torch.randn(4, 7, 11, dtype=torch.float64)
    ref = mlp(inp)
    out = dic(inp, vec, layout)
    assert torch.allclose(out, ref, rtol=1e-6, atol=1e-9)


def test_top_k_is_the_truncated_svd():
    mlp = double_mlp(2)
    keep = keep_counts(mlp, 0.5)
    dic = Dictionary(mlp, keep=keep)
    assert dic.ranks == [6, 8, 8, 3]  # the output layer (rank 3 <= 8) is kept whole
    assert keep_counts(mlp, 0.5, full_below=2) == [6, 8, 8, 2]
    w = mlp.linears[1].weight
    u, s, vh = torch.linalg.svd(w)
    best = (u[:, :8] * s[:8]) @ vh[:8]
    assert torch.allclose(dic.weight(1, dic.factors(1)[1].log()), best, atol=1e-10)


def test_per_instance_singular_values_change_only_that_instance():
    mlp = double_mlp(3)
    dic = Dictionary(mlp)
    layout = dic.layout(2)
    vec = dic.init_vectors(torch.zeros(2, 2, dtype=torch.float64), layout)
    inp = torch.randn(1, 5, 11, dtype=torch.float64).expand(2, -1, -1)
    vec2 = vec.clone()
    layout.get(vec2, "L1.logsv")[1] += 0.3
    out = dic(inp, vec2, layout)
    assert torch.allclose(out[0], mlp(inp[:1])[0])
    assert not torch.allclose(out[1], out[0])


def test_layout_round_trip_and_json():
    lay = FlatLayout(4, [3, 5, 1], [2, 0, 1], code_name="shape code")
    assert lay.size == 4 + 3 + 2 + 5 + 1 + 1
    names = [s.name for s in lay.slices]
    assert names == ["code", "L0.logsv", "L0.res", "L1.logsv", "L2.logsv", "L2.res"]
    assert [s.start for s in lay.slices[1:]] == [s.stop for s in lay.slices[:-1]]
    vec = torch.randn(7, 2, lay.size)
    parts = lay.split(vec)
    assert parts["L1.logsv"].shape == (7, 2, 5)
    assert torch.equal(lay.join(parts), vec)
    again = FlatLayout.from_json(lay.to_json())
    assert again.to_json() == lay.to_json()
    assert "L2.res" in lay.markdown("shape")


def test_layout_rejects_wrong_sizes():
    lay = FlatLayout(2, [3])
    try:
        lay.split(torch.zeros(4))
    except ValueError as err:
        assert "layout needs 5" in str(err)
    else:
        raise AssertionError("wrong size accepted")


def test_convert_vectors_truncates_and_zero_fills():
    full = FlatLayout(2, [4, 3])
    comp = FlatLayout(2, [2, 1], [3, 3])
    vec = torch.arange(full.size, dtype=torch.float32)[None]
    out = convert_vectors(vec, full, comp)
    parts = comp.split(out)
    assert torch.equal(parts["code"], vec[:, :2])
    assert torch.equal(parts["L0.logsv"], vec[:, 2:4])
    assert torch.equal(parts["L1.logsv"], vec[:, 6:7])
    assert torch.count_nonzero(parts["L0.res"]) == 0
