"""A trained DNF: both MLPs, their dictionaries and every instance's vectors, per stage.

Stages (the rows of the results table):

- ``a``: the auto-decoder MLPs as trained; the per-instance vector is the latent code alone;
- ``b``: full-rank SVD dictionary, per-instance log singular values fine-tuned;
- ``c``: compressed to the top-k directions per layer;
- ``d``: compressed + shared low-rank residual basis with per-instance coefficients (the
  representation part 2 generates).

Vectors: ``shape_vecs[stage]`` ``[N, D_shape]``; ``motion_vecs[stage]`` ``[N, T, D_motion]``
(one per frame); layouts in :meth:`DNFModel.shape_layout` / :meth:`DNFModel.motion_layout`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .config import Preset
from .dictionary import Dictionary, keep_counts
from .fields import FieldMLP, motion_mlp, shape_mlp
from .layout import FlatLayout
from .train import FieldRep

STAGES = ("a", "b", "c", "d")
STAGE_TITLES = {
    "a": "(a) trained MLPs (latent codes only)",
    "b": "(b) SVD, frozen vectors, fine-tuned singular values",
    "c": "(c) compressed top-k",
    "d": "(d) compressed + residual",
}


def stage_dictionary(mlp: FieldMLP, stage: str, keep: float, residual: int,
                     seed: int = 0, layout: dict | None = None,
                     topk: int = 0) -> Dictionary | None:
    """The dictionary of ``stage`` built from ``mlp`` (None for stage a); a stored ``layout``
    (JSON) fixes the ranks and residual sizes instead of the preset's ``topk`` / fractions."""
    if stage == "a":
        return None
    if layout is not None:
        return Dictionary(mlp, layout["ranks"], layout["residual"], seed=seed)
    n = len(mlp.linears)
    k = keep_counts(mlp, keep, topk=topk) if stage in ("c", "d") else None
    m = [residual] * n if stage == "d" else None
    return Dictionary(mlp, k, m, seed=seed)


@dataclass
class DNFModel:
    """See module docstring. ``instances``: one dict per training instance (``name``,
    ``split``, ``kind``, ``times`` [T], ``center`` [3], ``scale``)."""

    preset: Preset
    instances: list[dict]
    shape_mlp: FieldMLP
    motion_mlp: FieldMLP
    shape_dicts: dict[str, Dictionary | None] = field(default_factory=dict)
    motion_dicts: dict[str, Dictionary | None] = field(default_factory=dict)
    shape_vecs: dict[str, torch.Tensor] = field(default_factory=dict)
    motion_vecs: dict[str, torch.Tensor] = field(default_factory=dict)
    info: dict = field(default_factory=dict)
    sha256: str = ""  # of model.safetensors, checked on load (.checkpoint.load_checkpoint)

    @classmethod
    def untrained(cls, preset: Preset, instances: list[dict]) -> DNFModel:
        smlp = shape_mlp(preset.shape)
        mmlp = motion_mlp(preset.motion, preset.shape.code_dim)
        return cls(preset, instances, smlp, mmlp)

    @property
    def stages(self) -> list[str]:
        return [s for s in STAGES if s in self.shape_vecs and s in self.motion_vecs]

    def build_dictionaries(self, stage: str, layouts: dict | None = None) -> None:
        """Dictionaries of ``stage`` from the MLPs: sizes from the preset, or from stored
        ``layouts`` (``{"shape": layout JSON, "motion": layout JSON}``)."""
        d = self.preset.dictionary
        seed = self.preset.train.seed
        lay = layouts or {}
        self.shape_dicts[stage] = stage_dictionary(self.shape_mlp, stage, d.shape_keep,
                                                   d.shape_residual, seed, lay.get("shape"),
                                                   d.shape_topk)
        self.motion_dicts[stage] = stage_dictionary(self.motion_mlp, stage, d.motion_keep,
                                                    d.motion_residual, seed + 1,
                                                    lay.get("motion"), d.motion_topk)

    def shape_layout(self, stage: str) -> FlatLayout:
        dic = self.shape_dicts.get(stage)
        code = self.preset.shape.code_dim
        return FlatLayout(code, [], code_name="shape code") if dic is None else \
            dic.layout(code, "shape code")

    def motion_layout(self, stage: str) -> FlatLayout:
        dic = self.motion_dicts.get(stage)
        code = self.preset.motion.pose_dim
        return FlatLayout(code, [], code_name="pose code") if dic is None else \
            dic.layout(code, "pose code (this frame)")

    def shape_rep(self, stage: str) -> FieldRep:
        return FieldRep(self.shape_mlp, self.preset.shape.pe_freqs, self.shape_layout(stage),
                        self.shape_dicts.get(stage))

    def motion_rep(self, stage: str) -> FieldRep:
        return FieldRep(self.motion_mlp, self.preset.motion.pe_freqs, self.motion_layout(stage),
                        self.motion_dicts.get(stage))

    def shape_code(self, stage: str, shape_vec: torch.Tensor) -> torch.Tensor:
        """The shape code slice ``[..., d]`` of shape vectors ``[..., D]``."""
        return self.shape_layout(stage).get(shape_vec, "code")

    def per_instance_counts(self, stage: str, frames: int) -> dict[str, int]:
        """Numbers per instance: shape vector, motion vectors (all frames), total."""
        s = self.shape_layout(stage).size
        m = self.motion_layout(stage).size * frames
        return {"shape": s, "motion": m, "total": s + m}

    def shared_counts(self, stage: str) -> dict[str, int]:
        """Numbers shared by all instances (MLP weights for a; dictionary for b-d)."""
        out = {}
        for name, mlp, dic in (("shape", self.shape_mlp, self.shape_dicts.get(stage)),
                               ("motion", self.motion_mlp, self.motion_dicts.get(stage))):
            out[name] = (sum(p.numel() for p in mlp.parameters()) if dic is None
                         else dic.shared_count())
        return out

    def index(self, name: str) -> int:
        for i, inst in enumerate(self.instances):
            if inst["name"] == name:
                return i
        names = ", ".join(i["name"] for i in self.instances[:10])
        raise KeyError(f"no DNF instance named {name!r}; instances include {names}")
