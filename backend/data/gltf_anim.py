"""glTF animation clips: listing, sampling channels and evaluating the node hierarchy over time.

Sampling follows the glTF 2.0 specification (Appendix C):

- times outside a sampler's key range clamp to its first/last value;
- ``STEP`` holds a key until the next one; ``LINEAR`` interpolates (rotations along the shortest
  arc, by ``nlerp`` like Blender's component-wise F-curves or by ``slerp`` as the specification
  words it); ``CUBICSPLINE`` is the Hermite spline with the file's in/out tangents (Blender's
  importer drops those tangents, so its curves differ there).

The time grid of a baked clip runs from 0 at the clip's first key with a uniform step ``1/fps``:
``T = floor(duration * fps + GRID_EPS) + 1`` samples, so the last key is included when it falls on
the grid and otherwise the grid stops at the last whole step before it (the grid stays uniform:
no extra off-grid sample is added). ``GRID_EPS`` is 1e-4 of a frame rather than 1e-6 because key
times are float32: 28/24 s stored as float32 is 2e-6 of a frame short of frame 35 at 30 fps.
A grid time past the last key (by less than ``GRID_EPS`` frames) samples the last key.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .gltf_buffers import GltfDocument
from .transforms import QuatInterp, quat_interpolate, quat_normalize, trs_matrix

PATHS = ("translation", "rotation", "scale", "weights")
GRID_EPS = 1e-4


@dataclass(frozen=True)
class ClipInfo:
    """One animation: ``start``/``end`` are its first/last key times in seconds."""

    index: int
    name: str
    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


def frame_times(duration: float, fps: float) -> np.ndarray:
    """Uniform sample times ``[T]`` (seconds from 0): ``T = floor(duration*fps + GRID_EPS) + 1``."""
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    count = int(math.floor(max(duration, 0.0) * fps + GRID_EPS)) + 1
    return np.arange(count, dtype=np.float64) / fps


def list_clips(doc: GltfDocument) -> list[ClipInfo]:
    """Clips in file order; unnamed ones are ``animation_<i>``, repeated names get ``#<i>``."""
    out: list[ClipInfo] = []
    seen: set[str] = set()
    for i, anim in enumerate(doc.gltf.animations or []):
        name = anim.name or f"animation_{i}"
        if name in seen:
            name = f"{name}#{i}"
        seen.add(name)
        lo, hi = math.inf, -math.inf
        for ch in anim.channels or []:
            keys = _keys(doc, i, ch.sampler)
            if keys.size:
                lo, hi = min(lo, float(keys[0])), max(hi, float(keys[-1]))
        if not math.isfinite(lo):
            lo = hi = 0.0
        out.append(ClipInfo(i, name, lo, hi))
    return out


def _keys(doc: GltfDocument, anim: int, index: int) -> np.ndarray:
    """Key times ``[K]`` (float64) of one sampler."""
    samplers = doc.gltf.animations[anim].samplers or []
    if not 0 <= index < len(samplers):
        raise doc.fail(f"animation {anim}: sampler {index} does not exist")
    return doc.accessor(samplers[index].input).astype(np.float64).reshape(-1)


def _sampler(doc: GltfDocument, anim: int, index: int) -> tuple[np.ndarray, np.ndarray, str]:
    """(keys ``[K]``, values ``[K*m, C]``, interpolation) of one sampler, validated."""
    keys = _keys(doc, anim, index)
    smp = doc.gltf.animations[anim].samplers[index]
    values = doc.accessor(smp.output).astype(np.float64)
    values = values.reshape(values.shape[0], -1)
    interp = smp.interpolation or "LINEAR"
    if interp not in ("LINEAR", "STEP", "CUBICSPLINE"):
        raise doc.fail(f"animation {anim}: unknown interpolation {interp!r}")
    if keys.size and np.any(np.diff(keys) < 0):
        raise doc.fail(f"animation {anim} sampler {index}: key times are not increasing")
    return keys, values, interp


def sample_curve(
    keys: np.ndarray, values: np.ndarray, interp: str, times: np.ndarray,
    is_rotation: bool = False, quat: QuatInterp = "nlerp",
) -> np.ndarray:
    """Evaluate one sampler at ``times`` ``[T]``.

    Args:
        keys: ``[K]`` increasing key times.
        values: ``[K, C]`` (``[3K, C]`` for CUBICSPLINE: in-tangent, value, out-tangent per key).
        interp: ``LINEAR``, ``STEP`` or ``CUBICSPLINE``.
        is_rotation: values are quaternions ``(x, y, z, w)``.

    Returns:
        ``[T, C]`` float64.
    """
    k = keys.shape[0]
    if interp == "CUBICSPLINE":
        tri = values.reshape(k, 3, -1)
        a_in, vals, b_out = tri[:, 0], tri[:, 1], tri[:, 2]
    else:
        vals = values[:k]
    t = np.clip(np.asarray(times, dtype=np.float64), keys[0], keys[-1])
    if k == 1:
        out = np.repeat(vals[:1], t.shape[0], axis=0)
        return quat_normalize(out) if is_rotation else out
    if interp == "STEP":
        i = np.clip(np.searchsorted(keys, t, side="right") - 1, 0, k - 1)
        return vals[i].copy()
    i = np.clip(np.searchsorted(keys, t, side="right") - 1, 0, k - 2)
    dt = keys[i + 1] - keys[i]
    s = np.where(dt > 0, (t - keys[i]) / np.where(dt > 0, dt, 1.0), 0.0)
    if interp == "LINEAR":
        if is_rotation:
            return quat_interpolate(vals[i], vals[i + 1], s, quat)
        return vals[i] + s[:, None] * (vals[i + 1] - vals[i])
    s2, s3 = s * s, s * s * s
    h00, h10 = 2 * s3 - 3 * s2 + 1, s3 - 2 * s2 + s
    h01, h11 = -2 * s3 + 3 * s2, s3 - s2
    out = (
        h00[:, None] * vals[i] + (h10 * dt)[:, None] * b_out[i]
        + h01[:, None] * vals[i + 1] + (h11 * dt)[:, None] * a_in[i + 1]
    )
    return quat_normalize(out) if is_rotation else out


@dataclass
class NodeTracks:
    """Sampled animation of every node over ``T`` times.

    ``local``: float64 ``[T, N, 4, 4]`` local matrices; ``weights``: node -> ``[T, M]`` morph
    weights of the animated nodes; ``animated``: indices of nodes whose TRS is animated.
    """

    local: np.ndarray
    weights: dict[int, np.ndarray]
    animated: set[int]


def rest_trs(doc: GltfDocument) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(translations ``[N, 3]``, rotations ``[N, 4]``, scales ``[N, 3]``, local matrices
    ``[N, 4, 4]``) of the nodes at rest; nodes given by ``matrix`` keep that matrix."""
    nodes = doc.gltf.nodes or []
    n = len(nodes)
    t = np.zeros((n, 3))
    r = np.tile([0.0, 0.0, 0.0, 1.0], (n, 1))
    s = np.ones((n, 3))
    m = np.zeros((n, 4, 4))
    for i, node in enumerate(nodes):
        if node.matrix is not None and len(node.matrix) == 16:
            m[i] = np.asarray(node.matrix, dtype=np.float64).reshape(4, 4).T
            continue
        if node.translation is not None:
            t[i] = node.translation
        if node.rotation is not None:
            r[i] = node.rotation
        if node.scale is not None:
            s[i] = node.scale
        m[i] = trs_matrix(t[i], r[i], s[i])
    return t, r, s, m


def sample_tracks(
    doc: GltfDocument, clip: ClipInfo, times: np.ndarray, quat: QuatInterp = "nlerp"
) -> NodeTracks:
    """Sample clip ``clip`` at ``times`` ``[T]`` (seconds from the clip's first key)."""
    rt, rr, rs, rm = rest_trs(doc)
    nodes = doc.gltf.nodes or []
    abs_t = clip.start + np.asarray(times, dtype=np.float64)
    count = abs_t.shape[0]
    trs: dict[int, dict[str, np.ndarray]] = {}
    weights: dict[int, np.ndarray] = {}
    anim = doc.gltf.animations[clip.index]
    for ch in anim.channels or []:
        node, path = ch.target.node, ch.target.path
        if node is None or path not in PATHS:
            continue  # e.g. KHR_animation_pointer targets: not supported, skipped
        if not 0 <= node < len(nodes):
            raise doc.fail(f"animation {clip.name!r} targets missing node {node}")
        keys, values, interp = _sampler(doc, clip.index, ch.sampler)
        if keys.size == 0:
            continue
        if path == "weights":
            per_key = values.size // (keys.size * (3 if interp == "CUBICSPLINE" else 1))
            values = values.reshape(-1, per_key)
        elif nodes[node].matrix is not None and len(nodes[node].matrix) == 16:
            raise doc.fail(
                f"node {node} ({nodes[node].name}) is given by a matrix but animation "
                f"{clip.name!r} animates its {path}: glTF forbids that"
            )
        expected = keys.size * (3 if interp == "CUBICSPLINE" else 1)
        if values.shape[0] != expected:
            raise doc.fail(
                f"animation {clip.name!r}: channel {path} of node {node} has "
                f"{values.shape[0]} values for {keys.size} keys (expected {expected})"
            )
        sampled = sample_curve(keys, values, interp, abs_t, path == "rotation", quat)
        if path == "weights":
            weights[node] = sampled
        else:
            trs.setdefault(node, {})[path] = sampled
    local = np.broadcast_to(rm, (count,) + rm.shape).copy()
    for node, chans in trs.items():
        t = chans.get("translation", np.broadcast_to(rt[node], (count, 3)))
        r = chans.get("rotation", np.broadcast_to(rr[node], (count, 4)))
        s = chans.get("scale", np.broadcast_to(rs[node], (count, 3)))
        local[:, node] = trs_matrix(t, r, s)
    return NodeTracks(local=local, weights=weights, animated=set(trs))


def parents_of(doc: GltfDocument) -> np.ndarray:
    """Parent index ``[N]`` of each node (-1 for roots); raises on shared children or cycles."""
    nodes = doc.gltf.nodes or []
    parent = np.full(len(nodes), -1, dtype=np.int64)
    for i, node in enumerate(nodes):
        for c in node.children or []:
            if not 0 <= c < len(nodes):
                raise doc.fail(f"node {i} has missing child {c}")
            if parent[c] != -1:
                raise doc.fail(f"node {c} has two parents ({parent[c]} and {i})")
            parent[c] = i
    for i in range(len(nodes)):
        seen, j = 0, i
        while j != -1:
            j = int(parent[j])
            seen += 1
            if seen > len(nodes):
                raise doc.fail(f"the node hierarchy has a cycle through node {i}")
    return parent


def world_matrices(local: np.ndarray, parent: np.ndarray) -> np.ndarray:
    """World matrices ``[T, N, 4, 4]`` from local ``[T, N, 4, 4]`` and parents ``[N]``."""
    world = np.empty_like(local)
    depth = np.zeros(parent.shape[0], dtype=np.int64)
    for i in range(parent.shape[0]):
        j = int(parent[i])
        while j != -1:
            depth[i] += 1
            j = int(parent[j])
    for i in np.argsort(depth, kind="stable"):
        p = int(parent[i])
        world[:, i] = local[:, i] if p == -1 else world[:, p] @ local[:, i]
    return world
