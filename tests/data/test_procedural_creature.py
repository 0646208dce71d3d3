"""Procedural creatures: determinism, size, topology, gaits, legs, motion, periodicity (speed:
bench/procedural.py)."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from backend.data.procedural import (
    GAITS,
    animate,
    cycle_seconds,
    make_creature,
    make_creature_sequence,
    sample_spec,
)
from backend.data.procedural.creature import chain_weights
from backend.data.procedural.gaits import leg_phase


def foot_centres(creature, verts: np.ndarray) -> np.ndarray:
    """``[T, legs, 3]`` mean position of each foot part."""
    return np.stack([verts[:, creature.part_of == k].mean(axis=1) for k in creature.feet], 1)


def test_deterministic_per_arguments():
    a = make_creature_sequence(7, "trot", 12, 24)
    b = make_creature_sequence(7, "trot", 12, 24)
    np.testing.assert_array_equal(a.vertices, b.vertices)
    np.testing.assert_array_equal(a.colors, b.colors)
    c = make_creature_sequence(8, "trot", 12, 24)
    assert a.vertex_count != c.vertex_count or not np.allclose(a.vertices, c.vertices)
    assert sample_spec(7) == sample_spec(7)


def test_a_few_thousand_vertices():
    """Size only: how fast a creature is made is measured by bench/procedural.py."""
    seq = make_creature_sequence(2, "gallop", 24, 24)
    assert 1500 <= seq.vertex_count <= 6000  # "a few thousand vertices"


@pytest.mark.parametrize("gait", GAITS)
def test_gaits_keep_topology_and_stand_on_ground(gait):
    seq = make_creature_sequence(3, gait, 30, 24, legs=4)
    rest = make_creature(3, 4)
    np.testing.assert_array_equal(seq.faces, rest.faces)
    assert seq.vertices.shape == (30, rest.rest.shape[0], 3)
    assert np.all(np.isfinite(seq.vertices))
    assert rest.rest[:, 1].min() == 0.0  # feet on y = 0 at rest
    assert seq.vertices[:, :, 1].min() > -0.02  # never much below the ground
    # No tearing: edges stretch by bounded amounts in every frame.
    e = seq.faces[:, :2]
    l0 = np.linalg.norm(rest.rest[e[:, 0]] - rest.rest[e[:, 1]], axis=1)
    lt = np.linalg.norm(seq.vertices[:, e[:, 0]] - seq.vertices[:, e[:, 1]], axis=2)
    assert (lt / l0).max() < 2.5
    assert seq.colors.shape == (seq.vertex_count, 4) and seq.meta["gait"] == gait


@pytest.mark.parametrize("legs", [2, 4, 6, 8])
def test_leg_counts(legs):
    c = make_creature(11, legs)
    assert len(c.legs) == legs == c.spec.legs and len(c.feet) == legs
    assert sorted({(leg.pair, leg.side) for leg in c.legs}) == sorted(
        {(p, s) for p in range(legs // 2) for s in (1, -1)})
    seq = make_creature_sequence(11, "walk", 8, 24, legs=legs)
    assert seq.vertex_count == c.rest.shape[0]


def test_bad_arguments():
    with pytest.raises(ValueError, match="even"):
        make_creature(0, legs=3)
    with pytest.raises(ValueError, match="even"):
        make_creature(0, legs=10)
    with pytest.raises(ValueError, match="gait"):
        make_creature_sequence(0, "fly")


@pytest.mark.parametrize("gait", ["walk", "trot", "gallop"])
def test_feet_move_and_motion_is_periodic(gait):
    c = make_creature(5, 4)
    period = cycle_seconds(c, gait)
    t = np.linspace(0, period, 17)[:-1]
    v = animate(c, gait, np.concatenate([t, t + period, t + 3 * period]))
    n = t.shape[0]
    np.testing.assert_allclose(v[:n], v[n:2 * n], atol=1e-4)
    np.testing.assert_allclose(v[:n], v[2 * n:], atol=1e-4)
    feet = foot_centres(c, v[:n])
    travel = feet[:, :, 2].max(0) - feet[:, :, 2].min(0)
    lift = feet[:, :, 1].max(0) - feet[:, :, 1].min(0)
    assert np.all(travel > 0.1 * c.spec.leg_length)
    assert np.all(lift > 0.05 * c.spec.leg_length)
    # Every foot spends part of the cycle planted on the ground.
    assert np.all(feet[:, :, 1].min(0) < c.spec.foot_height * 1.2)


def test_leg_phase_offsets():
    # Walk: lateral sequence LH 0, LF 1/4, RH 1/2, RF 3/4 (pair 0 = front, side +1 = left).
    assert leg_phase("walk", 1, 1, 2) == 0.0 and leg_phase("walk", 0, 1, 2) == 0.25
    assert leg_phase("walk", 1, -1, 2) == 0.5 and leg_phase("walk", 0, -1, 2) == 0.75
    # Trot: diagonal pairs together.
    assert leg_phase("trot", 0, 1, 2) == leg_phase("trot", 1, -1, 2)
    assert leg_phase("trot", 0, -1, 2) == leg_phase("trot", 1, 1, 2)
    assert leg_phase("trot", 0, 1, 2) != leg_phase("trot", 0, -1, 2)
    # Gallop: fore pair half a cycle after the hind pair.
    assert leg_phase("gallop", 0, 1, 2) - leg_phase("gallop", 1, 1, 2) == 0.5


def test_idle_feet_stay_planted_but_body_moves():
    c = make_creature(9, 4)
    v = animate(c, "idle", np.linspace(0, cycle_seconds(c, "idle"), 12))
    feet = foot_centres(c, v)
    assert np.ptp(feet, axis=0).max() < 1e-3
    assert np.abs(v - v[:1]).max() > 0.01


def test_facing_plus_z_and_closed_parts():
    c = make_creature(4, 4)
    head = c.rest[c.part_of == c.part_names.index("head")].mean(0)
    tail = c.rest[c.part_of == c.part_names.index("tail")].mean(0)
    assert head[2] > tail[2] and head[1] > 0
    left = [leg for leg in c.legs if leg.side > 0]
    assert all(leg.hip0[0] > 0 for leg in left)
    for k, name in enumerate(c.part_names):
        idx = np.where(c.part_of == k)[0]
        remap = -np.ones(c.rest.shape[0], dtype=np.int64)
        remap[idx] = np.arange(idx.size)
        faces = remap[c.faces[np.isin(c.faces[:, 0], idx)]]
        mesh = trimesh.Trimesh(c.rest[idx], faces, process=False)
        assert mesh.is_watertight and mesh.is_winding_consistent and mesh.volume > 0, name


def test_chain_weights_partition_of_unity():
    s = np.linspace(-1, 4, 200)
    j, w = chain_weights(s, [0.0, 1.0, 3.0], [10, 11, 12, 13])
    np.testing.assert_allclose(w.sum(1), 1.0)
    assert set(np.unique(j)) <= {10, 11, 12, 13}
    mid = (s > 0.4) & (s < 0.6)
    assert np.all((j[mid, 0] == 11) & (w[mid, 0] == 1.0))
    assert np.all(np.diff(w[(s > -0.3) & (s < 0.3), 1]) >= 0)  # smooth blend across a bound
