"""Creature sampling: coarse-to-fine marching cubes equals the dense grid's, sampling with a seed
is deterministic, coefficients round-trip, the generator is tied to its dictionary."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from backend.methods.dnf.checkpoint import load_checkpoint
from backend.methods.dnf.decode import marching_cubes, query_sdf
from backend.methods.dnf.gen.creature import (
    Creatures,
    animate,
    project_to_surface,
    sample_creatures,
)
from backend.methods.dnf.gen.mc import dense_grid, sdf_grid_fine
from backend.methods.dnf.gen.store import load_model_generator
from backend.methods.dnf.model_files import describe
from shared.errors import FormatError


def blobs(p: torch.Tensor) -> np.ndarray:
    """A pointwise analytic SDF (two spheres and a thin torus; float64 per point, so the value
    of a point never depends on the batch it is evaluated in)."""
    x = p.double().numpy()
    a = np.linalg.norm(x - [0.3, 0.0, 0.0], axis=1) - 0.45
    b = np.linalg.norm(x - [-0.4, 0.2, 0.1], axis=1) - 0.3
    q = np.stack([np.linalg.norm(x[:, [0, 2]], axis=1) - 0.6, x[:, 1] + 0.3], axis=1)
    c = np.linalg.norm(q, axis=1) - 0.05
    return np.minimum(np.minimum(a, b), c).astype(np.float32)


@pytest.mark.parametrize("res,stride", [(33, 8), (48, 4), (61, 8)])
def test_coarse_to_fine_grid_meshes_exactly_as_the_dense_grid(res, stride):
    dense = dense_grid(blobs, res)
    fine, info = sdf_grid_fine(blobs, res, stride=stride)
    assert info["evaluations"] < 0.8 * info["dense"]  # it does skip the far points
    assert np.array_equal(np.sign(fine) > 0, dense > 0)  # same inside/outside everywhere
    v1, f1 = marching_cubes(dense)
    v2, f2 = marching_cubes(fine)
    assert len(f1) > 100
    assert np.array_equal(f1, f2) and np.array_equal(v1, v2)


def test_coarse_to_fine_on_a_learned_sdf(creature_models):
    """Same faces; vertices equal up to the float rounding of evaluating the same point in
    another batch (the MLP's SDF differs by ~5e-7 between batch layouts; a vertex is placed by
    the ratio of two such values)."""
    model = load_checkpoint(creature_models / "dnf" / "micro")
    rep, vec = model.shape_rep("d"), model.shape_vecs["d"][0]

    def sdf(p):
        return query_sdf(rep, vec, p)

    v1, f1 = marching_cubes(dense_grid(sdf, 40))
    v2, f2 = marching_cubes(sdf_grid_fine(sdf, 40, stride=4)[0])
    assert len(f1) > 100 and np.array_equal(f1, f2)
    assert np.abs(v1 - v2).max() < 1e-4


def _gens(creature_models):
    folder = creature_models / "dnf" / "micro"
    model = load_checkpoint(folder)
    sgen, mgen, info = load_model_generator(folder, model.sha256)
    return model, sgen, mgen


def test_sampling_with_a_seed_is_deterministic(creature_models):
    model, sgen, mgen = _gens(creature_models)
    times = np.arange(6) / 10.0
    a, va = sample_creatures(model, sgen, mgen, 2, times, seed=3, steps=4, resolution=24)
    b, vb = sample_creatures(model, sgen, mgen, 2, times, seed=3, steps=4, resolution=24)
    c, _ = sample_creatures(model, sgen, mgen, 2, times, seed=4, steps=4, resolution=24)
    assert torch.equal(a.shapes, b.shapes) and torch.equal(a.motions, b.motions)
    assert all(np.array_equal(x, y) for x, y in zip(va, vb, strict=True))
    assert not torch.equal(a.motions, c.motions)
    assert a.motions.shape[1] == 6  # 0.5 s at the training rate of 10 fps


def test_coefficients_round_trip_and_reproduce_the_frames(creature_models, tmp_path):
    model, sgen, mgen = _gens(creature_models)
    times = np.arange(5) / 10.0
    cr, verts = sample_creatures(model, sgen, mgen, 1, times, seed=0, steps=3, resolution=24)
    back = Creatures.load(cr.save(tmp_path / "c.safetensors"))
    assert torch.equal(back.shapes, cr.shapes) and torch.equal(back.motions, cr.motions)
    assert back.meta["seed"] == 0 and back.meta["model_sha256"] == model.sha256
    again = animate(model, back.stage, back.canonical[0], back.shapes[0], back.motions[0],
                    back.motion_fps, times)
    assert np.abs(again - verts[0]).max() < 1e-5


def test_projection_lands_on_the_other_shape(creature_models):
    model, sgen, _ = _gens(creature_models)
    s = sgen.sample(1, seed=0, steps=3)[0]
    target = model.shape_vecs["d"][0] + 0.3 * (s - model.shape_vecs["d"][0])
    pts = np.random.default_rng(0).uniform(-0.5, 0.5, (300, 3)).astype(np.float32)
    before = np.abs(query_sdf(model.shape_rep("d"), target, pts))
    after = np.abs(query_sdf(model.shape_rep("d"), target,
                             project_to_surface(model, "d", target, pts, iters=4)))
    assert np.median(after) < 0.1 * np.median(before)


def test_generator_is_tied_to_its_dictionary(creature_models, tmp_path):
    folder = tmp_path / "other"
    shutil.copytree(creature_models / "dnf" / "micro", folder)
    assert describe(folder).details["generator"] is True
    info_path = folder / "generator" / "generator.json"
    info = json.loads(info_path.read_text())
    info["dictionary_sha256"] = "0" * 64
    info_path.write_text(json.dumps(info))
    assert describe(folder).details["generator"] is False
    model = load_checkpoint(folder)
    with pytest.raises(FormatError) as err:
        load_model_generator(folder, model.sha256, label="other")
    assert "retrain the generator" in str(err.value)
    assert "fit-generator --model-dir" in str(err.value)
    shutil.rmtree(folder / "generator")
    assert describe(folder).details["generator"] is False


def test_fit_generator_command_writes_a_generator_the_model_offers(creature_models, tmp_path,
                                                                   capsys):
    from backend.methods.dnf.cli import main

    folder = tmp_path / "m"
    shutil.copytree(creature_models / "dnf" / "micro", folder)
    shutil.rmtree(folder / "generator")
    assert describe(folder).details["generator"] is False
    assert main(["fit-generator", "--model-dir", str(folder), "--iters-scale", "0.004",
                 "--threads", "1"]) == 0
    assert "generator for dictionary" in capsys.readouterr().out
    assert describe(folder).details["generator"] is True
    info = json.loads((folder / "generator" / "generator.json").read_text())
    assert info["preset"] == "tiny" and "fit-generator" in info["command"]


def test_the_shipped_generator_belongs_to_the_shipped_dictionary():
    """A fresh clone samples offline: the shipped tiny model holds a generator made for its
    dictionary (after retraining the dictionary, run the command in the message)."""
    from backend.methods.dnf.model_files import SHIPPED_DIR

    folder = SHIPPED_DIR / "tiny"
    assert (folder / "generator").is_dir(), "the shipped tiny model holds no generator"
    files = describe(folder)
    assert files.details["generator"], (
        "backend/methods/dnf/checkpoints/tiny/generator was trained for another dictionary; "
        "retrain it: python -m backend.methods.dnf.cli fit-generator --model-dir "
        "backend/methods/dnf/checkpoints/tiny")
    sgen, mgen, _ = load_model_generator(folder, files.sha256)
    shape = sgen.sample(1, seed=0, steps=2)
    assert mgen.sample(shape, 3, seed=0, steps=2).shape[:2] == (1, 3)
