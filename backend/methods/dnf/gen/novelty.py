"""Copy guard: how near a sampled creature comes to the instances its generator was trained on.

A small generator trained on ~100 instances can hand back one of them (the metrics' copy check
found one: ``docs/results/dnf_generate.md``). ``creature.sample`` therefore compares every
creature with the training instances and redraws one that is a copy (``min_novelty``).

The comparison is the copy check's, at guard size:

- a training instance's *print*: its canonical mesh decoded from its own stage vectors, meshed
  as the job meshes creatures (marching cubes at the job's resolution, pieces under
  ``min_piece`` dropped), :data:`POINTS` area-weighted surface samples of it followed through
  its motion frames by the motion field, the whole sequence normalised by its frame 0
  (bounding-box centre to the origin, largest side 1.8, as
  :func:`..gen_metrics.sequence_points`) -> ``[T, P, 3]``;
- a creature's print: the same from its canonical mesh and its motion frames (frame k at
  ``k / motion_fps``, the frames the motion generator produced);
- distance ``d_i``: the mean over the common first frames of the symmetric squared Chamfer
  distance to instance ``i``'s print;
- the instance's *sampling floor* ``floor_i``: the distance between two prints of instance
  ``i`` with different surface samples. Two samplings of one animation are not at distance 0:
  with 1,024 points the floors of the shipped model's instances run from 0.65 to 4.1 x 10^-3
  (median 2.1; flat fish have the largest surfaces and the highest floors);
- a creature's *novelty*: ``min_i (d_i - floor_i)``, what separates it from the nearest
  training instance beyond sampling noise. Every training instance decoded again with other
  samples scores at most 0.33 x 10^-3 (34 of the shipped model's 100 checked); the job's
  default ``min_novelty`` 0.002 calls a creature nearer than that a copy.

Screened by frame 0: the full distance is computed for the :data:`SCREEN` training instances
whose frame 0 is nearest (a Chamfer of every eighth point, less the floor), exactly, with branch
and bound over the frames (a sequence's distance is dominated by its shape: motion moves the
surface a few percent).

Prints are built once per model, stage, resolution and ``min_piece`` (decoding every training
instance: about 50 s at 96^3 on 2 CPU cores for the shipped model) and kept in memory and in
``$ANIM4D_CACHE/dnf-prints/`` (default ``$XDG_CACHE_HOME/anim4d``, else ``~/.cache/anim4d``).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.spatial import cKDTree

from backend.data.normalize import DNF_EXTENT, fit_transform

from ..metrics import sequence_chamfer, surface_points

#: surface samples per print
POINTS = 1024
#: default marching-cubes grid and small-piece share of the training instances' meshes (the
#: job's defaults; the job builds prints at its own ``resolution`` and ``min_piece``)
RESOLUTION = 96
MIN_PIECE = 0.02
#: seed offset of an instance's second print (its sampling floor)
FLOOR_SEED = 50_000
#: training instances whose whole sequence is compared (the nearest by frame 0)
SCREEN = 8
#: the frame-0 screening uses every SCREEN_STRIDE-th point
SCREEN_STRIDE = 8
#: version of the print recipe, part of the cache file's name: bump it when prints change
VERSION = 2

Progress = Callable[[str, float, str], None]


def cache_root() -> Path:
    """``$ANIM4D_CACHE``, else ``$XDG_CACHE_HOME/anim4d``, else ``~/.cache/anim4d``."""
    if os.environ.get("ANIM4D_CACHE"):
        return Path(os.environ["ANIM4D_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "anim4d"


def normalised(points: np.ndarray) -> np.ndarray:
    """Followed points ``[T, P, 3]`` normalised by frame 0's bounding box (module docstring)."""
    return fit_transform(points[0], DNF_EXTENT).apply(points).astype(np.float32)


def creature_print(model, stage: str, verts: np.ndarray, faces: np.ndarray,
                   shape_vec: torch.Tensor, motion_vecs: torch.Tensor, motion_fps: float,
                   frames: int, seed: int = 0) -> np.ndarray:
    """Print ``[T, P, 3]`` of a creature: canonical mesh ``verts`` ``[V, 3]`` / ``faces``,
    shape vector ``[D_s]``, motion vectors ``[M, D_m]``; its first ``frames`` motion frames."""
    from .creature import animate

    pts = surface_points(verts, faces, POINTS, seed=seed)
    t = min(frames, motion_vecs.shape[0])
    times = np.arange(t, dtype=np.float64) / motion_fps
    return normalised(animate(model, stage, pts, shape_vec, motion_vecs, motion_fps, times))


@dataclass
class TrainingPrints:
    """``points`` ``[N, T, P, 3]`` (float32) of the ``names`` training instances (``frames``
    = T, all equal for a preset's instances) and each one's sampling floor ``floors`` ``[N]``:
    the distance between two prints of that instance with different surface samples."""

    points: np.ndarray
    names: list[str]
    floors: np.ndarray

    def __post_init__(self) -> None:
        self.frames = self.points.shape[1]
        # frame 0 of every instance, every SCREEN_STRIDE-th point: the screening's sets
        self._screen = torch.from_numpy(np.ascontiguousarray(self.points[:, 0, ::SCREEN_STRIDE]))
        self._trees: dict[tuple[int, int], cKDTree] = {}

    def _tree(self, i: int, f: int) -> cKDTree:
        if (i, f) not in self._trees:
            self._trees[(i, f)] = cKDTree(self.points[i, f])
        return self._trees[(i, f)]

    def screen(self, first: np.ndarray) -> np.ndarray:
        """Frame 0 ``[P, 3]`` of a creature -> approximate Chamfer to every instance's frame 0
        ``[N]`` (every :data:`SCREEN_STRIDE`-th point of both: a ranking, not a distance)."""
        a = torch.from_numpy(np.ascontiguousarray(first[::SCREEN_STRIDE], np.float32))
        d = torch.cdist(a[None].expand(len(self._screen), -1, -1), self._screen) ** 2
        return (d.min(2).values.mean(1) + d.min(1).values.mean(1)).numpy()

    def _frame(self, pts: np.ndarray, tree: cKDTree, i: int, f: int) -> float:
        da, _ = self._tree(i, f).query(pts)
        db, _ = tree.query(self.points[i, f])
        return float(np.mean(da ** 2) + np.mean(db ** 2))

    def nearest(self, seq: np.ndarray) -> tuple[float, int]:
        """A creature's print ``[T', P, 3]`` -> (excess over the sampling floor of the nearest
        training instance, its index): ``min_i (d_i - floor_i)``, clamped at 0, ``d_i`` the
        sequence distance to instance ``i`` (module docstring; screening by frame 0, then exact
        over the screened candidates with branch and bound over the frames)."""
        seq = np.asarray(seq, dtype=np.float32)
        if not self.names:
            return float("inf"), -1
        t = min(seq.shape[0], self.frames)
        trees = [cKDTree(seq[f]) for f in range(t)]
        best, best_i = float("inf"), -1  # the smallest excess so far
        order = np.argsort(self.screen(seq[0]) - self.floors, kind="stable")
        for i in order[:SCREEN]:
            stop = (best + self.floors[i]) * t  # past this sum instance i cannot do better
            total = 0.0
            for f in range(t):  # the frame terms are >= 0
                total += self._frame(seq[f], trees[f], int(i), f)
                if total >= stop:
                    break
            else:
                best, best_i = total / t - float(self.floors[i]), int(i)
        return max(best, 0.0), best_i


def _cache_file(model, stage: str, resolution: int, min_piece: float) -> Path:
    """The cache file of the prints: named by everything they depend on."""
    split = [(i["name"], i.get("split", "")) for i in model.instances]
    what = [model.sha256, getattr(model, "stages_sha256", ""), stage, resolution, min_piece,
            POINTS, VERSION, split]
    key = hashlib.sha256(json.dumps(what).encode()).hexdigest()[:24]
    return cache_root() / "dnf-prints" / f"{model.sha256[:12]}-{stage}-r{resolution}-{key}.npz"


def build_prints(model, stage: str, resolution: int = RESOLUTION, min_piece: float = MIN_PIECE,
                 progress: Progress | None = None,
                 cancelled: Callable[[], bool] | None = None) -> TrainingPrints:
    """Decode every training instance of ``model`` at ``stage`` into its print and its sampling
    floor (see module docstring), meshed as the job meshes creatures (``resolution``,
    ``min_piece``); ``progress(stage, fraction, message)`` per instance, ``cancelled()``
    polled."""
    from .creature import _check_cancel, mesh_shape

    train = [i for i, inst in enumerate(model.instances)
             if not str(inst.get("split", "train")).startswith("heldout")]
    prints, names, floors = [], [], []
    for k, i in enumerate(train):
        _check_cancel(cancelled, "cancelled while preparing the copy guard")
        inst = model.instances[i]
        if progress is not None:
            progress("prints", k / len(train), f"copy guard: decoding training instance "
                     f"{k + 1}/{len(train)} (once per model and resolution)")
        sv, mv = model.shape_vecs[stage][i], model.motion_vecs[stage][i]
        v, f, _ = mesh_shape(model, stage, sv, resolution, min_piece=min_piece)
        if f.shape[0] == 0:
            continue  # no surface: nothing a creature could copy
        # motion frame k is the instance's frame k, whatever its clip's frame rate; stored as
        # float16 (the cache file), so a fresh build and a cached one agree
        a, b = (creature_print(model, stage, v, f, sv, mv, 1.0, mv.shape[0], seed=s)
                .astype(np.float16).astype(np.float32) for s in (i, FLOOR_SEED + i))
        prints.append(a)
        floors.append(sequence_chamfer(a, b))
        names.append(str(inst["name"]))
    if not prints:  # no training instance decodes to a surface: nothing to copy
        return TrainingPrints(np.zeros((0, 1, POINTS, 3), np.float32), [], np.zeros(0))
    t = min(p.shape[0] for p in prints)
    return TrainingPrints(np.stack([p[:t] for p in prints]), names, np.asarray(floors))


_MEMORY: dict[Path, TrainingPrints] = {}


def _read(path: Path) -> TrainingPrints | None:
    """The prints in a cache file, or None when it is not a whole one (a damaged or truncated
    file, another layout)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            pts, names = z["points"].astype(np.float32), [str(n) for n in z["names"]]
            floors = z["floors"].astype(np.float64)
    except Exception:  # noqa: BLE001 (zip, npy and key errors alike: the file is rebuilt)
        return None
    if pts.ndim != 4 or pts.shape[2:] != (POINTS, 3) or not \
            len(names) == len(floors) == pts.shape[0]:
        return None
    return TrainingPrints(pts, names, floors)


def training_prints(model, stage: str, resolution: int = RESOLUTION,
                    min_piece: float = MIN_PIECE, progress: Progress | None = None,
                    cancelled: Callable[[], bool] | None = None) -> TrainingPrints:
    """The prints of ``model``'s training instances at ``stage``, meshed at ``resolution``
    with ``min_piece``: from memory, else from the cache file, else built
    (:func:`build_prints`) and written there (atomically; an unwritable cache folder only costs
    the rebuild next time). A model without a SHA-256 (built in memory) is not cached."""
    path = _cache_file(model, stage, resolution, float(min_piece))
    if model.sha256 and path in _MEMORY:
        return _MEMORY[path]
    prints = _read(path) if model.sha256 and path.is_file() else None  # None: damaged
    if prints is None:
        prints = build_prints(model, stage, resolution, min_piece, progress, cancelled)
        if model.sha256:
            _write(path, prints)
    if model.sha256:
        _MEMORY[path] = prints
    return prints


def _write(path: Path, prints: TrainingPrints) -> None:
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz")
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, points=prints.points.astype(np.float16), names=np.array(prints.names),
                     floors=prints.floors)
        os.replace(tmp, path)
        tmp = None
    except OSError:
        pass  # an unwritable cache: rebuilt by the next process
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
