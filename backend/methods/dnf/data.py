"""Training data from 4D sequences: instances, SDF samples, surface correspondences, caching.

An *instance* is one sequence of ``frames`` frames (an animal clip, a procedural creature, a
DeformingThings4D ``.anime``), welded, normalised by its first (canonical) frame to extent 1.8.
Per instance, :func:`sample_instance` stores (shapes with S SDF samples, C correspondences,
Q IoU points, E evaluation points, T frames):

- ``verts`` ``[T, V, 3]``, ``faces`` ``[F, 3]``, ``times`` ``[T]`` (seconds from 0);
- ``sdf_points`` ``[S, 3]`` (uniform in ``[-1, 1]^3`` + near-surface), ``sdf`` ``[S]``;
- ``corr`` ``[T, C, 3]``: the same material points (area-weighted barycentric samples of the
  canonical mesh) in every frame; ``corr[0]`` are canonical points;
- ``iou_points`` ``[Q, 3]`` uniform, ``iou_inside`` ``[Q]`` (winding-number inside test);
- ``eval_points`` ``[T, E, 3]`` for Chamfer (E = 2,048 as in the paper);
- ``center`` ``[3]``, ``scale``: the normalisation (:class:`backend.data.NormTransform`).

Each instance is cached as ``<name>-<hash>.npz``; the hash covers the source file's bytes, the
clip and every sampling setting, so a change re-samples only what it affects.
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from backend.data import normalize, weld
from backend.data.anime import read_anime
from backend.data.gltf_reader import GltfAnimation
from backend.data.procedural import make_creature_sequence
from backend.data.weld import WeldConfig
from shared.errors import FormatError
from shared.meshseq import MeshSequence

from .config import DataConfig
from .sdf import (
    OpenMeshWarning,
    check_mesh,
    distance_and_winding,
    points_from_bary,
    sample_surface,
)

SAMPLER_VERSION = 1
Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class SourceSpec:
    """Where one instance comes from. ``kind``: animal | procedural | anime; ``split``: train |
    heldout_clip | heldout_animal | fit."""

    name: str
    kind: str
    split: str
    path: str = ""
    clip: str = ""
    seed: int = 0
    gait: str = ""


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")


def _spread(items: list, count: int) -> list:
    if count <= 0 or count >= len(items):
        return list(items)
    idx = np.unique(np.round(np.linspace(0, len(items) - 1, count)).astype(int))
    return [items[i] for i in idx]


def list_sources(cfg: DataConfig) -> list[SourceSpec]:
    """Every instance the config asks for, training and held-out, in a stable order."""
    out: list[SourceSpec] = []
    animals = cfg.resolved_animals_dir()
    held = dict(cfg.held_out_clips)
    if animals is not None:
        from backend.data.gltf_reader import list_gltf_clips

        for path in sorted(animals.glob("*.glb")):
            animal = path.stem
            clips = [c for c, _ in list_gltf_clips(path)]
            if animal == cfg.held_out_animal:
                out.append(SourceSpec(f"{animal}|{clips[0]}", "animal", "heldout_animal",
                                      str(path), clips[0]))
                continue
            train = [c for c in clips if c != held.get(animal)]
            for c in _spread(train, cfg.clips_per_animal):
                out.append(SourceSpec(f"{animal}|{c}", "animal", "train", str(path), c))
            if animal in held:
                if held[animal] not in clips:
                    raise FormatError(f"{path}: held-out clip {held[animal]!r} not found; "
                                      f"clips: {', '.join(clips)}")
                out.append(SourceSpec(f"{animal}|{held[animal]}", "animal", "heldout_clip",
                                      str(path), held[animal]))
    for d in cfg.anime_dirs:
        files = sorted(Path(d).rglob("*.anime"))
        if not files:
            raise FormatError(f"{d}: no .anime files found (DeformingThings4D folder expected)")
        for f in files:
            out.append(SourceSpec(f"dt4d|{f.stem}", "anime", "train", str(f)))
    for seed, gait in cfg.procedural:
        out.append(SourceSpec(f"creature_{seed}|{gait}", "procedural", "train", seed=seed,
                              gait=gait))
    for seed in cfg.fit_seeds:
        out.append(SourceSpec(f"creature_{seed}|walk", "procedural", "fit", seed=seed,
                              gait="walk"))
    return out


def frame_times(duration: float, cfg: DataConfig) -> np.ndarray:
    """``frames`` times from 0 at ``fps``, squeezed evenly into shorter clips."""
    span = (cfg.frames - 1) / cfg.fps
    if duration >= span or duration <= 0:
        return np.arange(cfg.frames, dtype=np.float64) / cfg.fps
    return np.linspace(0.0, duration, cfg.frames)


class SequenceLoader:
    """Reads :class:`SourceSpec` sequences (keeps each glTF parsed once)."""

    def __init__(self, cfg: DataConfig):
        self.cfg = cfg
        self._gltf: dict[str, GltfAnimation] = {}

    def read(self, spec: SourceSpec) -> MeshSequence:
        cfg = self.cfg
        if spec.kind == "procedural":
            return make_creature_sequence(spec.seed, spec.gait, cfg.frames, cfg.fps)
        if spec.kind == "anime":
            seq = read_anime(spec.path)
            if seq.frame_count < cfg.frames:
                raise FormatError(f"{spec.path}: {seq.frame_count} frames, DNF needs at least "
                                  f"{cfg.frames}")
            return seq.slice_frames(0, cfg.frames)
        if spec.path not in self._gltf:
            self._gltf[spec.path] = GltfAnimation(spec.path)
        anim = self._gltf[spec.path]
        info = anim.clip(spec.clip)
        if not anim.animates_mesh(info):
            raise FormatError(f"{spec.path}: clip {info.name!r} animates no mesh")
        times = frame_times(info.duration, cfg)
        return MeshSequence(anim.sample(info, times), anim.faces, times,
                            name=f"{Path(spec.path).stem}|{info.name}")


def source_hash(spec: SourceSpec, cfg: DataConfig) -> str:
    """Content hash of one instance's inputs and sampling settings (16 hex digits)."""
    h = hashlib.sha256()
    settings = asdict(cfg)
    for k in ("animals_dir", "anime_dirs", "clips_per_animal", "held_out_animal",
              "held_out_clips", "procedural", "fit_seeds"):
        settings.pop(k)
    h.update(json.dumps([SAMPLER_VERSION, settings, spec.kind, spec.clip, spec.seed, spec.gait],
                        sort_keys=True).encode())
    if spec.path:
        h.update(Path(spec.path).read_bytes())
    return h.hexdigest()[:16]


def sample_instance(seq: MeshSequence, cfg: DataConfig, seed: int = 0,
                    where: str = "") -> dict[str, np.ndarray]:
    """Weld, normalise and sample one sequence (see module docstring for the arrays)."""
    where = where or seq.name or "mesh"
    if seq.faces.size == 0:
        check_mesh(seq.vertices[0], seq.faces, where)  # raises: no faces
    seq = weld(seq, WeldConfig(rel_tol=cfg.weld_rel_tol))
    seq, tf = normalize(seq, cfg.extent)
    v0, faces = seq.vertices[0], seq.faces
    stats = check_mesh(v0, faces, where)
    rng = np.random.default_rng(seed)
    pts = [rng.uniform(-1, 1, (cfg.sdf_uniform, 3))]
    n_sig = len(cfg.near_sigmas)
    for i, sigma in enumerate(cfg.near_sigmas):
        n = cfg.sdf_near // n_sig + (1 if i < cfg.sdf_near % n_sig else 0)
        fi, bary = sample_surface(v0, faces, n, rng)
        pts.append(points_from_bary(v0, faces, fi, bary) + rng.normal(0, sigma, (n, 3)))
    sdf_points = np.concatenate(pts).astype(np.float32)
    dist, wind = distance_and_winding(sdf_points, v0, faces)
    sdf = np.where(np.abs(wind) > 0.5, -dist, dist).astype(np.float32)
    iou_points = rng.uniform(-1, 1, (cfg.iou_points, 3)).astype(np.float32)
    iou_inside = np.abs(distance_and_winding(iou_points, v0, faces)[1]) > 0.5
    fi, bary = sample_surface(v0, faces, cfg.corr_points, rng)
    corr = points_from_bary(seq.vertices, faces, fi, bary)
    fi, bary = sample_surface(v0, faces, cfg.eval_points, rng)
    eval_points = points_from_bary(seq.vertices, faces, fi, bary)
    return {
        "verts": seq.vertices, "faces": faces, "times": seq.times - seq.times[0],
        "sdf_points": sdf_points, "sdf": sdf, "corr": corr, "iou_points": iou_points,
        "iou_inside": iou_inside, "eval_points": eval_points,
        "center": tf.center.astype(np.float64), "scale": np.float64(tf.scale),
        "boundary_edges": np.int64(stats["boundary_edges"]),
    }


@dataclass
class Instance:
    """One cached instance: its spec and arrays (see module docstring)."""

    spec: SourceSpec
    arrays: dict[str, np.ndarray]

    @property
    def name(self) -> str:
        return self.spec.name

    def __getitem__(self, key: str) -> np.ndarray:
        return self.arrays[key]


def prepare(cfg: DataConfig, cache_dir: str | Path, progress: Progress | None = None,
            splits: tuple[str, ...] | None = None) -> list[Instance]:
    """Sample (or load from cache) every instance of ``cfg``; ``progress(fraction, message)``.

    Open or non-manifold meshes are accepted; their :class:`OpenMeshWarning` is re-issued once
    per source file.
    """
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    specs = [s for s in list_sources(cfg) if splits is None or s.split in splits]
    if not specs:
        raise FormatError(
            "no DNF training data: the animals folder was not found (set ANIM4D_SHARED_DATA or "
            "DataConfig.animals_dir) and no procedural creatures or .anime folders are configured"
        )
    loader = SequenceLoader(cfg)
    out: list[Instance] = []
    warned: set[str] = set()
    for i, spec in enumerate(specs):
        path = cache / f"{_safe(spec.name)}-{source_hash(spec, cfg)}.npz"
        if progress is not None:
            progress(i / len(specs), f"{spec.name} ({'cached' if path.exists() else 'sampling'})")
        arrays = _load_cached(path)
        if arrays is None:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", OpenMeshWarning)
                seq = loader.read(spec)
                arrays = sample_instance(seq, cfg, seed=i, where=spec.path or spec.name)
            for w in caught:
                key = spec.path or spec.name
                if issubclass(w.category, OpenMeshWarning) and key not in warned:
                    warned.add(key)
                    warnings.warn(str(w.message), OpenMeshWarning, stacklevel=2)
            tmp = path.with_name(path.name + ".tmp.npz")
            np.savez(tmp, **arrays)
            tmp.replace(path)
        out.append(Instance(spec, arrays))
    if progress is not None:
        progress(1.0, f"{len(out)} instances")
    return out


def _load_cached(path: Path) -> dict[str, np.ndarray] | None:
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError):
        return None
