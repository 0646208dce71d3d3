"""Copy guard: how near a sampled creature comes to the instances its generator was trained on.

A small generator trained on ~100 instances can hand back one of them (the metrics' copy check
found one: ``docs/results/dnf_generate.md``). ``creature.sample`` therefore compares every
creature with the training instances and redraws one that is a copy (``min_novelty``).

The comparison is the copy check's, at guard size:

- a training instance's *print*: its canonical mesh decoded from its own stage vectors
  (marching cubes at :data:`RESOLUTION`), :data:`POINTS` area-weighted surface samples of it
  followed through its motion frames by the motion field, the whole sequence normalised by its
  frame 0 (bounding-box centre to the origin, largest side 1.8, as
  :func:`..gen_metrics.sequence_points`) -> ``[T, P, 3]``;
- a creature's print: the same from its canonical mesh and its motion frames (frame k at
  ``k / motion_fps``, the frames the motion generator produced);
- distance: the mean over the common first frames of the symmetric squared Chamfer distance.
  Screened by frame 0: the full sequence distance is computed for the :data:`SCREEN` training
  instances whose frame 0 is nearest, by a Chamfer of every eighth point (a sequence's distance
  is dominated by its shape: motion moves the surface a few percent).

Two samplings of one animation are not at distance 0 but at the sampling floor: a training
instance meshed again at another resolution and sampled with other points is 0.98 x 10^-3 from
its own print (``tests/dnf/test_novelty.py``); the shipped training set's closest pairs, identical
meshes doing the same clip (Horse and Horse_White ``Walk``; Apatosaurus's two still clips), are
1.8-2.2 x 10^-3 apart, against a median nearest-neighbour distance of 8.4 x 10^-3
(``python bench/eval_dnf_samples.py``). The job's default threshold (``min_novelty`` 0.003)
sits just above them: a creature nearer than that to a training instance is that instance.

Prints are built once per model and stage (decoding every training instance: about 20 s on 2
CPU cores for the shipped model) and kept in memory and in
``$ANIM4D_CACHE/dnf-prints/`` (default ``$XDG_CACHE_HOME/anim4d``, else ``~/.cache/anim4d``).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.spatial import cKDTree

from backend.data.normalize import DNF_EXTENT, fit_transform

from ..metrics import surface_points

#: surface samples per print
POINTS = 1024
#: marching-cubes grid of the training instances' canonical meshes
RESOLUTION = 64
#: training instances whose whole sequence is compared (the nearest by frame 0)
SCREEN = 8
#: the frame-0 screening uses every SCREEN_STRIDE-th point
SCREEN_STRIDE = 8
#: version of the print recipe, part of the cache file's name
VERSION = 1

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
    """``points`` ``[N, T, P, 3]`` (float32) of the ``names`` training instances; ``frames``
    per instance ``[N]`` (all equal for a preset's instances)."""

    points: np.ndarray
    names: list[str]

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
        """A creature's print ``[T', P, 3]`` -> (distance to the nearest training instance,
        its index); see the module docstring for the distance and the screening."""
        seq = np.asarray(seq, dtype=np.float32)
        if not self.names:
            return float("inf"), -1
        t = min(seq.shape[0], self.frames)
        trees = [cKDTree(seq[f]) for f in range(t)]
        best, best_i = float("inf"), -1  # best: the smallest sum over the t frames so far
        for i in np.argsort(self.screen(seq[0]), kind="stable")[:SCREEN]:
            total = 0.0
            for f in range(t):  # the frame terms are >= 0: stop once past the best sum
                total += self._frame(seq[f], trees[f], int(i), f)
                if total >= best:
                    break
            else:
                best, best_i = total, int(i)
        return best / t, best_i


def _cache_file(model, stage: str) -> Path:
    return cache_root() / "dnf-prints" / \
        f"{model.sha256[:16]}-{stage}-p{POINTS}-r{RESOLUTION}-v{VERSION}.npz"


def build_prints(model, stage: str, progress: Progress | None = None,
                 cancelled: Callable[[], bool] | None = None) -> TrainingPrints:
    """Decode every training instance of ``model`` at ``stage`` into its print (see module
    docstring); ``progress(stage, fraction, message)`` per instance, ``cancelled()`` polled."""
    from .creature import _check_cancel, mesh_shape

    train = [i for i, inst in enumerate(model.instances)
             if not str(inst.get("split", "train")).startswith("heldout")]
    prints, names = [], []
    for k, i in enumerate(train):
        _check_cancel(cancelled, "cancelled while preparing the copy guard")
        inst = model.instances[i]
        if progress is not None:
            progress("prints", k / len(train), f"copy guard: decoding training instance "
                     f"{k + 1}/{len(train)} (once per model)")
        sv, mv = model.shape_vecs[stage][i], model.motion_vecs[stage][i]
        v, f, _ = mesh_shape(model, stage, sv, RESOLUTION)
        if f.shape[0] == 0:
            continue  # no surface: nothing a creature could copy
        # motion frame k is the instance's frame k, whatever its clip's frame rate
        prints.append(creature_print(model, stage, v, f, sv, mv, 1.0, mv.shape[0], seed=i))
        names.append(str(inst["name"]))
    if not prints:  # no training instance decodes to a surface: nothing to copy
        return TrainingPrints(np.zeros((0, 1, POINTS, 3), np.float32), [])
    t = min(p.shape[0] for p in prints)
    # stored as float16 (the cache file): a fresh build and a cached one give the same prints
    pts = np.stack([p[:t] for p in prints]).astype(np.float16).astype(np.float32)
    return TrainingPrints(pts, names)


_MEMORY: dict[tuple[str, str], TrainingPrints] = {}


def _read(path: Path) -> TrainingPrints | None:
    """The prints in a cache file, or None when it is not a whole one (a damaged or truncated
    file, another layout)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            pts, names = z["points"].astype(np.float32), [str(n) for n in z["names"]]
    except Exception:  # noqa: BLE001 (zip, npy and key errors alike: the file is rebuilt)
        return None
    if pts.ndim != 4 or pts.shape[2:] != (POINTS, 3) or len(names) != pts.shape[0]:
        return None
    return TrainingPrints(pts, names)


def training_prints(model, stage: str, progress: Progress | None = None,
                    cancelled: Callable[[], bool] | None = None) -> TrainingPrints:
    """The prints of ``model``'s training instances at ``stage``: from memory, else from the
    cache file, else built (:func:`build_prints`) and written there (atomically; an unwritable
    cache folder only costs the rebuild next time)."""
    key = (model.sha256, stage)
    if key in _MEMORY:
        return _MEMORY[key]
    path = _cache_file(model, stage)
    prints = None
    if path.is_file():
        prints = _read(path)  # None when damaged: rebuilt below
    if prints is None:
        prints = build_prints(model, stage, progress, cancelled)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz")
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, points=prints.points.astype(np.float16),
                         names=np.array(prints.names))
            os.replace(tmp, path)
        except OSError:
            pass  # an unwritable cache: rebuilt by the next process
    _MEMORY[key] = prints
    return prints
