"""The shipped generator's creatures move: ``creature.sample n=4 frames=24`` with the shipped
``tiny`` model gives creatures that all move at least 1 % of their size (the issue's bar), and
the still training clips it was trained without are the ones its record names."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest

from backend.jobs.api import JobContext
from backend.methods.dnf.checkpoint import load_checkpoint
from backend.methods.dnf.creature_jobs import run_sample
from backend.methods.dnf.gen.clips import clip_motion_shares, moving_clips
from backend.methods.dnf.gen.creature import motion_share
from backend.methods.dnf.gen.store import MIN_CLIP_MOTION, fit_generator, load_model_generator
from backend.methods.dnf.model_files import SHIPPED_DIR
from shared.errors import FormatError
from shared.meshseq import load_npz

from .conftest import micro_generator_preset

TINY = SHIPPED_DIR / "tiny"
# The bar of issue 9 ("frames that move"). Seed 0 at 48^3 (the job's other defaults): measured
# 5.8, 4.2, 9.6 and 2.3 % after the generator was retrained without the still clips; with the
# generator trained on them too, creature 1 (a horse-like shape) idled at 0.50 % (redrawn once).
MOTION_BAR = 0.01


def test_sampled_creatures_of_the_shipped_generator_all_move(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    ctx = JobContext("job", out, tmp_path, models={"tiny": str(TINY)})
    man = run_sample(ctx, {"model": "tiny", "n": 4, "frames": 24, "seed": 0,
                           "resolution": 48}, [])
    shares = []
    for name in man.files["sequences"]:
        seq = load_npz(out / name)
        shares.append(motion_share(seq.vertices[0], seq.vertices))
    print("motion shares %:", [round(100 * s, 2) for s in shares])
    assert len(shares) == 4
    assert min(shares) >= MOTION_BAR, f"a creature barely moves: {shares}"


def test_the_shipped_motion_generator_was_trained_without_the_still_clips():
    info = json.loads((TINY / "generator" / "motion.json").read_text())
    assert info["config"]["min_clip_motion"] == MIN_CLIP_MOTION == 0.01
    still = dict(info["info"]["still_clips"])
    model = load_checkpoint(TINY)
    names = [i["name"] for i in model.instances]
    assert info["info"]["instances"] == len(names) - len(still)
    assert "Horse|AnimalArmature|Idle_2" in still and "Horse|AnimalArmature|Walk" not in still
    # measured again: the idle is still, the walk moves (shares recorded at 32^3, as here)
    idle, walk = names.index("Horse|AnimalArmature|Idle_2"), names.index(
        "Horse|AnimalArmature|Walk")
    shares = clip_motion_shares(model, "d", indices=[idle, walk])
    assert shares[0] == pytest.approx(still["Horse|AnimalArmature|Idle_2"], abs=1e-4)
    assert shares[0] < MIN_CLIP_MOTION <= shares[1]


def test_moving_clips_leaves_out_the_clips_under_the_threshold(creature_models, tmp_path):
    folder = tmp_path / "micro"
    shutil.copytree(creature_models / "dnf" / "micro", folder)
    model = load_checkpoint(folder)
    shares = clip_motion_shares(model, "d")
    assert len(shares) == 2 and shares.min() > 0
    keep, still = moving_clips(model, "d", 0.0)  # off: everything kept, nothing measured
    assert keep.tolist() == [True, True] and still == []
    lo, hi = int(np.argmin(shares)), int(np.argmax(shares))
    keep, still = moving_clips(model, "d", float(shares.mean()))
    assert keep.tolist() == [i == hi for i in range(2)]
    assert still == [[model.instances[lo]["name"], pytest.approx(shares[lo], abs=1e-5)]]
    with pytest.raises(FormatError, match="none of the 2 clips"):
        moving_clips(model, "d", float(shares.max()) * 1.01)
    # fit_generator trains the motion diffusion on the moving clip alone, and says so
    p = micro_generator_preset()
    p = replace(p, motion=replace(p.motion, min_clip_motion=float(shares.mean())))
    fit_generator(model, folder, p)
    _, mgen, _ = load_model_generator(folder, model.sha256)
    assert mgen.info["instances"] == 1 and mgen.info["frames"] == 5
    assert mgen.tokenizer.count == 5  # motion statistics of that clip's 5 frames only
    assert [n for n, _ in mgen.info["still_clips"]] == [model.instances[lo]["name"]]


def test_twin_creatures_are_redrawn_until_their_surfaces_differ():
    """Seed 3 of the shipped generator draws two creatures whose shape vectors are apart but
    whose surfaces are twins (Chamfer 1.5e-3 at 96^3, under the bar's 3 x 2.88e-3); the job's
    default min_chamfer redraws the second one."""
    from itertools import combinations

    from backend.methods.dnf.gen.creature import sample_creatures
    from backend.methods.dnf.metrics import chamfer, surface_points

    model = load_checkpoint(TINY)
    sgen, mgen, _ = load_model_generator(TINY, model.sha256)
    times = np.arange(4) / 20.0

    def closest(min_chamfer: float) -> tuple[float, list[int]]:
        cr, _ = sample_creatures(model, sgen, mgen, 4, times, 3, 25, 48, min_piece=0.02,
                                 min_spread=0.25, min_chamfer=min_chamfer)
        pts = [surface_points(v, f, 2048, seed=i)
               for i, (v, f) in enumerate(zip(cr.canonical, cr.faces, strict=True))]
        return (min(chamfer(pts[i], pts[j]) for i, j in combinations(range(4), 2)),
                cr.meta["surface_redraws"])

    twin, none = closest(0.0)
    print(f"closest pair without min_chamfer: {twin * 1e3:.2f} x 1e-3")
    assert twin < 3 * 2.88e-3 and none == [0, 0, 0, 0]
    apart, redraws = closest(0.009)  # the job's default
    print(f"closest pair with it: {apart * 1e3:.2f} x 1e-3, redraws {redraws}")
    assert apart >= 3 * 2.88e-3 and sum(redraws) >= 1
