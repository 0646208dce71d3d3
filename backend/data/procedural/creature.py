"""Procedural creatures: proportions from a seed, closed part meshes, a skeleton and LBS weights.

Frame: right-handed, Y-up, the creature faces +Z, its left side is +X, the rest pose stands with
the lowest foot vertices exactly on ``y = 0``; units are metres-ish (a creature is 0.5 to 2 long).

Parts (each a closed, outward-wound mesh; parts overlap at joints): body (a loft along Z), neck,
head, snout, eyes, ears, tail, and per leg a tube (hip -> knee -> ankle) and a foot. Skeleton:
``mid`` (root, body centre), ``hips`` and ``chest`` (children of ``mid``), ``neck0``, ``neck1``,
``head`` (from ``chest``), ``tail0..3`` (from ``hips``) and ``hip/knee/ankle`` per leg (from
the nearest spine joint). Every vertex has at most two influences, blended smoothly along each
part's centreline (see :func:`chain_weights`), so the mesh bends without tearing.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass, field

import numpy as np

from ..frames_io import srgb_to_linear
from .shapes import PartMesh, ellipsoid, loft

LEG_CHOICES = (2, 4, 4, 4, 6, 8)


@dataclass(frozen=True)
class CreatureSpec:
    """Proportions (metres) and colours (linear RGBA) of one creature; see :func:`sample_spec`."""

    seed: int
    legs: int
    body_length: float
    body_width: float
    body_height: float
    leg_length: float
    thigh_fraction: float
    leg_radius: float
    foot_length: float
    foot_height: float
    neck_length: float
    neck_angle: float
    neck_radius: float
    head_size: float
    snout_length: float
    ear_length: float
    tail_length: float
    tail_radius: float
    tail_angle: float
    motion_scale: float
    colors: dict[str, tuple[float, float, float, float]] = field(default_factory=dict)


def _color(h: float, s: float, v: float) -> tuple[float, float, float, float]:
    rgb = srgb_to_linear(np.array(colorsys.hsv_to_rgb(h % 1.0, min(s, 1.0), min(v, 1.0))))
    return (float(rgb[0]), float(rgb[1]), float(rgb[2]), 1.0)


def sample_spec(seed: int, legs: int = 0) -> CreatureSpec:
    """Draw a creature from ``seed`` (numpy Generator). ``legs`` 0 = from the seed, else an even
    count in 2..8 that overrides it (all other proportions stay those of the seed)."""
    if legs and (legs < 2 or legs > 8 or legs % 2):
        raise ValueError(f"legs must be 0 (from the seed) or an even number in 2..8, got {legs}")
    rng = np.random.default_rng(int(seed))
    drawn = int(rng.choice(LEG_CHOICES))
    u = rng.uniform
    body_length = u(0.8, 1.6)
    hue = u(0.0, 1.0)
    sat = u(0.25, 0.7)
    val = u(0.4, 0.85)
    accent = hue + u(-0.15, 0.15) + (0.5 if u() < 0.3 else 0.0)
    colors = {
        "body": _color(hue, sat, val),
        "leg": _color(hue, sat, val * 0.75),
        "foot": _color(hue + 0.05, sat * 0.5, val * 0.35),
        "head": _color(hue, sat * 0.9, val * 1.05),
        "snout": _color(hue + 0.03, sat * 0.6, min(1.0, val * 1.25)),
        "ear": _color(accent, sat, val * 0.9),
        "tail": _color(accent, sat * 0.9, val * 0.8),
        "eye": _color(0.0, 0.0, 0.05),
    }
    return CreatureSpec(
        seed=int(seed), legs=int(legs or drawn), body_length=body_length,
        body_width=u(0.12, 0.24), body_height=u(0.14, 0.26), leg_length=u(0.45, 0.9),
        thigh_fraction=u(0.45, 0.55), leg_radius=u(0.04, 0.075), foot_length=u(0.07, 0.14),
        foot_height=u(0.03, 0.045), neck_length=u(0.15, 0.5), neck_angle=u(0.45, 1.2),
        neck_radius=u(0.5, 0.75), head_size=u(0.1, 0.18), snout_length=u(0.05, 0.18),
        ear_length=u(0.04, 0.14), tail_length=u(0.25, 0.9), tail_radius=u(0.025, 0.07),
        tail_angle=u(-0.6, 0.3), motion_scale=u(0.85, 1.15), colors=colors,
    )


@dataclass
class Leg:
    """One leg: joint indices, rest positions ``[3]``, bone lengths, knee bend direction (+1:
    knee points forward, +Z) and its pair (0 = front) and side (+1 left / -1 right)."""

    pair: int
    side: int
    parent: int
    hip: int
    knee: int
    ankle: int
    hip0: np.ndarray
    knee0: np.ndarray
    ankle0: np.ndarray
    l1: float
    l2: float
    knee_sign: float


@dataclass
class Creature:
    """A rigged creature at rest.

    ``rest`` ``[V, 3]``, ``faces`` ``[F, 3]``, ``colors`` ``[V, 4]``, ``joints``/``weights``
    ``[V, 2]``; ``names``/``parents`` ``[J]`` and ``heads`` ``[J, 3]`` (rest joint positions);
    ``part_of`` ``[V]`` names each vertex's part (index into ``part_names``).
    """

    spec: CreatureSpec
    rest: np.ndarray
    faces: np.ndarray
    colors: np.ndarray
    joints: np.ndarray
    weights: np.ndarray
    names: list[str]
    parents: np.ndarray
    heads: np.ndarray
    legs: list[Leg]
    part_of: np.ndarray
    part_names: list[str]

    def joint(self, name: str) -> int:
        return self.names.index(name)

    @property
    def feet(self) -> list[int]:
        """Indices of the ``foot`` parts in ``part_names`` (one per leg, in leg order)."""
        return [i for i, n in enumerate(self.part_names) if n.startswith("foot")]


def chain_weights(
    s: np.ndarray, bounds: list[float], joints: list[int], blend: float = 0.35
) -> tuple[np.ndarray, np.ndarray]:
    """Two-influence weights along a chain.

    Vertices at parameter ``s`` ``[V]`` belong to ``joints[k]`` between ``bounds[k-1]`` and
    ``bounds[k]``; around each bound the weight moves smoothly (smoothstep) to the next joint
    over ``blend`` times the shorter adjacent span. Returns (joints ``[V, 2]``, weights
    ``[V, 2]``).
    """
    s = np.asarray(s, dtype=np.float64)
    edges = [-np.inf, *bounds, np.inf]
    soft = np.zeros_like(s)
    for k, b in enumerate(bounds):
        spans = [edges[k + 2] - b, b - edges[k]]
        span = min(x for x in spans if np.isfinite(x)) if any(np.isfinite(spans)) else 1.0
        h = max(blend * span, 1e-6)
        x = np.clip((s - b) / (2 * h) + 0.5, 0.0, 1.0)
        soft += x * x * (3 - 2 * x)
    lo = np.clip(np.floor(soft).astype(np.int64), 0, len(joints) - 1)
    hi = np.clip(lo + 1, 0, len(joints) - 1)
    frac = soft - np.floor(soft)
    ids = np.asarray(joints, dtype=np.int64)
    return np.stack([ids[lo], ids[hi]], 1), np.stack([1 - frac, frac], 1)


def solve_knee(hip: np.ndarray, ankle: np.ndarray, l1: float, l2: float,
                forward: np.ndarray, sign: float) -> np.ndarray:
    """Knee positions ``[..., 3]`` of a two-bone leg (hip, ankle ``[..., 3]``).

    The knee lies in the plane of the hip-ankle line and ``forward``, bent towards
    ``sign * forward``; the hip-ankle distance is clamped to what the bones can reach.
    """
    d_vec = ankle - hip
    d = np.linalg.norm(d_vec, axis=-1, keepdims=True)
    d_cl = np.clip(d, abs(l1 - l2) + 1e-6, (l1 + l2) * 0.9995)
    n = d_vec / np.maximum(d, 1e-9)
    bend = forward - np.sum(forward * n, axis=-1, keepdims=True) * n
    bend = sign * bend / np.maximum(np.linalg.norm(bend, axis=-1, keepdims=True), 1e-9)
    a = (l1 * l1 - l2 * l2 + d_cl * d_cl) / (2 * d_cl)
    h = np.sqrt(np.maximum(l1 * l1 - a * a, 0.0))
    return hip + a * n + h * bend


def build_creature(spec: CreatureSpec, detail: float = 1.0) -> Creature:
    """Build the rest mesh, skeleton and weights of ``spec``; ``detail`` scales tessellation."""
    def res(n: int) -> int:
        return max(3, int(round(n * detail)))

    sp = spec
    half = sp.body_length / 2
    l1 = sp.leg_length * sp.thigh_fraction
    l2 = sp.leg_length - l1
    reach = 0.92 * sp.leg_length
    hip_y = 2 * sp.foot_height + reach
    body_y = hip_y + 0.35 * sp.body_height
    names: list[str] = []
    parents: list[int] = []
    heads: list[np.ndarray] = []

    def add(name: str, parent: int, head: np.ndarray) -> int:
        names.append(name)
        parents.append(parent)
        heads.append(np.asarray(head, dtype=np.float64))
        return len(names) - 1

    mid = add("mid", -1, [0.0, body_y, 0.0])
    hips = add("hips", mid, [0.0, body_y, -0.45 * half])
    chest = add("chest", mid, [0.0, body_y, 0.45 * half])
    neck_dir = np.array([0.0, np.sin(sp.neck_angle), np.cos(sp.neck_angle)])
    neck_base = np.array([0.0, body_y + 0.3 * sp.body_height, 0.8 * half])
    neck0 = add("neck0", chest, neck_base)
    neck1 = add("neck1", neck0, neck_base + 0.5 * sp.neck_length * neck_dir)
    head_pos = neck_base + sp.neck_length * neck_dir
    head = add("head", neck1, head_pos)
    tail_dir = np.array([0.0, np.sin(sp.tail_angle), -np.cos(sp.tail_angle)])
    tail_base = np.array([0.0, body_y + 0.2 * sp.body_height, -0.85 * half])
    tails = [add("tail0", hips, tail_base)]
    for k in range(1, 4):
        tails.append(add(f"tail{k}", tails[-1], tail_base + k / 4 * sp.tail_length * tail_dir))

    parts: list[tuple[str, str, PartMesh, tuple[np.ndarray, np.ndarray]]] = []

    # Body: elliptic loft along Z with a rounded profile.
    zs = np.linspace(-half, half, res(26))
    prof = np.power(np.clip(1 - (zs / half) ** 2, 0.0, 1.0), 0.35) * 0.9 + 0.1
    path = np.stack([np.zeros_like(zs), body_y + 0.08 * sp.body_height * zs / half, zs], 1)
    body = loft(path, sp.body_width * prof, sp.body_height * prof, zs.shape[0], res(24), cap=0.4)
    bz = body.verts[:, 2]
    parts.append(("body", "body", body, chain_weights(
        bz, [-0.2 * half, 0.2 * half], [hips, mid, chest], blend=0.5)))

    # Neck: from inside the chest up to the head.
    npath = np.stack([neck_base - 0.25 * sp.neck_length * neck_dir, head_pos])
    nr = sp.neck_radius * sp.body_height * np.linspace(1.0, 0.7, res(10))
    neck = loft(npath, nr * 0.85, nr, res(10), res(14))
    s0 = 0.25 * sp.neck_length
    parts.append(("neck", "body", neck, chain_weights(
        neck.s, [s0 * 0.6, s0 + 0.5 * sp.neck_length, s0 + sp.neck_length],
        [chest, neck0, neck1, head], blend=0.4)))

    # Head, snout, eyes, ears: rigid on the head joint.
    hs = sp.head_size
    fwd = np.array([0.0, -0.25, 1.0]) / np.hypot(0.25, 1.0)
    head_c = head_pos + 0.3 * hs * fwd
    rigid = []
    rigid.append(("head", "head", ellipsoid(head_c, fwd, hs, 0.8 * hs, 0.75 * hs, res(9),
                                            res(16))))
    snout_c = head_c + (0.75 * hs + 0.5 * sp.snout_length) * fwd + np.array([0, -0.15 * hs, 0])
    rigid.append(("snout", "snout", ellipsoid(snout_c, fwd, 0.5 * sp.snout_length + 0.2 * hs,
                                              0.5 * hs, 0.42 * hs, res(7), res(12))))
    for side in (1, -1):
        eye_c = head_c + np.array([side * 0.55 * hs, 0.3 * hs, 0.45 * hs])
        rigid.append((f"eye_{'l' if side > 0 else 'r'}", "eye",
                      ellipsoid(eye_c, [0, 0, 1], 0.16 * hs, 0.16 * hs, 0.16 * hs, 5, 8)))
        base = head_c + np.array([side * 0.45 * hs, 0.55 * hs, -0.2 * hs])
        tip = base + sp.ear_length * np.array([side * 0.45, 1.0, -0.25])
        er = 0.18 * hs * np.linspace(1.0, 0.05, 5)
        rigid.append((f"ear_{'l' if side > 0 else 'r'}", "ear",
                      loft(np.stack([base - 0.1 * (tip - base), tip]), er, er * 0.5, 5, 8,
                           side=[0, 0, 1], cap=0.3)))
    for name, color, mesh in rigid:
        n = mesh.verts.shape[0]
        parts.append((name, color, mesh, (np.full((n, 2), head), np.tile([1.0, 0.0], (n, 1)))))

    # Tail.
    tpath = np.stack([tail_base + 0.15 * sp.tail_length * -tail_dir,
                      tail_base + sp.tail_length * tail_dir])
    tr = sp.tail_radius * np.linspace(1.0, 0.35, res(14))
    tail = loft(tpath, tr, tr, res(14), res(10), cap=0.8)
    ts = tail.s - 0.15 * sp.tail_length
    parts.append(("tail", "tail", tail, chain_weights(
        ts, [0.0, 0.25 * sp.tail_length, 0.5 * sp.tail_length, 0.75 * sp.tail_length],
        [hips, *tails], blend=0.45)))

    # Legs, front pair first.
    pairs = sp.legs // 2
    legs: list[Leg] = []
    for p in range(pairs):
        z = 0.0 if pairs == 1 else 0.62 * half * (1 - 2 * p / (pairs - 1))
        parent = chest if z > 0.25 * half else hips if z < -0.25 * half else mid
        knee_sign = 1.0 if (z > 0 or pairs == 1) else -1.0
        for side in (1, -1):
            x = side * 0.7 * sp.body_width
            hip0 = np.array([x, hip_y, z])
            ankle0 = np.array([x, 2 * sp.foot_height, z])
            knee0 = solve_knee(hip0, ankle0, l1, l2, np.array([0.0, 0.0, 1.0]), knee_sign)
            tag = f"{p}{'l' if side > 0 else 'r'}"
            hj = add(f"hip{tag}", parent, hip0)
            kj = add(f"knee{tag}", hj, knee0)
            aj = add(f"ankle{tag}", kj, ankle0)
            legs.append(Leg(p, side, parent, hj, kj, aj, hip0, knee0, ankle0, l1, l2, knee_sign))
            top = hip0 + np.array([0.0, 0.6 * sp.body_height, 0.0])
            lpath = np.stack([top, hip0, knee0, ankle0])
            r = sp.leg_radius * np.interp(np.linspace(0, 1, res(18)), [0, 0.5, 1], [1.3, 1.0, 0.7])
            tube = loft(lpath, r, r, res(18), res(12), cap=0.5)
            s_off = 0.6 * sp.body_height
            parts.append((f"leg{tag}", "leg", tube, chain_weights(
                tube.s, [s_off * 0.7, s_off + l1, s_off + l1 + l2],
                [parent, hj, kj, aj], blend=0.3)))
            foot_c = np.array([x, sp.foot_height, z + 0.35 * sp.foot_length])
            foot = ellipsoid(foot_c, [0, 0, 1], sp.foot_length, 1.3 * sp.leg_radius,
                             sp.foot_height, 7, 12)
            n = foot.verts.shape[0]
            parts.append((f"foot{tag}", "foot", foot,
                          (np.full((n, 2), aj), np.tile([1.0, 0.0], (n, 1)))))

    verts = np.concatenate([p[2].verts for p in parts])
    offsets = np.cumsum([0] + [p[2].verts.shape[0] for p in parts])
    faces = np.concatenate([p[2].faces + o for p, o in zip(parts, offsets[:-1], strict=True)])
    part_of = np.concatenate([np.full(p[2].verts.shape[0], k) for k, p in enumerate(parts)])
    colors = np.concatenate([np.tile(sp.colors[p[1]], (p[2].verts.shape[0], 1)) for p in parts])
    joints = np.concatenate([p[3][0] for p in parts])
    weights = np.concatenate([p[3][1] for p in parts])
    # Stand exactly on the ground.
    drop = np.array([0.0, verts[:, 1].min(), 0.0])
    heads_arr = np.stack(heads) - drop
    for leg in legs:
        leg.hip0, leg.knee0, leg.ankle0 = leg.hip0 - drop, leg.knee0 - drop, leg.ankle0 - drop
    return Creature(
        spec=sp, rest=verts - drop, faces=faces, colors=colors.astype(np.float32),
        joints=joints, weights=weights, names=names, parents=np.asarray(parents),
        heads=heads_arr, legs=legs, part_of=part_of, part_names=[p[0] for p in parts],
    )
