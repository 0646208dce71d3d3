"""Fit new instances with everything shared frozen: a new mesh's shape vector, or held-out clips.

``fit_shape_mesh(model, verts, faces)`` samples SDF values of the mesh exactly as training did
(weld, normalise to extent 1.8, uniform + near-surface points, winding-number signs: an open
mesh gets an :class:`~.sdf.OpenMeshWarning` and is still fitted) and optimises one flat shape
vector of the chosen stage from the mean training vector, the dictionary frozen. Part 2 uses
this to start the generation of motion for an artist's own creature.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from backend.data import read_sequence
from shared.errors import FormatError
from shared.meshseq import MeshSequence

from .data import sample_instance
from .train import FieldRep, Report, TrainData, _no_report, motion_loss, optimise, shape_loss


def sdf_loss_full(rep: FieldRep, vecs: torch.Tensor, points: torch.Tensor, sdf: torch.Tensor,
                  clamp: float, chunk: int = 16_384) -> float:
    """Clamped L1 SDF error over every sample (``vecs`` ``[N, D]``, ``points`` ``[N, S, 3]``)."""
    total = 0.0
    with torch.no_grad():
        for s in range(0, points.shape[1], chunk):
            pred = rep(points[:, s:s + chunk], vecs)[..., 0]
            gt = sdf[:, s:s + chunk]
            total += float((pred.clamp(-clamp, clamp) - gt.clamp(-clamp, clamp)).abs().sum())
    return total / sdf.numel()


@dataclass
class ShapeFit:
    """A fitted shape: ``vector`` ``[D]`` of ``stage`` (layout in the model), the mean vector it
    started from, the full-sample clamped SDF loss before and after, the normalisation."""

    name: str
    stage: str
    vector: torch.Tensor
    init: torch.Tensor
    loss_before: float
    loss_after: float
    history: list[float] = field(default_factory=list)
    center: list[float] = field(default_factory=list)
    scale: float = 1.0
    layout: dict = field(default_factory=dict)

    def save(self, path: Path) -> None:
        """``<path>.safetensors`` (``vector``, ``init``) and ``<path>.json`` (the rest)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({"vector": self.vector.contiguous(), "init": self.init.contiguous()},
                  str(path.with_suffix(".safetensors")))
        meta = {"name": self.name, "stage": self.stage, "loss_before": self.loss_before,
                "loss_after": self.loss_after, "center": self.center, "scale": self.scale,
                "layout": self.layout}
        path.with_suffix(".json").write_text(json.dumps(meta, indent=1))


def mean_shape_vector(model, stage: str) -> torch.Tensor:
    """The mean training shape vector ``[D]`` of ``stage`` (the fitting start)."""
    return model.shape_vecs[stage].mean(0)


def fit_shape_arrays(model, arrays: dict, stage: str = "d", iters: int = 0, lr: float = 0.0,
                     name: str = "", report: Report = _no_report) -> ShapeFit:
    """Fit one shape vector to sampled ``arrays`` (from :func:`~.data.sample_instance`)."""
    ev, tc = model.preset.eval, model.preset.train
    iters = iters or ev.fit_iters
    lr = lr or ev.fit_lr
    rep = model.shape_rep(stage)
    pts = torch.as_tensor(arrays["sdf_points"], dtype=torch.float32)[None]
    sdf = torch.as_tensor(arrays["sdf"], dtype=torch.float32)[None]
    data = TrainData([name], pts, sdf, torch.as_tensor(arrays["corr"])[None].float(),
                     torch.as_tensor(arrays["times"])[None].float())
    init = mean_shape_vector(model, stage)[None]
    clamp = model.preset.shape.clamp
    before = sdf_loss_full(rep, init, pts, sdf, clamp)
    loss = shape_loss(data, min(4 * tc.shape_points, pts.shape[1]), clamp, tc.code_reg)
    vec, hist = optimise(rep, init, loss, iters, 1, lr, report=report, stage="fit-shape")
    after = sdf_loss_full(rep, vec, pts, sdf, clamp)
    return ShapeFit(name, stage, vec[0], init[0], before, after, hist,
                    [float(c) for c in arrays["center"]], float(arrays["scale"]),
                    rep.layout.to_json())


def fit_shape_mesh(model, verts: np.ndarray, faces: np.ndarray, name: str = "mesh",
                   stage: str = "d", iters: int = 0, lr: float = 0.0,
                   report: Report = _no_report) -> ShapeFit:
    """Fit the shape vector of a static mesh (``verts`` ``[V, 3]``, ``faces`` ``[F, 3]``).

    Raises :class:`~shared.errors.FormatError` naming ``name`` for a mesh without faces; warns
    :class:`~.sdf.OpenMeshWarning` for an open one.
    """
    seq = MeshSequence(np.asarray(verts, dtype=np.float32)[None], faces, np.zeros(1), name=name)
    arrays = sample_instance(seq, model.preset.data, where=name, with_eval=False)
    return fit_shape_arrays(model, arrays, stage, iters, lr, name, report)


def read_static_mesh(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(verts [V, 3], faces [F, 3])`` of a mesh file (see :func:`read_static_mesh_uvs`)."""
    verts, faces, _ = read_static_mesh_uvs(path)
    return verts, faces


def read_static_mesh_uvs(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``(verts [V, 3], faces [F, 3], per-vertex uvs [V, 2] or None)`` of a mesh file: frame 0 of
    an ``.anime``/``.npz`` sequence, else the whole scene of a static or animated ``.glb``/
    ``.gltf``/``.obj``/``.ply``/``.stl``/``.off`` as trimesh loads it (rest pose, vertices not
    merged, so the order and count are the file's). Errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FormatError(f"{path}: no such mesh file")
    if path.suffix.lower() in (".anime", ".npz"):
        seq = read_sequence(path)
        return seq.vertices[0], seq.faces, seq.uvs
    import trimesh

    try:
        mesh = trimesh.load(str(path), force="mesh", process=False)
    except Exception as err:  # trimesh raises many types for unreadable files
        raise FormatError(f"{path.name}: cannot read as a mesh ({err})") from None
    verts = np.asarray(getattr(mesh, "vertices", np.zeros((0, 3))), dtype=np.float32)
    faces = np.asarray(getattr(mesh, "faces", np.zeros((0, 3))), dtype=np.int64)
    uv = getattr(getattr(mesh, "visual", None), "uv", None)
    uvs = np.asarray(uv, np.float32) if uv is not None and len(uv) == len(verts) else None
    return verts, faces, uvs


def fit_shape_file(model, path: Path, stage: str = "d", iters: int = 0,
                   report: Report = _no_report) -> ShapeFit:
    """Fit a mesh file (see :func:`read_static_mesh`)."""
    verts, faces = read_static_mesh(path)
    return fit_shape_mesh(model, verts, faces, str(path), stage, iters, 0.0, report)


def fit_instances(model, stage: str, data: TrainData, iters: int = 0, lr: float = 0.0,
                  report: Report = _no_report) -> tuple[torch.Tensor, torch.Tensor]:
    """Fit shape ``[N, D_s]`` then per-frame motion ``[N, T, D_m]`` vectors of held-out
    instances (all shared parameters frozen), starting from the mean training vectors."""
    ev, tc = model.preset.eval, model.preset.train
    iters = iters or ev.fit_iters
    lr = lr or ev.fit_lr
    n, t = data.count, data.frames
    srep, mrep = model.shape_rep(stage), model.motion_rep(stage)
    sinit = mean_shape_vector(model, stage)[None].repeat(n, 1)
    sloss = shape_loss(data, tc.shape_points, model.preset.shape.clamp, tc.code_reg)
    svec, _ = optimise(srep, sinit, sloss, iters, n, lr, report=report,
                       stage=f"fit-shape-{stage}")
    mv = model.motion_vecs[stage]
    minit = mv.reshape(-1, mv.shape[-1]).mean(0)[None].repeat(n * t, 1)
    mloss = motion_loss(data, model.shape_code(stage, svec), tc.motion_points, tc.code_reg)
    mvec, _ = optimise(mrep, minit, mloss, iters, n * t, lr, report=report,
                       stage=f"fit-motion-{stage}")
    return svec, mvec.reshape(n, t, -1)
