"""Sampled coefficients -> animated creatures: mesh once, then displace; stored for re-evaluation.

A creature is a shape vector ``[D_s]`` and motion vectors ``[T, D_m]`` of one dictionary stage,
the motion at the training data's frame rate ``motion_fps`` (frame k at ``k / motion_fps``
seconds, frame 0 the rest pose). Its mesh sequence:

1. the canonical mesh: marching cubes once over the SDF of the shape vector, the grid evaluated
   coarse to fine near the surface (:mod:`.mc`; it meshes as the dense grid);
2. frame at time t: the canonical vertices moved by the motion field at the motion vector of
   time t. Requested times between motion frames use the *linear interpolation of the two
   neighbouring motion vectors* (pose code and coefficients), evaluated through the field: the
   vertices follow the field's motion at those coefficients, not a blend of the two frames'
   vertex positions. Times at motion frames use those frames' vectors exactly.

:class:`Creatures` keeps what re-evaluation needs (vectors, canonical vertices and faces, the
transform to output units, seed, model and generator hashes) in ``coefficients.safetensors``
(tensors) with its JSON header metadata; ``creature.resample`` and ``creature.blend`` read it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from backend.data.mesh_pieces import drop_small_pieces
from shared.errors import FormatError

from ..decode import displace, interpolate_vectors, marching_cubes, query_sdf
from ..metrics import chamfer, surface_points
from .mc import sdf_grid_fine

COEFF_FORMAT = "anim4d-dnf-creatures"
COEFF_FILE = "coefficients.safetensors"


@dataclass
class Creatures:
    """``shapes`` ``[n, D_s]``, ``motions`` ``[n, T, D_m]`` (float32, ``stage``'s layouts),
    ``canonical`` n vertex arrays ``[V_i, 3]`` in normalised units, ``faces`` n ``[F_i, 3]``,
    ``transforms`` n ``(center [3], scale)``: output = ``v / scale + center``."""

    shapes: torch.Tensor
    motions: torch.Tensor
    motion_fps: float
    stage: str
    canonical: list[np.ndarray]
    faces: list[np.ndarray]
    transforms: list[tuple[list[float], float]]
    meta: dict = field(default_factory=dict)

    @property
    def count(self) -> int:
        return int(self.shapes.shape[0])

    @property
    def duration(self) -> float:
        """Seconds covered by the motion frames."""
        return (self.motions.shape[1] - 1) / self.motion_fps

    def motion_times(self) -> np.ndarray:
        return np.arange(self.motions.shape[1], dtype=np.float64) / self.motion_fps

    def save(self, path: Path) -> Path:
        t = {"shapes": self.shapes.float().contiguous(),
             "motions": self.motions.float().contiguous()}
        for i, (v, f) in enumerate(zip(self.canonical, self.faces, strict=True)):
            t[f"canonical_{i}"] = torch.from_numpy(np.ascontiguousarray(v, np.float32))
            t[f"faces_{i}"] = torch.from_numpy(np.ascontiguousarray(f, np.int32))
        head = {"motion_fps": self.motion_fps, "stage": self.stage,
                "transforms": self.transforms, **self.meta}
        save_file(t, str(path), metadata={"format": COEFF_FORMAT, "meta": json.dumps(head)})
        return Path(path)

    @classmethod
    def load(cls, path: Path, where: str = "") -> Creatures:
        where = where or str(path)
        try:
            with safe_open(str(path), "pt") as f:
                md = f.metadata() or {}
                if md.get("format") != COEFF_FORMAT:
                    raise FormatError(f"{where}: not DNF creature coefficients")
                t = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open API)
            head = json.loads(md["meta"])
            n = t["shapes"].shape[0]
            canon = [t[f"canonical_{i}"].numpy() for i in range(n)]
            faces = [t[f"faces_{i}"].numpy() for i in range(n)]
        except FormatError:
            raise
        except Exception as err:  # safetensors / json / missing keys
            raise FormatError(f"{where}: cannot read creature coefficients ({err})") from None
        meta = {k: v for k, v in head.items() if k not in ("motion_fps", "stage", "transforms")}
        return cls(t["shapes"], t["motions"], float(head["motion_fps"]), head["stage"], canon,
                   faces, [(list(c), float(s)) for c, s in head["transforms"]], meta)


MOTION_REDRAWS = 4
SHAPE_REDRAWS = 4
#: whole-creature redraws of a copy of a training instance (``min_novelty``)
NOVELTY_REDRAWS = 8
#: surface samples per creature for ``min_chamfer`` (as the metrics: 2,048)
SPREAD_POINTS = 2048


def _nearest(pts: np.ndarray, others: list[np.ndarray]) -> float:
    """Smallest Chamfer distance from ``pts`` to any of ``others`` (inf when none)."""
    return min((chamfer(pts, o) for o in others), default=float("inf"))


def _check_cancel(cancelled, message: str) -> None:
    if cancelled is not None and cancelled():
        from backend.jobs.api import JobCancelled

        raise JobCancelled(message)


def shape_spacing(model, stage: str) -> float:
    """Median distance of each training shape vector to its nearest other one: the
    dictionary's own spacing, the unit of ``min_spread``."""
    v = model.shape_vecs[stage].double()
    if v.shape[0] < 2:
        return 0.0
    d = torch.cdist(v, v)
    d.fill_diagonal_(float("inf"))
    return float(d.min(1).values.quantile(0.5))


def distinct_shapes(shape_gen, shapes: torch.Tensor, min_dist: float, seed: int,
                    steps: int) -> list[int]:
    """Redraw (in place, up to :data:`SHAPE_REDRAWS` times, with seeds derived from ``seed``)
    each shape vector of ``shapes`` ``[n, D_s]`` nearer than ``min_dist`` to an earlier one, so a
    batch holds different creatures (a generator can land twice on one mode). Returns which
    draw each kept (0: the first)."""
    redraws = [0] * shapes.shape[0]
    for i in range(1, shapes.shape[0]):
        for k in range(1, SHAPE_REDRAWS + 1):
            if min_dist <= 0 or float(torch.cdist(shapes[i:i + 1].double(),
                                                  shapes[:i].double()).min()) >= min_dist:
                break
            shapes[i] = shape_gen.sample(1, seed=seed + 104_729 * k + i, steps=steps)[0]
            redraws[i] = k
    return redraws


def motion_share(canonical: np.ndarray, seq: np.ndarray) -> float:
    """Mean distance of the vertices of ``seq`` ``[Q, V, 3]`` from where they are in its first
    frame, over the other frames, as a share of the ``canonical`` ``[V, 3]`` bounding-box
    diagonal (0 for one frame)."""
    if len(seq) < 2:
        return 0.0
    diag = float(np.linalg.norm(canonical.max(0) - canonical.min(0))) or 1.0
    return float(np.linalg.norm(seq[1:] - seq[:1], axis=-1).mean()) / diag


def motion_frames_for(times: np.ndarray, motion_fps: float) -> int:
    """Motion frames (at ``motion_fps``) needed to cover ``times`` (seconds from 0)."""
    end = float(np.max(times)) if len(times) else 0.0
    return int(np.ceil(end * motion_fps - 1e-9)) + 1


def mesh_shape(model, stage: str, shape_vec: torch.Tensor, resolution: int,
               stride: int = 8, min_piece: float = 0.0) -> tuple[np.ndarray, np.ndarray, dict]:
    """Canonical mesh (vertices ``[V, 3]``, faces ``[F, 3]``) of one shape vector ``[D_s]``
    and the grid's evaluation counts (:func:`.mc.sdf_grid_fine`); pieces under ``min_piece`` of
    the surface area are dropped (:func:`drop_small_pieces`; ``info["dropped_pieces"]``)."""
    rep = model.shape_rep(stage)
    stride = min(stride, 4 if resolution < 64 else 8, 1 if resolution < 24 else 8)
    grid, info = sdf_grid_fine(lambda p: query_sdf(rep, shape_vec, p), resolution, stride=stride)
    verts, faces = marching_cubes(grid)
    verts, faces, dropped = drop_small_pieces(verts, faces, min_piece)
    info = {**info, "dropped_pieces": dropped}
    return verts, faces, info



def animate(model, stage: str, verts: np.ndarray, shape_vec: torch.Tensor,
            motion_vecs: torch.Tensor, motion_fps: float, times: np.ndarray) -> np.ndarray:
    """Canonical ``verts`` ``[V, 3]`` at ``times`` ``[Q]`` -> ``[Q, V, 3]`` (module docstring:
    motion vectors interpolated linearly between motion frames, then the field)."""
    ft = np.arange(motion_vecs.shape[0], dtype=np.float64) / motion_fps
    vecs = interpolate_vectors(ft, motion_vecs.float(), np.asarray(times, np.float64))
    return displace(model.motion_rep(stage), verts, model.shape_code(stage, shape_vec), vecs)


def to_output(verts: np.ndarray, transform: tuple[list[float], float]) -> np.ndarray:
    center, scale = transform
    return (np.asarray(verts, np.float64) / scale + np.asarray(center)).astype(np.float32)


def project_to_surface(model, stage: str, shape_vec: torch.Tensor, verts: np.ndarray,
                       iters: int = 3, chunk: int = 32_768) -> np.ndarray:
    """``verts`` ``[V, 3]`` moved onto the zero level set of ``shape_vec``'s SDF by Newton steps
    along its gradient (``v <- v - f(v) grad f / |grad f|^2``), ``iters`` times."""
    rep = model.shape_rep(stage)
    vec = shape_vec.reshape(1, -1).float()
    out = torch.as_tensor(np.asarray(verts), dtype=torch.float32).clone()
    for s in range(0, out.shape[0], chunk):
        p = out[s:s + chunk]
        for _ in range(iters):
            x = p.clone().requires_grad_(True)
            f = rep(x[None], vec)[0, :, 0]
            (g,) = torch.autograd.grad(f.sum(), x)
            with torch.no_grad():
                step = f[:, None] * g / (g * g).sum(-1, keepdim=True).clamp_min(1e-8)
                p = (p - step.clamp(-0.1, 0.1)).detach()
        out[s:s + chunk] = p
    return out.numpy()


def sample_creatures(model, shape_gen, motion_gen, n: int, times: np.ndarray, seed: int,
                     steps: int, resolution: int, stage: str = "d", progress=None,
                     cancelled=None, min_piece: float = 0.0, min_motion: float = 0.0,
                     min_spread: float = 0.0, min_chamfer: float = 0.0,
                     min_novelty: float = 0.0) -> tuple[Creatures, list[np.ndarray]]:
    """Sample ``n`` creatures and their vertices at ``times`` (seconds from 0).

    Returns the :class:`Creatures` (normalised units, identity transforms) and n vertex arrays
    ``[Q, V_i, 3]``. ``progress(stage, fraction, message)`` per diffusion step (fractions of
    each sampling stage) and per creature meshed; ``cancelled()`` is polled between steps.
    ``min_piece``: surface pieces under this share of a creature's area are dropped
    (:func:`drop_small_pieces`; ``meta["dropped_pieces"]`` counts them per creature).
    ``min_motion``: a creature whose motion moves its vertices less than this share of its
    bounding-box diagonal (:func:`motion_share`; an idle) gets its motion redrawn with the next
    seeds, up to :data:`MOTION_REDRAWS` times, and keeps the draw that moves most
    (``meta["motion_redraws"]``: which draw, per creature; 0 = the first). Motion is
    conditioned on the shape, so a shape that the generator learnt to idle can stay below the
    threshold: the presets therefore train the motion diffusion without the still clips
    (:mod:`.clips`), and the redraw is the fallback. ``min_spread``: a shape nearer than this
    many times the dictionary's own spacing (:func:`shape_spacing`) to an earlier one of the
    batch is redrawn (:func:`distinct_shapes`; ``meta["shape_redraws"]``). ``min_chamfer``: a
    creature whose canonical surface is nearer than this (symmetric squared Chamfer of
    :data:`SPREAD_POINTS` surface samples, normalised units) to an earlier one's is redrawn with
    the next seeds, up to :data:`SHAPE_REDRAWS` times, and the draw farthest from the others
    stays (``meta["surface_redraws"]``): near vectors are not the only twins, since the flat
    vector's dimensions matter very unequally to the surface. Shapes are meshed (and redrawn)
    before the motion is sampled for them. ``min_novelty``: a creature within this of a
    training instance beyond that instance's sampling floor (:mod:`.novelty`: the copy check's
    sequence Chamfer, normalised units; prints meshed at ``resolution`` with ``min_piece``) is
    a copy; it is redrawn whole (shape, then motion; a redraw must leave the twin and motion
    guards no worse, :func:`_redraw_copies`; ``min_spread`` is not checked again), up to
    :data:`NOVELTY_REDRAWS` times, and the draw farthest from the training set stays
    (``meta["novelty"]``: each creature's novelty against its nearest training instance,
    ``meta["nearest_training"]``, ``meta["novelty_redraws"]``; a creature kept from a copy
    redraw has 0 in the other guards' records).
    """
    motion_fps = float(motion_gen.info.get("frame_rate") or model.preset.data.fps)
    shapes = shape_gen.sample(n, seed=seed, steps=steps, progress=progress, cancelled=cancelled)
    shape_redraws = distinct_shapes(shape_gen, shapes, min_spread * shape_spacing(model, stage),
                                     seed, steps)
    canon, faces, dropped, surface_redraws = [], [], [], [0] * n
    surfaces: list[np.ndarray] = []  # canonical surface samples, for min_chamfer
    for i in range(n):
        _check_cancel(cancelled, f"cancelled before meshing creature {i + 1} of {n}")
        if progress is not None:
            progress("mesh", i / n, f"marching cubes, creature {i + 1}/{n}")
        v, f, info = mesh_shape(model, stage, shapes[i], resolution, min_piece=min_piece)
        if f.shape[0] == 0:
            raise FormatError(f"sampled creature {i + 1} (seed {seed}) has no surface: its SDF "
                              "does not cross zero; try another seed")
        if min_chamfer > 0:
            pts = surface_points(v, f, SPREAD_POINTS, seed=i)
            near = _nearest(pts, surfaces)
        for k in range(1, SHAPE_REDRAWS + 1):  # a twin of an earlier creature: redraw the shape
            if min_chamfer <= 0 or near >= min_chamfer:
                break
            _check_cancel(cancelled, f"cancelled while redrawing creature {i + 1}'s shape")
            cand = shape_gen.sample(1, seed=seed + 15_485_863 * k + i, steps=steps)[0]
            cv, cf, cinfo = mesh_shape(model, stage, cand, resolution, min_piece=min_piece)
            if cf.shape[0] == 0:
                continue
            cpts = surface_points(cv, cf, SPREAD_POINTS, seed=i)
            cnear = _nearest(cpts, surfaces)
            if cnear > near:
                shapes[i], v, f, info, pts, near = cand, cv, cf, cinfo, cpts, cnear
                surface_redraws[i] = k
        if min_chamfer > 0:
            surfaces.append(pts)
        dropped.append(info["dropped_pieces"])
        canon.append(v)
        faces.append(f)
    frames = motion_frames_for(times, motion_fps)
    motions = motion_gen.sample(shapes, frames, seed=seed + 1, steps=steps, progress=progress,
                                cancelled=cancelled)
    seqs, redraws = [], [0] * n
    for i in range(n):
        v = canon[i]
        seq = animate(model, stage, v, shapes[i], motions[i], motion_fps, times)
        best = motion_share(v, seq)
        for k in range(1, MOTION_REDRAWS + 1):  # an idle draw: redraw this creature's motion
            if min_motion <= 0 or best >= min_motion:
                break
            _check_cancel(cancelled, f"cancelled while redrawing creature {i + 1}'s motion")
            m = motion_gen.sample(shapes[i:i + 1], frames, seed=seed + 1 + 7919 * k + i,
                                  steps=steps)[0]
            s = animate(model, stage, v, shapes[i], m, motion_fps, times)
            share = motion_share(v, s)
            if share > best:
                motions[i], seq, best, redraws[i] = m, s, share, k
        seqs.append(seq)
    novelty = None
    if min_novelty > 0:
        draw = _Draw(model, stage, shape_gen, motion_gen, times, motion_fps, frames, seed, steps,
                     resolution, min_piece, cancelled)
        novelty = _redraw_copies(draw, shapes, motions, canon, faces, seqs, surfaces, dropped,
                                 min_novelty, min_chamfer, min_motion, progress)
        for i, k in enumerate(novelty.get("novelty_redraws", [])):
            if k:  # the creature is a copy redraw's: the other guards' records were its first's
                shape_redraws[i] = surface_redraws[i] = redraws[i] = 0
    ident = [([0.0, 0.0, 0.0], 1.0)] * n
    meta = {"seed": int(seed), "steps": int(steps), "model_sha256": model.sha256,
            "resolution": int(resolution), "min_piece": float(min_piece),
            "dropped_pieces": dropped, "min_motion": float(min_motion),
            "motion_redraws": redraws, "min_spread": float(min_spread),
            "shape_redraws": shape_redraws, "min_chamfer": float(min_chamfer),
            "surface_redraws": surface_redraws, "min_novelty": float(min_novelty)}
    if novelty is not None:
        meta.update(novelty)
    return Creatures(shapes, motions, motion_fps, stage, canon, faces, ident, meta), seqs


@dataclass
class _Draw:
    """What a whole-creature redraw needs (:func:`_redraw_copies`)."""

    model: object
    stage: str
    shape_gen: object
    motion_gen: object
    times: np.ndarray
    motion_fps: float
    frames: int
    seed: int
    steps: int
    resolution: int
    min_piece: float
    cancelled: object

    def creature(self, i: int, k: int):
        """Draw ``k`` of creature ``i``: (shape ``[D_s]``, verts, faces, motion ``[M, D_m]``,
        vertices ``[Q, V, 3]``, dropped pieces), or None when the shape has no surface."""
        _check_cancel(self.cancelled, f"cancelled while redrawing creature {i + 1}")
        s = self.seed + 32_452_843 * k + i
        shape = self.shape_gen.sample(1, seed=s, steps=self.steps)[0]
        v, f, info = mesh_shape(self.model, self.stage, shape, self.resolution,
                                min_piece=self.min_piece)
        if f.shape[0] == 0:
            return None
        motion = self.motion_gen.sample(shape[None], self.frames, seed=s + 1, steps=self.steps)[0]
        seq = animate(self.model, self.stage, v, shape, motion, self.motion_fps, self.times)
        return shape, v, f, motion, seq, info["dropped_pieces"]

    def distance(self, prints, i: int, v, f, shape, motion) -> tuple[float, int]:
        from .novelty import creature_print

        return prints.nearest(creature_print(self.model, self.stage, v, f, shape, motion,
                                             self.motion_fps, min(self.frames, prints.frames),
                                             seed=i))


def _redraw_copies(draw: _Draw, shapes, motions, canon, faces, seqs, surfaces, dropped,
                   min_novelty, min_chamfer, min_motion, progress) -> dict:
    """Redraw (in place) each creature nearer than ``min_novelty`` to a training instance (see
    :func:`sample_creatures`). A redraw replaces the creature when it is farther from the
    training set and leaves the other guards no worse: its surface at least ``min_chamfer``
    from the other creatures' (or as far as the creature's own was, when that was less) and its
    motion at least ``min_motion`` (or as much as the creature's own). Returns the meta
    entries."""
    from .novelty import training_prints

    prints = training_prints(draw.model, draw.stage, draw.resolution, draw.min_piece, progress,
                             draw.cancelled)
    if not prints.names:  # no training instance has a surface: nothing can be copied
        return {}
    n = len(canon)
    dist, near, redraws = [0.0] * n, [0] * n, [0] * n
    for i in range(n):
        if progress is not None:
            progress("novelty", i / n, f"copy check, creature {i + 1}/{n}")
        dist[i], near[i] = draw.distance(prints, i, canon[i], faces[i], shapes[i], motions[i])
        if dist[i] >= min_novelty:
            continue
        others = surfaces[:i] + surfaces[i + 1:]
        twin_bar = min(min_chamfer, _nearest(surfaces[i], others)) if min_chamfer > 0 else 0.0
        move_bar = min(min_motion, motion_share(canon[i], seqs[i])) if min_motion > 0 else 0.0
        for k in range(1, NOVELTY_REDRAWS + 1):
            if dist[i] >= min_novelty:
                break
            got = draw.creature(i, k)
            if got is None:
                continue
            shape, v, f, motion, seq, lost = got
            if move_bar > 0 and motion_share(v, seq) < move_bar:
                continue
            pts = surface_points(v, f, SPREAD_POINTS, seed=i) if min_chamfer > 0 else None
            if pts is not None and _nearest(pts, others) < twin_bar:
                continue
            d, j = draw.distance(prints, i, v, f, shape, motion)
            if d > dist[i]:
                shapes[i], motions[i], canon[i], faces[i], seqs[i] = shape, motion, v, f, seq
                dropped[i] = lost
                dist[i], near[i], redraws[i] = d, j, k
                if pts is not None:
                    surfaces[i] = pts
    return {"novelty": [float(d) for d in dist],
            "nearest_training": [prints.names[j] if j >= 0 else "" for j in near],
            "novelty_redraws": redraws}
