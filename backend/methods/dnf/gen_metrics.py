"""Generation metrics as the DNF paper defines them: MMD, COV and 1-NNA over mesh sequences.

Protocol (both sets the same way, :func:`sequence_points`):

- a mesh sequence ``[T, V, 3]`` is normalised by its frame 0: the axis-aligned bounding box's
  centre goes to the origin and its largest side becomes 1.8 (the training data's normalisation,
  :func:`backend.data.normalize.fit_transform`); later frames use the same transform;
- ``n`` (2,048 in the paper) area-weighted surface samples of frame 0 (face, barycentric; seeded,
  so deterministic) are followed through every frame -> points ``[T, n, 3]``;
- sequence distance = mean over frames of the symmetric squared Chamfer distance
  ``mean_a min_b |a-b|^2 + mean_b min_a |a-b|^2`` (:mod:`.metrics`); both sequences must have
  the same frame count.

Set metrics over a distance matrix ``D[s, r]`` of ``S`` samples against ``R`` references:

- MMD: mean over references of the distance to the nearest sample (lower is better);
- COV: fraction of references that are the nearest reference of at least one sample (higher);
- 1-NNA: leave-one-out accuracy of the 1-nearest-neighbour classifier over the union of both
  sets, labelled by set (50 % when the sets are indistinguishable draws of one distribution,
  100 % when they are far apart; a set of exact copies of the references gives 0 %: every
  element's nearest neighbour is its copy, in the other set).

Copy check: each sample's distance to its nearest training instance against the training set's
own leave-one-out nearest-neighbour distances (:func:`copy_check`).

Pairwise distances: exact nearest neighbours, either with SciPy k-d trees (one tree per sequence
and frame, built once; the fastest on a CPU) or with torch (``cdist`` without the matrix-product
shortcut, whose cancellation error is ~1e-6 on squared distances; batches of (pair, frame) sized
so one batch holds at most ``max_floats`` distances: memory stays bounded).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial import cKDTree

from backend.data.normalize import DNF_EXTENT, fit_transform

from .metrics import surface_points


def sequence_points(verts: np.ndarray, faces: np.ndarray, n: int = 2048, seed: int = 0,
                    extent: float = DNF_EXTENT) -> np.ndarray:
    """Mesh sequence ``verts`` ``[T, V, 3]`` (faces ``[F, 3]``) -> normalised surface points
    ``[T, n, 3]`` float32 (see module docstring); the same ``seed`` gives the same points."""
    v = np.asarray(verts, dtype=np.float64)
    if v.ndim != 3 or v.shape[-1] != 3:
        raise ValueError(f"vertices must be [T, V, 3], got {list(v.shape)}")
    tf = fit_transform(v[0], extent)
    return surface_points(tf.apply(v), np.asarray(faces), n, seed).astype(np.float32)


def motion_amount(points: np.ndarray) -> float:
    """Mean distance of the followed surface points ``[T, P, 3]`` from where they are in frame
    0, over frames 1..T-1 (0 for a still sequence): how much a sequence moves."""
    p = np.asarray(points, dtype=np.float64)
    if p.shape[0] < 2:
        return 0.0
    return float(np.linalg.norm(p[1:] - p[:1], axis=-1).mean())


def _check_sets(a: np.ndarray, b: np.ndarray) -> None:
    for name, x in (("first", a), ("second", b)):
        if x.ndim != 4 or x.shape[-1] != 3:
            raise ValueError(f"{name} set must be [N, T, P, 3], got {list(x.shape)}")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"frame counts differ: {a.shape[1]} vs {b.shape[1]}; both sets need "
                         "the same frame count")


def pairwise_chamfer(a: np.ndarray, b: np.ndarray | None = None, backend: str = "kdtree",
                     max_floats: int = 1 << 24, progress=None) -> np.ndarray:
    """Sequence Chamfer distances ``[N, M]`` (float64) between point sets ``a`` ``[N, T, P, 3]``
    and ``b`` ``[M, T, Q, 3]``; ``b`` None = ``a`` against itself (symmetric, each pair once,
    zero diagonal). ``backend``: ``kdtree`` or ``torch``; ``progress(done, total)``."""
    a = np.asarray(a, dtype=np.float32)
    same = b is None
    b = a if same else np.asarray(b, dtype=np.float32)
    _check_sets(a, b)
    n, m, t = a.shape[0], b.shape[0], a.shape[1]
    pairs = [(i, j) for i in range(n) for j in range(i + 1 if same else 0, m)]
    out = np.zeros((n, m), dtype=np.float64)
    if backend == "kdtree":
        vals = _chamfer_kdtree(a, b, pairs, same, progress)
    elif backend == "torch":
        vals = _chamfer_torch(a, b, pairs, max_floats, progress)
    else:
        raise ValueError(f"unknown Chamfer backend {backend!r}; accepted: kdtree, torch")
    for (i, j), v in zip(pairs, vals, strict=True):
        out[i, j] = v / t
        if same:
            out[j, i] = v / t
    return out


def _chamfer_kdtree(a, b, pairs, same, progress) -> list[float]:
    """Per pair: the sum over frames of the frame Chamfer distances."""
    t = a.shape[1]
    trees_a = [[cKDTree(a[i, f]) for f in range(t)] for i in range(a.shape[0])]
    trees_b = trees_a if same else [[cKDTree(b[j, f]) for f in range(t)]
                                    for j in range(b.shape[0])]
    out = []
    for k, (i, j) in enumerate(pairs):
        s = 0.0
        for f in range(t):
            da, _ = trees_b[j][f].query(a[i, f])
            db, _ = trees_a[i][f].query(b[j, f])
            s += float(np.mean(da ** 2) + np.mean(db ** 2))
        out.append(s)
        if progress is not None:
            progress(k + 1, len(pairs))
    return out


def _chamfer_torch(a, b, pairs, max_floats, progress) -> list[float]:
    """Batches of (pair, frame): ``cdist`` ``[B, P, Q]`` with ``B * P * Q <= max_floats``."""
    t, p, q = a.shape[1], a.shape[2], b.shape[2]
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    items = [(k, i, j, f) for k, (i, j) in enumerate(pairs) for f in range(t)]
    step = max(1, max_floats // (p * q))
    sums = torch.zeros(len(pairs), dtype=torch.float64)
    for s in range(0, len(items), step):
        chunk = torch.tensor(items[s:s + step])
        k, i, j, f = chunk.unbind(1)
        d = torch.cdist(ta[i, f], tb[j, f], compute_mode="donot_use_mm_for_euclid_dist") ** 2
        per = d.min(2).values.mean(1).double() + d.min(1).values.mean(1).double()
        sums.index_add_(0, k, per)
        if progress is not None:
            progress(min(len(items), s + step) * len(pairs) // len(items), len(pairs))
    return sums.tolist()


def distances(a: list, b: list | None, backend: str) -> np.ndarray:
    """Pairwise sequence Chamfer of two lists of points (None = no surface: infinite distance
    to everything; a list against itself when ``b`` is None)."""
    same = b is None
    b = a if same else b
    out = np.full((len(a), len(b)), np.inf)
    ia = [i for i, p in enumerate(a) if p is not None]
    ib = [j for j, p in enumerate(b) if p is not None]
    if ia and ib:
        pa = np.stack([a[i] for i in ia])
        sub = pairwise_chamfer(pa, backend=backend) if same else \
            pairwise_chamfer(pa, np.stack([b[j] for j in ib]), backend=backend)
        out[np.ix_(ia, ib)] = sub
    if same:
        np.fill_diagonal(out, 0.0)
    return out


@dataclass(frozen=True)
class SetMetrics:
    """MMD (same units as the distances), COV and 1-NNA as fractions in [0, 1]."""

    mmd: float
    cov: float
    nna: float
    samples: int
    references: int


def mmd(d_sr: np.ndarray) -> float:
    """Mean over references (columns) of the distance to the nearest sample (row)."""
    return float(np.min(d_sr, axis=0).mean())


def coverage(d_sr: np.ndarray) -> float:
    """Fraction of references that are the nearest reference of at least one sample (a sample
    at infinite distance from every reference, e.g. one with no surface, covers none)."""
    nearest = np.argmin(d_sr, axis=1)[np.isfinite(d_sr).any(axis=1)]
    return len(set(nearest.tolist())) / d_sr.shape[1]


def one_nna(d_ss: np.ndarray, d_rr: np.ndarray, d_sr: np.ndarray) -> float:
    """Leave-one-out 1-NN accuracy over the union of samples and references (ties go to the
    lower index of the union, samples first; an element at infinite distance from all others,
    e.g. a sample with no surface, counts as told apart: correctly classified)."""
    s, r = d_sr.shape
    full = np.block([[d_ss, d_sr], [d_sr.T, d_rr]]).astype(np.float64)
    np.fill_diagonal(full, np.inf)
    labels = np.r_[np.zeros(s, bool), np.ones(r, bool)]
    right = labels[np.argmin(full, axis=1)] == labels
    right |= ~np.isfinite(full).any(axis=1)
    return float(np.mean(right))


def set_metrics(d_ss: np.ndarray, d_rr: np.ndarray, d_sr: np.ndarray) -> SetMetrics:
    """All three metrics from the sample-sample ``[S, S]``, reference-reference ``[R, R]`` and
    sample-reference ``[S, R]`` distance matrices."""
    s, r = d_sr.shape
    if d_ss.shape != (s, s) or d_rr.shape != (r, r):
        raise ValueError(f"distance matrices disagree: {d_ss.shape}, {d_rr.shape}, {d_sr.shape}")
    return SetMetrics(mmd(d_sr), coverage(d_sr), one_nna(d_ss, d_rr, d_sr), s, r)


@dataclass(frozen=True)
class CopyCheck:
    """``nearest`` ``[S]``: each sample's distance to its nearest training instance (index
    ``nearest_index``); ``train_nn`` ``[N]``: each training instance's leave-one-out nearest
    neighbour distance; ``ratio`` ``[S]`` = nearest / median(train_nn); ``percentile`` ``[S]``:
    percentage of ``train_nn`` below ``nearest`` (0 = closer to training than any training
    instance is to another)."""

    nearest: np.ndarray
    nearest_index: np.ndarray
    train_nn: np.ndarray
    ratio: np.ndarray
    percentile: np.ndarray


def copy_check(d_st: np.ndarray, d_tt: np.ndarray) -> CopyCheck:
    """From samples-vs-training ``[S, N]`` and training-vs-training ``[N, N]`` distances."""
    if d_tt.shape[0] < 2:
        raise ValueError("the copy check needs at least 2 training instances")
    tt = np.array(d_tt, dtype=np.float64)
    np.fill_diagonal(tt, np.inf)
    return copy_check_nn(d_st, tt.min(axis=1))


def copy_check_nn(d_st: np.ndarray, train_nn: np.ndarray) -> CopyCheck:
    """:func:`copy_check` from the training instances' nearest-neighbour distances ``[N]``."""
    nearest = d_st.min(axis=1)
    med = float(np.median(train_nn))
    ratio = nearest / med if med > 0 else np.full_like(nearest, np.inf)
    pct = 100.0 * (train_nn[None, :] < nearest[:, None]).mean(axis=1)
    return CopyCheck(nearest, d_st.argmin(axis=1), train_nn, ratio, pct)
