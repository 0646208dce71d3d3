"""A trained DS4D model: canonical Gaussians + point-feature sampler + TSSF + deformation field.

The deformation field is continuous in time, so :meth:`DS4DModel.frames` evaluates the Gaussians
at any times in [0, 1] (the clip's first to last frame). :meth:`save` / :meth:`load` keep
everything needed for that (``ds4d_state.pt`` in a result folder: tensors and JSON-able
settings, loaded with ``weights_only=True``), so ``video.resample`` re-evaluates a finished
result without training again. Evaluation runs on one CPU thread, so the same state and times
give the same bits in any process.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
from torch import nn

from backend.render.gaussians import Gaussians
from backend.torch_threads import single_thread

from .deformation import DeformationConfig, DeformationField
from .hexplane import HexPlaneConfig
from .point_features import PointFeatureSampler
from .tssf import TSSF

STATE_FORMAT = "anim4d.ds4d.state/1"
_G_KEYS = ("means", "quats", "log_scales", "opacity_logits", "sh0", "shN")


class DS4DModel:
    def __init__(self, gaussians: Gaussians, sampler: PointFeatureSampler, tssf: TSSF,
                 field: DeformationField):
        self.gaussians, self.sampler, self.tssf, self.field = gaussians, sampler, tssf, field

    @classmethod
    def create(cls, gaussians: Gaussians, sampler: PointFeatureSampler, mode: str,
               hexplane: HexPlaneConfig, width: int,
               generator: torch.Generator | None = None) -> DS4DModel:
        tssf = TSSF(sampler.dim, mode)
        field = DeformationField(DeformationConfig(hexplane, tssf.out_dim, width), generator)
        return cls(gaussians, sampler, tssf, field)

    def mlp_parameters(self) -> list[nn.Parameter]:
        """TSSF and deformation MLP parameters (lr 1.6e-4 -> 1.6e-6)."""
        return list(self.tssf.parameters()) + self.field.mlp_parameters()

    def to(self, device) -> DS4DModel:
        self.tssf.to(device)
        self.field.to(device)
        return self

    def train(self) -> None:
        self.tssf.train()
        self.field.train()

    def eval(self) -> None:
        self.tssf.eval()
        self.field.eval()

    def deform(self, g: Gaussians, t: float) -> Gaussians:
        """``g`` (canonical) at time ``t``: point features sampled at the detached canonical
        centres, fused by TSSF, then the deformation field (differentiable)."""
        fused = None
        if self.tssf.out_dim:  # 0: the "none" ablation, HexPlane only
            feats, visible = self.sampler(g.means.detach(), float(t))
            fused, _ = self.tssf(feats, visible)
        d = self.field(g.means, g.log_scales, g.quats, float(t), fused)
        return Gaussians(d.means, d.quats, d.log_scales, g.opacity_logits, g.sh0, g.shN)

    @torch.no_grad()
    def frames(self, canonical: Gaussians | None, times: list[float]) -> list[Gaussians]:
        """Detached CPU Gaussians at each of ``times`` (one thread: reproducible bits)."""
        g = canonical if canonical is not None else self.gaussians
        dev = next(self.field.parameters()).device
        g = Gaussians(*(getattr(g, k).detach().to(dev) for k in _G_KEYS))
        out = []
        with single_thread():
            for t in times:
                moved = self.deform(g, float(t))
                out.append(Gaussians(*(getattr(moved, k).detach().cpu() for k in _G_KEYS)))
        return out

    # ---- persistence -----------------------------------------------------------------------
    def save(self, path: Path, meta: dict | None = None) -> Path:
        s = self.sampler
        cfg = self.field.cfg
        settings = {"format": STATE_FORMAT, "mode": self.tssf.mode,
                    "hexplane": dataclasses.asdict(cfg.hexplane), "point_dim": cfg.point_dim,
                    "width": cfg.width, "sizes": [list(x) for x in s.sizes],
                    "meta": meta or {}}
        state = {
            "settings": json.dumps(settings),
            "gaussians": {k: getattr(self.gaussians, k).detach().cpu() for k in _G_KEYS},
            "tssf": {k: v.cpu() for k, v in self.tssf.state_dict().items()},
            "field": {k: v.cpu() for k, v in self.field.state_dict().items()},
            "maps": [m.cpu() for m in s.maps], "times": s.times.cpu(),
            "viewmats": s.viewmats.cpu(), "Ks": s.Ks.cpu(),
        }
        torch.save(state, path)
        return path

    @classmethod
    def load(cls, path: Path) -> tuple[DS4DModel, dict]:
        """(model, meta) from :meth:`save`'s file."""
        state = torch.load(path, map_location="cpu", weights_only=True)
        settings = json.loads(state["settings"])
        if settings.get("format") != STATE_FORMAT:
            raise ValueError(f"{path.name}: not a DS4D state ({settings.get('format')!r})")
        hp = settings["hexplane"]
        hp = HexPlaneConfig(**{**hp, "resolution": tuple(hp["resolution"]),
                               "multires": tuple(hp["multires"])})
        sampler = PointFeatureSampler(state["maps"], state["times"], state["viewmats"],
                                      state["Ks"], [tuple(x) for x in settings["sizes"]],
                                      apply_dsfd=False)
        tssf = TSSF(sampler.dim, settings["mode"])
        tssf.load_state_dict(state["tssf"])
        field = DeformationField(DeformationConfig(hp, settings["point_dim"], settings["width"]))
        field.load_state_dict(state["field"])
        g = Gaussians(*(state["gaussians"][k] for k in _G_KEYS))
        model = cls(g, sampler, tssf, field)
        model.eval()
        return model, settings["meta"]
