"""Gait cycles for procedural creatures: per-frame joint transforms and skinning matrices.

A gait is periodic with period :func:`cycle_seconds` (longer legs step more slowly, as
``sqrt(leg length)``), animated in place (the creature does not travel; planted feet slide
backwards as on a treadmill). Each leg has a phase in the cycle:

- ``walk``: four-beat lateral sequence (left hind 0, left fore 1/4, right hind 1/2, right
  fore 3/4; more pairs form a wave from back to front), duty factor 0.65;
- ``trot``: diagonal pairs together (left fore with right hind), duty 0.5;
- ``gallop``: hind pair then fore pair half a cycle later, left/right slightly apart, duty 0.35,
  with spine flexion and strong body pitch;
- ``idle``: feet stay planted; breathing, weight shift, look-around and tail sway.

A foot is on the ground for ``duty`` of the cycle, moving back by the stride, then swings
forward along a raised arc. Knees come from two-bone IK (:func:`creature.solve_knee`); the body
bobs, pitches and rolls, the head nods and the tail sways with a lag along its joints.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..transforms import affine, axis_angle_matrix
from .creature import Creature, solve_knee

GAITS = ("walk", "trot", "gallop", "idle")
X, Y, Z = np.eye(3)


@dataclass(frozen=True)
class GaitParams:
    """Base period (s, for a 0.6 leg), duty factor, stride and step height (fractions of leg
    length), body bob (fraction of leg length) and angles in radians."""

    period: float
    duty: float
    stride: float
    lift: float
    bob: float
    bobs_per_cycle: int
    pitch: float
    roll: float
    flex: float
    head: float
    tail: float


GAIT_PARAMS = {
    "walk": GaitParams(1.1, 0.65, 0.45, 0.12, 0.015, 2, 0.03, 0.04, 0.0, 0.06, 0.25),
    "trot": GaitParams(0.7, 0.5, 0.6, 0.16, 0.03, 2, 0.03, 0.02, 0.03, 0.05, 0.3),
    "gallop": GaitParams(0.5, 0.35, 0.9, 0.22, 0.05, 1, 0.12, 0.0, 0.15, 0.12, 0.2),
    "idle": GaitParams(3.0, 1.0, 0.0, 0.0, 0.006, 1, 0.015, 0.03, 0.0, 0.3, 0.35),
}


def _check_gait(gait: str) -> GaitParams:
    if gait not in GAIT_PARAMS:
        raise ValueError(f"gait {gait!r}: expected one of {', '.join(GAITS)}")
    return GAIT_PARAMS[gait]


def cycle_seconds(creature: Creature, gait: str) -> float:
    """Period of ``gait`` for this creature (seconds)."""
    return _check_gait(gait).period * float(np.sqrt(creature.spec.leg_length / 0.6))


def leg_phase(gait: str, pair: int, side: int, pairs: int) -> float:
    """Phase in [0, 1) at which the leg touches down (pair 0 = front, side +1 = left)."""
    right = 0 if side > 0 else 1
    back = pairs - 1 - pair  # 0 for the hind pair
    if gait == "walk":
        return (0.5 * right + 0.5 * back / pairs) % 1.0
    if gait == "trot":
        return 0.5 * ((pair + right) % 2)
    if gait == "gallop":
        return (0.5 * back / max(pairs - 1, 1) + 0.1 * right) % 1.0
    return 0.0


def foot_offsets(gp: GaitParams, leg_length: float, u: np.ndarray) -> np.ndarray:
    """Foot displacement ``[T, 3]`` (y up, z forward) at cycle positions ``u`` ``[T]`` in [0, 1)."""
    out = np.zeros(u.shape + (3,))
    if gp.duty >= 1.0:
        return out
    stride = gp.stride * leg_length
    stance = u < gp.duty
    s_st = u / gp.duty
    s_sw = (u - gp.duty) / (1 - gp.duty)
    out[:, 2] = np.where(stance, stride * (0.5 - s_st),
                         stride * (-0.5 + 0.5 * (1 - np.cos(np.pi * s_sw))))
    out[:, 1] = np.where(stance, 0.0, gp.lift * leg_length * np.sin(np.pi * s_sw))
    return out


def _frame(d: np.ndarray, side: np.ndarray) -> np.ndarray:
    """Orthonormal frames ``[..., 3, 3]`` with columns (side', d', side' x d')."""
    y = d / np.linalg.norm(d, axis=-1, keepdims=True)
    x = side - np.sum(side * y, axis=-1, keepdims=True) * y
    x = x / np.linalg.norm(x, axis=-1, keepdims=True)
    return np.stack([x, y, np.cross(x, y)], axis=-1)


def pose(creature: Creature, gait: str, times: np.ndarray) -> np.ndarray:
    """Skinning matrices ``[T, J, 4, 4]`` (posed world times inverse rest) at ``times`` ``[T]``."""
    gp = _check_gait(gait)
    sp = creature.spec
    times = np.asarray(times, dtype=np.float64)
    t_count = times.shape[0]
    period = cycle_seconds(creature, gait)
    w = 2 * np.pi * times / period
    amp = sp.motion_scale
    n = len(creature.names)
    heads = creature.heads
    rot = np.tile(np.eye(3), (t_count, n, 1, 1))
    pos = np.tile(heads, (t_count, 1, 1))

    local = np.tile(np.eye(3), (t_count, n, 1, 1))
    lift = -gp.bob * sp.leg_length * amp * np.cos(gp.bobs_per_cycle * w)
    if gait == "idle":
        lift = gp.bob * sp.leg_length * np.sin(w * 3)  # breathing, three per cycle
    jid = creature.joint
    local[:, jid("mid")] = (
        axis_angle_matrix(X, gp.pitch * amp * np.sin(gp.bobs_per_cycle * w + 0.6))
        @ axis_angle_matrix(Z, gp.roll * amp * np.sin(w))
    )
    if gp.flex:
        local[:, jid("hips")] = axis_angle_matrix(X, gp.flex * amp * np.sin(w))
        local[:, jid("chest")] = axis_angle_matrix(X, -gp.flex * amp * np.sin(w))
    if gait == "idle":
        yaw = gp.head * np.sin(w)
        nod = 0.1 * np.sin(2 * w + 1.0)
    else:
        yaw = 0.02 * np.sin(w)
        nod = gp.head * amp * np.sin(gp.bobs_per_cycle * w + 1.2)
    local[:, jid("neck0")] = axis_angle_matrix(Y, 0.3 * yaw) @ axis_angle_matrix(X, 0.3 * nod)
    local[:, jid("neck1")] = axis_angle_matrix(Y, 0.3 * yaw) @ axis_angle_matrix(X, 0.3 * nod)
    local[:, jid("head")] = axis_angle_matrix(Y, 0.4 * yaw) @ axis_angle_matrix(X, 0.4 * nod)
    sway_rate = 2 if gait == "trot" else 1
    for k in range(4):
        sway = gp.tail * amp * (0.4 + 0.3 * k) * np.sin(sway_rate * w - 0.7 * k)
        droop = 0.05 * (k + 1) * np.sin(gp.bobs_per_cycle * w - 0.5 * k)
        local[:, jid(f"tail{k}")] = axis_angle_matrix(Y, sway) @ axis_angle_matrix(X, droop)

    # Forward kinematics of the spine, neck and tail (rest joint frames are unrotated).
    leg_joints = {j for leg in creature.legs for j in (leg.hip, leg.knee, leg.ankle)}
    for j in range(n):  # parents precede children
        if j in leg_joints:
            continue
        p = int(creature.parents[j])
        if p < 0:
            rot[:, j] = local[:, j]
            pos[:, j] = heads[j] + lift[:, None] * Y
        else:
            rot[:, j] = rot[:, p] @ local[:, j]
            pos[:, j] = pos[:, p] + np.einsum("tij,j->ti", rot[:, p], heads[j] - heads[p])

    root_rot = rot[:, jid("mid")]
    forward = root_rot @ Z
    side = root_rot @ X
    pairs = sp.legs // 2
    for leg in creature.legs:
        pr = leg.parent
        hip = pos[:, pr] + np.einsum("tij,j->ti", rot[:, pr], leg.hip0 - heads[pr])
        u = (times / period + leg_phase(gait, leg.pair, leg.side, pairs)) % 1.0
        target = leg.ankle0 + foot_offsets(gp, sp.leg_length * amp, u)
        d_vec = target - hip
        d = np.linalg.norm(d_vec, axis=1, keepdims=True)
        ankle = hip + d_vec / d * np.minimum(d, (leg.l1 + leg.l2) * 0.9995)
        knee = solve_knee(hip, ankle, leg.l1, leg.l2, forward, leg.knee_sign)
        rest_thigh = _frame(leg.knee0 - leg.hip0, X)
        rest_shin = _frame(leg.ankle0 - leg.knee0, X)
        rot[:, leg.hip] = _frame(knee - hip, side) @ rest_thigh.T
        rot[:, leg.knee] = _frame(ankle - knee, side) @ rest_shin.T
        swing = np.clip((u - gp.duty) / max(1 - gp.duty, 1e-6), 0.0, 1.0)
        rot[:, leg.ankle] = axis_angle_matrix(X, 0.5 * np.sin(np.pi * swing))
        pos[:, leg.hip], pos[:, leg.knee], pos[:, leg.ankle] = hip, knee, ankle
    # Skinning: M = [R | p] [I | -p0]: leg frames are already relative to their rest.
    rest_pos = heads.copy()
    for leg in creature.legs:
        rest_pos[leg.hip], rest_pos[leg.knee], rest_pos[leg.ankle] = leg.hip0, leg.knee0, leg.ankle0
    return affine(rot, pos - np.einsum("tjik,jk->tji", rot, rest_pos))
