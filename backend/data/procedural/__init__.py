"""Procedural rigged creatures animated by gait cycles (constant-topology mesh sequences).

``make_creature_sequence(seed, gait, frames, fps, legs)`` is deterministic in its arguments:
the creature (proportions, colours, leg count unless ``legs`` is given) comes from ``seed``,
the motion from ``gait`` and the sample times ``arange(frames) / fps``. See
:mod:`.creature` for the frame conventions (Y-up, facing +Z, feet on ``y = 0`` at rest) and
:mod:`.gaits` for the cycles.
"""

from __future__ import annotations

import numpy as np

from shared.meshseq import MeshSequence

from ..skinning import lbs
from .creature import Creature, CreatureSpec, build_creature, sample_spec
from .gaits import GAITS, cycle_seconds, pose

__all__ = [
    "GAITS", "Creature", "CreatureSpec", "animate", "build_creature",
    "cycle_seconds", "make_creature", "make_creature_sequence", "pose", "sample_spec",
]


def make_creature(seed: int = 0, legs: int = 0, detail: float = 1.0) -> Creature:
    """The rigged rest-pose creature of ``seed``."""
    return build_creature(sample_spec(seed, legs), detail)


def animate(creature: Creature, gait: str, times: np.ndarray) -> np.ndarray:
    """Vertex positions float32 ``[T, V, 3]`` of ``creature`` doing ``gait`` at ``times`` [T]."""
    mats = pose(creature, gait, np.asarray(times, dtype=np.float64))
    return lbs(creature.rest, creature.joints, creature.weights, mats).astype(np.float32)


def make_creature_sequence(
    seed: int = 0, gait: str = "walk", frames: int = 48, fps: float = 24.0, legs: int = 0,
    detail: float = 1.0,
) -> MeshSequence:
    """A ``frames``-long sequence at ``fps`` of creature ``seed`` doing ``gait``."""
    if gait not in GAITS:
        raise ValueError(f"gait {gait!r}: expected one of {', '.join(GAITS)}")
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    creature = make_creature(seed, legs, detail)
    times = np.arange(frames, dtype=np.float64) / fps
    return MeshSequence(
        vertices=animate(creature, gait, times), faces=creature.faces, times=times,
        colors=creature.colors, name=f"creature_{seed}_{gait}",
        meta={"seed": int(seed), "gait": gait, "legs": creature.spec.legs,
              "cycle_seconds": cycle_seconds(creature, gait)},
    )
