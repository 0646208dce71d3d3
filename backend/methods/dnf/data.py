"""Training data from 4D sequences: instances, SDF samples, surface correspondences, caching.

An *instance* is one sequence of ``frames`` frames (an animal clip, a procedural creature, a
DeformingThings4D ``.anime``), welded, normalised by its first (canonical) frame to extent 1.8.
Per instance, :func:`sample_instance` stores (shapes with S SDF samples, C correspondences,
Q IoU points, E evaluation points, T frames):

- ``verts`` ``[T, V, 3]``, ``faces`` ``[F, 3]``, ``times`` ``[T]`` (seconds from 0);
- ``sdf_points`` ``[S, 3]`` (uniform in ``[-1, 1]^3`` + near-surface), ``sdf`` ``[S]``;
- ``corr`` ``[T, C, 3]``: the same material points (area-weighted barycentric samples of the
  canonical mesh) in every frame; ``corr[0]`` are canonical points; the first ``corr_surface``
  lie on the surface, the rest are offset along the normal (:func:`_correspondences`);
- ``iou_points`` ``[Q, 3]`` uniform, ``iou_inside`` ``[Q]`` (inside the solid of
  :func:`~.sdf.solid_sdf`: winding number, plus a thin shell around open parts) and
  ``pieces`` (mesh parts joined where they touch: what a decoded shape is compared with):
  stored for held-out instances, computed on demand for evaluated training ones
  (:func:`add_eval_arrays`);
- ``components``, ``open_components``, ``boundary_edges``, ``nonmanifold_edges``;
- ``eval_points`` ``[T, E, 3]`` for Chamfer (E = 2,048 as in the paper);
- ``center`` ``[3]``, ``scale``: the normalisation (:class:`backend.data.NormTransform`).

Each instance is cached as ``<name>-<hash>.npz``; the hash covers the source file's bytes, the
clip and every sampling setting, so a change re-samples only what it affects; the random seed
comes from the hash too, so samples do not depend on which other instances are prepared.
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
    face_components,
    open_faces,
    points_from_bary,
    sample_surface,
    solid_pieces,
    solid_sdf,
)

SAMPLER_VERSION = 2
Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class SourceSpec:
    """Where one instance comes from. ``kind``: animal | creature | procedural | anime (animal
    and creature: a glTF file of ``animals/`` or ``creatures/``); ``split``: train |
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
    held = dict(cfg.held_out_clips)
    species = set(cfg.held_out_species)
    folders = [(cfg.resolved_animals_dir(), "animal", cfg.clips_per_animal),
               (cfg.resolved_creatures_dir(), "creature", cfg.creature_clips)]
    for folder, kind, per_file in folders:
        if folder is None:
            continue
        from backend.data.gltf_reader import list_gltf_clips

        for path in sorted(folder.glob("*.glb")):
            animal = path.stem
            clips = [c for c, _ in list_gltf_clips(path)]
            if animal in species:
                out.append(SourceSpec(f"{animal}|{clips[0]}", kind, "heldout_animal",
                                      str(path), clips[0]))
                continue
            train = [c for c in clips if c != held.get(animal)]
            for c in _spread(train, per_file):
                out.append(SourceSpec(f"{animal}|{c}", kind, "train", str(path), c))
            if animal in held:
                if held[animal] not in clips:
                    raise FormatError(f"{path}: held-out clip {held[animal]!r} not found; "
                                      f"clips: {', '.join(clips)}")
                out.append(SourceSpec(f"{animal}|{held[animal]}", kind, "heldout_clip",
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
    for k in ("animals_dir", "creatures_dir", "creature_clips", "anime_dirs", "clips_per_animal",
              "held_out_species", "held_out_clips", "procedural", "fit_seeds"):
        settings.pop(k)
    h.update(json.dumps([SAMPLER_VERSION, settings, spec.kind, spec.clip, spec.seed, spec.gait],
                        sort_keys=True).encode())
    if spec.path:
        h.update(Path(spec.path).read_bytes())
    return h.hexdigest()[:16]


def sample_instance(seq: MeshSequence, cfg: DataConfig, seed: int = 0,
                    where: str = "", with_eval: bool = True) -> dict[str, np.ndarray]:
    """Weld, normalise and sample one sequence (see module docstring for the arrays);
    ``with_eval`` False leaves out what only evaluation reads (``iou_*``, ``pieces``: see
    :func:`add_eval_arrays`)."""
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
    sdf = solid_sdf(sdf_points, v0, faces, cfg.open_shell)
    corr = _correspondences(seq.vertices, faces, cfg, rng)
    fi, bary = sample_surface(v0, faces, cfg.eval_points, rng)
    eval_points = points_from_bary(seq.vertices, faces, fi, bary)
    opened = open_faces(faces)
    out = {
        "verts": seq.vertices, "faces": faces, "times": seq.times - seq.times[0],
        "sdf_points": sdf_points, "sdf": sdf, "corr": corr, "eval_points": eval_points,
        "corr_surface": np.int64(cfg.corr_points - _offset_count(cfg)),
        "center": tf.center.astype(np.float64), "scale": np.float64(tf.scale),
        "boundary_edges": np.int64(stats["boundary_edges"]),
        "nonmanifold_edges": np.int64(stats["nonmanifold_edges"]),
        "components": np.int64(len(np.unique(face_components(faces)))),
        "open_components": np.int64(len(np.unique(face_components(faces)[opened]))),
    }
    if with_eval:
        out.update(eval_arrays(v0, faces, cfg, seed))
    return out


def eval_arrays(v0: np.ndarray, faces: np.ndarray, cfg: DataConfig,
                seed: int) -> dict[str, np.ndarray]:
    """What only evaluation reads: ``iou_points`` ``[Q, 3]``, ``iou_inside`` ``[Q]`` and
    ``pieces`` (of the canonical mesh ``v0`` ``[V, 3]``, ``faces`` ``[F, 3]``)."""
    rng = np.random.default_rng([seed, 1])
    iou_points = rng.uniform(-1, 1, (cfg.iou_points, 3)).astype(np.float32)
    return {"iou_points": iou_points,
            "iou_inside": solid_sdf(iou_points, v0, faces, cfg.open_shell) < 0,
            "pieces": np.int64(solid_pieces(v0, faces, cfg.pieces_touch, seed=seed))}


def add_eval_arrays(inst: Instance, cfg: DataConfig) -> Instance:
    """Fill in :func:`eval_arrays` of a training instance prepared without them (in place)."""
    if "iou_inside" not in inst.arrays:
        seed = int(source_hash(inst.spec, cfg)[:8], 16)
        inst.arrays.update(eval_arrays(inst["verts"][0], inst["faces"], cfg, seed))
    return inst


def _offset_count(cfg: DataConfig) -> int:
    return int(round(cfg.corr_points * cfg.corr_offset_fraction)) if cfg.corr_offset_sigma else 0


def _correspondences(verts: np.ndarray, faces: np.ndarray, cfg: DataConfig,
                     rng: np.random.Generator) -> np.ndarray:
    """``[T, C, 3]`` material points: the first ``C - k`` on the surface, the last ``k`` offset
    along their triangle's normal in each frame by one fixed uniform ``+-sigma / 2`` each (as
    the public code's flow samples), so motion is also supervised just off the surface."""
    fi, bary = sample_surface(verts[0], faces, cfg.corr_points, rng)
    corr = points_from_bary(verts, faces, fi, bary)
    k = _offset_count(cfg)
    if k:
        tri = np.asarray(verts, dtype=np.float64)[:, faces[fi[-k:]]]  # [T, k, 3, 3]
        n = np.cross(tri[:, :, 1] - tri[:, :, 0], tri[:, :, 2] - tri[:, :, 0])
        n /= np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-12)
        off = (rng.random(k) - 0.5) * cfg.corr_offset_sigma
        corr[:, -k:] += (n * off[None, :, None]).astype(np.float32)
    return corr


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
        digest = source_hash(spec, cfg)
        path = cache / f"{_safe(spec.name)}-{digest}.npz"
        if progress is not None:
            progress(i / len(specs), f"{spec.name} ({'cached' if path.exists() else 'sampling'})")
        arrays = _load_cached(path)
        if arrays is None:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", OpenMeshWarning)
                seq = loader.read(spec)
                arrays = sample_instance(seq, cfg, seed=int(digest[:8], 16),
                                         where=spec.path or spec.name,
                                         with_eval=spec.split != "train")
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
