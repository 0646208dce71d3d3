"""The figures of ``docs/results/dnf_fields.md``, held by the shipped ``tiny`` model.

The published table evaluates the model on 16 training instances, 13 held-out clips and two unseen
shapes (10 minutes). These tests re-measure a few of the same rows with the same code
(:func:`backend.methods.dnf.evaluate.eval_instance`, Chamfer x 10^3 of 2,048 points per frame,
IoU of the canonical shape, motion error x 10^2) at a smaller marching-cubes grid and fewer IoU
and SDF samples, with fixed seeds; the values they must stay near are listed, measured, in the
docs' section "Figures the tests hold":

- two training instances, decoded from their stored stage-(d) vectors: ``creature_3|idle`` and
  ``creature_7|walk`` (both among the 16 of the published table; procedural, so always run);
- one held-out clip, ``Alpaca|AnimalArmature|Jump_toIdle`` (one of the 13), its vectors fitted
  with everything shared frozen (needs ``../shared/data/animals``; skipped without it); its
  decoded shape must stay in one piece, as its source;
- the unseen shape ``creature_1001|walk`` (the published "fit" row), its stage-(d) shape vector
  fitted from the mean training vector.

Margins: Chamfer within 25 % of the measured value either way (a model whose Chamfer doubles
fails; so does one that improved without the docs being updated), IoU within 0.04, motion error
within 25 %. What varies between machines is float summation order in torch's CPU kernels: it
moves these values in their third or fourth digit.
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from backend.data.procedural import make_creature_sequence
from backend.methods.dnf.checkpoint import load_checkpoint
from backend.methods.dnf.config import get_preset
from backend.methods.dnf.data import Instance, SequenceLoader, SourceSpec, sample_instance
from backend.methods.dnf.evaluate import eval_instance
from backend.methods.dnf.fit_shape import fit_instances, fit_shape_arrays
from backend.methods.dnf.model_files import SHIPPED_DIR
from backend.methods.dnf.sdf import OpenMeshWarning
from backend.methods.dnf.train import TrainData

TINY = SHIPPED_DIR / "tiny"
RES = 48            # marching cubes (the table: 64)
IOU_POINTS = 10_000  # as the table
SDF_POINTS = 10_000  # for fitting (the table: 30,000); 1 in 5 uniform, the rest near the surface
EVAL_POINTS = 2_048  # as the table (and the paper)
CHAMFER_REL = 0.25
IOU_ABS = 0.04
MOTION_REL = 0.25

# Measured with the settings above (2-core x86-64 CPU, one torch thread, torch 2.13).
TRAIN = {  # published table: stage (d) over 16 training instances (see the docs); ``pieces``
    # (connected components of the decoded canonical mesh) is held as a maximum: both sources
    # are one piece; creature_7 decodes in 5 (small parts come off at 48^3), creature_3 in one
    "creature_3|idle": {"chamfer": 2.636, "iou": 0.852, "motion": 0.440, "pieces": 1},
    "creature_7|walk": {"chamfer": 2.123, "iou": 0.818, "motion": 0.827, "pieces": 5},
}
HELD_OUT = ("Alpaca", "AnimalArmature|Jump_toIdle")
# published held-out mean: stage (d), 13 clips fitted together (see the docs). Its source is one
# piece and so is the fitted, decoded shape: ``pieces`` is held as a maximum.
HELD_OUT_EXPECTED = {"chamfer": 3.923, "iou": 0.823, "motion": 2.511, "pieces": 1}
# published row creature_1001|walk (64^3, 24,000 SDF samples; see the docs)
FIT_SHAPE = {"chamfer": 4.034, "iou": 0.708}


def _cfg(sdf_points: int = 200):
    data = get_preset("tiny").data
    return replace(data, sdf_uniform=sdf_points // 5, sdf_near=sdf_points - sdf_points // 5,
                   iou_points=IOU_POINTS, eval_points=EVAL_POINTS, corr_points=1_024)


def _check(name: str, got: dict, want: dict) -> None:
    print(f"{name}: " + ", ".join(f"{k} {got[k]:.3f} (held at {want[k]:.3f})" for k in want)
          + f"; decoded pieces {got['pieces']:.0f} (source {got['source_pieces']:.0f})")
    assert abs(got["chamfer"] / want["chamfer"] - 1) <= CHAMFER_REL, (name, got, want)
    if "pieces" in want:
        assert got["pieces"] <= want["pieces"], (name, got, want)
    assert abs(got["iou"] - want["iou"]) <= IOU_ABS, (name, got, want)
    if "motion" in want:
        assert abs(got["motion"] / want["motion"] - 1) <= MOTION_REL, (name, got, want)


@pytest.fixture(scope="module")
def tiny():
    torch.set_num_threads(1)
    return load_checkpoint(TINY, label="tiny")


def _procedural(name: str, cfg) -> Instance:
    creature, gait = name.split("|")
    seq = make_creature_sequence(int(creature.split("_")[1]), gait, cfg.frames, cfg.fps)
    return Instance(SourceSpec(name, "procedural", "train"), sample_instance(seq, cfg, seed=0))


@pytest.mark.parametrize("name", sorted(TRAIN))
def test_training_instances_decode_to_the_published_figures(tiny, name):
    inst = _procedural(name, _cfg())
    idx = tiny.index(name)
    got = eval_instance(tiny, "d", tiny.shape_vecs["d"][idx], tiny.motion_vecs["d"][idx], inst,
                        RES, seed=0)
    _check(name, got, TRAIN[name])


def test_a_held_out_clip_fits_to_the_published_figures(tiny):
    animals = get_preset("tiny").data.resolved_animals_dir()
    path = None if animals is None else Path(animals) / f"{HELD_OUT[0]}.glb"
    if path is None or not path.is_file():
        pytest.skip(f"the held-out clip {HELD_OUT[0]}|{HELD_OUT[1]} comes from the shared CC0 "
                    "animals: ../shared/data/animals (or $ANIM4D_SHARED_DATA/animals) is absent")
    cfg = _cfg(SDF_POINTS)
    spec = SourceSpec("|".join(HELD_OUT), "animal", "heldout_clip", str(path), HELD_OUT[1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OpenMeshWarning)
        inst = Instance(spec, sample_instance(SequenceLoader(cfg).read(spec), cfg, seed=0))
    svec, mvec = fit_instances(tiny, "d", TrainData.from_instances([inst]))
    got = eval_instance(tiny, "d", svec[0], mvec[0], inst, RES, seed=0)
    _check(spec.name, got, HELD_OUT_EXPECTED)


def test_an_unseen_shape_fits_to_the_published_chamfer(tiny):
    cfg = _cfg(SDF_POINTS)
    seq = make_creature_sequence(1001, "walk", 1, cfg.fps)
    inst = Instance(SourceSpec("creature_1001|walk", "procedural", "fit"),
                    sample_instance(seq, cfg, seed=0))
    fit = fit_shape_arrays(tiny, inst.arrays, "d", name=inst.name)
    got = eval_instance(tiny, "d", fit.vector, None, inst, RES, seed=0)
    _check(inst.name, got, FIT_SHAPE)
    assert fit.loss_after < 0.5 * fit.loss_before
