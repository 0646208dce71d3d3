"""The generation evaluation protocol on the micro model: motion is conditioned on the SAMPLED
shapes, both sets get the preset's frame count, samples decode to normalised point sequences."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch

from backend.methods.dnf.gen_eval import GenEvalSettings, sample_creatures


class _ShapeSpy:
    def __init__(self, vectors: torch.Tensor):
        self.vectors = vectors
        self.returned = None

    def sample(self, n, seed=0, steps=50):
        # training vectors plus a little noise: they decode to a surface, and differ from
        # anything the motion generator could take from the model itself
        g = torch.Generator().manual_seed(seed)
        self.returned = self.vectors[torch.arange(n) % len(self.vectors)] + \
            1e-3 * torch.randn(n, self.vectors.shape[1], generator=g)
        return self.returned


class _MotionSpy:
    def __init__(self, vectors: torch.Tensor):
        self.vectors = vectors
        self.shapes = None
        self.frames = None

    def sample(self, shapes, frames, seed=0, steps=50):
        self.shapes, self.frames = shapes, frames
        return self.vectors[torch.arange(shapes.shape[0]) % len(self.vectors)][:, :frames]


def test_sample_creatures_conditions_motion_on_sampled_shapes(micro_trained):
    model, _ = micro_trained
    shape_gen = _ShapeSpy(model.shape_vecs["d"])
    motion_gen = _MotionSpy(model.motion_vecs["d"])
    settings = GenEvalSettings(points=64, resolution=24, steps=2)
    out = sample_creatures(model, "d", (shape_gen, motion_gen), 2, settings)
    assert motion_gen.shapes is shape_gen.returned
    frames = model.preset.data.frames
    assert motion_gen.frames == frames
    assert torch.equal(out.shapes, shape_gen.returned)
    for seq, pts in zip(out.meshes, out.points, strict=True):
        assert seq is not None and seq.vertices.shape[0] == frames
        assert pts.shape == (frames, 64, 3)
        # normalised by frame 0: its largest side is 1.8 (points lie on the surface, so
        # their extent is at most the mesh's)
        side = float((pts[0].max(0) - pts[0].min(0)).max())
        assert 1.5 < side <= 1.8 + 1e-5
    assert not np.array_equal(out.points[0], out.points[1])


def test_saved_generators_are_reused_and_checked_against_the_stage(micro_trained, tmp_path):
    from dataclasses import replace

    import pytest

    from backend.methods.dnf.gen.config import (
        DenoiserConfig,
        MotionDenoiserConfig,
        MotionDiffusionConfig,
        OptimConfig,
        ShapeDiffusionConfig,
    )
    from backend.methods.dnf.gen_eval import get_generators
    from shared.errors import FormatError

    micro, _ = micro_trained

    def two(v: torch.Tensor) -> torch.Tensor:  # the micro model has one instance; need 2
        return torch.cat([v, v + 1e-2])

    model = SimpleNamespace(
        shape_vecs={s: two(micro.shape_vecs[s]) for s in "ad"},
        motion_vecs={s: two(micro.motion_vecs[s]) for s in "ad"},
        shape_layout=micro.shape_layout, motion_layout=micro.motion_layout)
    opt = OptimConfig(iters=2, batch=4, warmup=1, log_every=1)
    settings = GenEvalSettings(
        shape=ShapeDiffusionConfig(denoiser=DenoiserConfig(width=16, depth=1, heads=2),
                                   optim=opt),
        motion=MotionDiffusionConfig(denoiser=MotionDenoiserConfig(width=16, depth=1, heads=2,
                                                                   window=4),
                                     optim=opt, context=2))
    quiet = lambda msg: None  # noqa: E731
    trained = get_generators(model, "d", settings, tmp_path, quiet)
    assert (tmp_path / "shape.json").is_file() and (tmp_path / "motion.json").is_file()
    other = replace(settings, shape=replace(settings.shape, optim=replace(opt, iters=50)))
    loaded = get_generators(model, "d", other, tmp_path, quiet)  # loads, does not train
    assert loaded[0].config == trained[0].config and loaded[0].info == trained[0].info
    with pytest.raises(FormatError, match="stage a"):
        get_generators(model, "a", settings, tmp_path, quiet)


def test_references_are_every_heldout_split_and_never_training(micro_trained, monkeypatch):
    import pytest

    from backend.methods.dnf import gen_eval
    from backend.methods.dnf.data import SourceSpec
    from backend.methods.dnf.gen_eval import reference_sequences
    from shared.errors import FormatError

    micro, _ = micro_trained
    specs = [SourceSpec("creature_3|walk", "procedural", "train", seed=3, gait="walk"),
             SourceSpec("creature_5|trot", "procedural", "heldout_species", seed=5,
                        gait="trot"),
             SourceSpec("creature_6|walk", "procedural", "heldout_clip", seed=6, gait="walk")]
    monkeypatch.setattr(gen_eval, "list_sources", lambda cfg: specs)
    model = SimpleNamespace(preset=micro.preset, instances=[{"name": "creature_3|walk"}])
    refs = reference_sequences(model)
    assert [r.name for r in refs] == ["creature_5|trot", "creature_6|walk"]
    assert all(r.vertices.shape[0] == micro.preset.data.frames for r in refs)
    model.instances.append({"name": "creature_6|walk"})
    with pytest.raises(FormatError, match="creature_6"):
        reference_sequences(model)
    monkeypatch.setattr(gen_eval, "list_sources", lambda cfg: specs[:1])
    with pytest.raises(FormatError, match="no held-out sequences"):
        reference_sequences(model)
