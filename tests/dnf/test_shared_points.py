"""The shared-points evaluation (dense per-vector weights, split first layer) equals FieldRep."""

from __future__ import annotations

import pytest
import torch

from backend.methods.dnf.checkpoint import load_checkpoint
from backend.methods.dnf.model_files import SHIPPED_DIR
from backend.methods.dnf.shared_points import eval_shared_points


@pytest.fixture(scope="module")
def shipped():
    return load_checkpoint(SHIPPED_DIR / "tiny")


@pytest.mark.parametrize("stage", ["a", "d"])  # what the shipped checkpoint holds
def test_motion_and_shape_fields_equal_the_training_evaluation(shipped, stage):
    """Shipped checkpoint: shape MLP with a skip layer, motion MLP with a shape condition; 2
    instances' vectors; worst element against FieldRep (float32, summation order differs)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(700, 3, generator=gen) * 2 - 1
    shape_vecs = shipped.shape_vecs[stage][:2].float()
    rep = shipped.shape_rep(stage)
    with torch.no_grad():
        want = rep(x[None].expand(2, -1, -1), shape_vecs)
    got = eval_shared_points(rep, x, shape_vecs)
    assert got.shape == want.shape == (2, 700, 1)
    assert (got - want).abs().max() < 1e-5, float((got - want).abs().max())

    frames = shipped.motion_vecs[stage][1, :6].float()  # one instance's first 6 frames
    cond = shipped.shape_code(stage, shipped.shape_vecs[stage][1]).float()[None].expand(6, -1)
    mrep = shipped.motion_rep(stage)
    with torch.no_grad():
        want = mrep(x[None].expand(6, -1, -1), frames, cond)
    got = eval_shared_points(mrep, x, frames, cond)
    assert got.shape == want.shape == (6, 700, 3)
    scale = want.abs().max()
    assert scale > 1e-3  # the displacements are not all zero: the comparison means something
    assert (got - want).abs().max() < 1e-5, float((got - want).abs().max())


def test_chunks_cover_every_point(shipped, monkeypatch):
    from backend.methods.dnf import shared_points

    x = torch.rand(1000, 3, generator=torch.Generator().manual_seed(1)) * 2 - 1
    rep, vecs = shipped.shape_rep("d"), shipped.shape_vecs["d"][:3].float()
    whole = eval_shared_points(rep, x, vecs)
    monkeypatch.setattr(shared_points, "CHUNK_ROWS", 3 * 300)  # 300 points per chunk
    assert torch.equal(eval_shared_points(rep, x, vecs), whole)
