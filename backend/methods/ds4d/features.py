"""Frame features on a patch grid, per frame and view: DINOv2 or a weight-free descriptor.

- **DINOv2** (transformers ``Dinov2Model``), loaded offline only: ``model`` is a local folder
  (``save_pretrained`` / ``hf download --local-dir`` layout) or a Hugging Face id already in the
  local cache (``local_files_only=True``; nothing is downloaded). Images are composited over
  ``background``, resized so each side is a multiple of 14, normalised with ImageNet statistics;
  the patch grid is ``last_hidden_state[:, 1:]`` reshaped to (H / 14, W / 14, C).
- **Descriptor** (no weights): on the same grid, per 14 x 14 patch: mean and standard deviation
  of RGB, gradient-orientation histograms (unsigned, magnitude-weighted, on 2 x 2 sub-cells,
  each L2-normalised), alpha coverage; standardised and reduced with one PCA fitted over all
  views and frames of the clip (one basis, so views stay comparable). ``backend="auto"`` falls
  back to it, with a :class:`FeatureFallbackWarning`, when the DINOv2 weights are missing.

DSFD projects each token on a reference token; a feature whose every token shares a large common
offset would be "all static". :func:`center_per_view` removes each view's clip mean (the mean
over frames and patches, one vector per view); it is applied to the descriptor by default.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from shared.errors import Anim4DError, ParamError

PATCH = 14
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ModelMissingError(Anim4DError):
    """Pretrained weights that are not on this machine (nothing is downloaded at run time)."""

    code = "model_missing"


class FeatureFallbackWarning(UserWarning):
    """DINOv2 weights are missing: the weight-free descriptor is used instead."""


@dataclass
class FeatureConfig:
    backend: Literal["auto", "dinov2", "descriptor"] = "auto"
    model: str = "facebook/dinov2-small"  # a local folder, or an id in the local HF cache
    image_size: int = 224  # longer side of the DINOv2 input (grid = image_size / 14)
    background: float = 1.0  # grey level RGBA frames are composited over
    batch: int = 8
    descriptor_dim: int = 32  # PCA output channels of the descriptor
    orientation_bins: int = 8
    center: bool | None = None  # centre per view on the clip mean; None: descriptor only
    device: str = "cpu"


@dataclass
class FrameFeatures:
    """Features of every view: ``maps[v]`` is [T, gh, gw, C] float32; ``kind`` names the backend."""

    maps: list[Tensor]
    kind: str
    grid: tuple[int, int]

    @property
    def dim(self) -> int:
        return int(self.maps[0].shape[-1])


def _is_path(model: str) -> bool:
    p = Path(model).expanduser()
    return p.is_absolute() or model.startswith((".", "~")) or p.exists()


def fetch_command(model: str, folder: str | None = None) -> str:
    """The one command that puts ``model`` (a Hugging Face id, or a folder to fill) on disk."""
    repo = "facebook/dinov2-small" if _is_path(model) or "/" not in model else model
    if repo == "facebook/dinov2-small":  # in the catalog (backend/models/pretrained.py)
        return "anim4d models fetch dinov2-small" + (f" --to {folder}" if folder else "")
    dest = folder or f"models/{repo.split('/')[-1]}"
    return f"hf download {repo} --local-dir {dest}"


def load_dinov2(model: str, device: str | torch.device = "cpu"):
    """A ``Dinov2Model`` in eval mode, from a local folder or the local Hugging Face cache.

    Raises:
        ModelMissingError: naming the model, where it was looked for, and the command that
            fetches it.
    """
    try:
        from transformers import Dinov2Model
    except ImportError as e:  # pragma: no cover - transformers is a dependency
        raise ModelMissingError(f"DINOv2 needs transformers (pip install transformers): {e}") from e
    path = Path(model).expanduser()
    looks_like_path = _is_path(model)
    if looks_like_path:
        if not (path / "config.json").is_file():
            cmd = fetch_command(model, str(path))
            raise ModelMissingError(
                f"DINOv2 model not found: looked for {path / 'config.json'} (a folder written by "
                f"save_pretrained or hf download). Fetch it with: {cmd}")
        where = str(path)
    else:
        from huggingface_hub.constants import HF_HUB_CACHE

        where = f"the Hugging Face cache {HF_HUB_CACHE} (local files only)"
    try:
        net = Dinov2Model.from_pretrained(str(path) if looks_like_path else model,
                                          local_files_only=True)
    except (OSError, ValueError) as e:
        raise ModelMissingError(
            f"DINOv2 model {model!r} could not be loaded from {where}: {str(e).splitlines()[0]}. "
            f"Fetch it with: {fetch_command(model)}"
            + ("" if fetch_command(model).startswith("anim4d") else
               " and pass that folder as the model")) from None
    return net.to(device).eval()


def patch_grid(height: int, width: int, image_size: int) -> tuple[int, int]:
    """(gh, gw): the patch grid of an image resized so its longer side is ``image_size``."""
    if image_size < PATCH:
        raise ParamError(f"feature image_size {image_size} must be at least {PATCH}")
    s = image_size / max(height, width)
    return max(1, round(height * s / PATCH)), max(1, round(width * s / PATCH))


def _prepare(rgba: Tensor, grid: tuple[int, int], background: float) -> Tensor:
    """[N, H, W, 4] -> [N, 4, gh * 14, gw * 14] (RGB composited over background, then alpha)."""
    x = rgba.permute(0, 3, 1, 2).float()
    rgb = x[:, :3] * x[:, 3:] + background * (1 - x[:, 3:])
    x = torch.cat([rgb, x[:, 3:]], 1)
    size = (grid[0] * PATCH, grid[1] * PATCH)
    return F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)


@torch.no_grad()
def dinov2_grid(net, rgba: Tensor, cfg: FeatureConfig) -> Tensor:
    """DINOv2 patch features [N, gh, gw, C] of RGBA frames [N, H, W, 4] in [0, 1]."""
    grid = patch_grid(rgba.shape[1], rgba.shape[2], cfg.image_size)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    skip = 1 + int(getattr(net.config, "num_register_tokens", 0) or 0)
    dev = next(net.parameters()).device
    out = []
    for i in range(0, rgba.shape[0], cfg.batch):
        x = _prepare(rgba[i:i + cfg.batch].to(dev), grid, cfg.background)[:, :3]
        h = net(pixel_values=(x - mean.to(dev)) / std.to(dev)).last_hidden_state[:, skip:]
        out.append(h.reshape(h.shape[0], grid[0], grid[1], -1).float().cpu())
    return torch.cat(out)


def descriptor_raw(rgba: Tensor, grid: tuple[int, int], background: float = 1.0,
                   bins: int = 8) -> Tensor:
    """Raw weight-free descriptor [N, gh, gw, 7 + 4 * bins] of [N, H, W, 4] frames."""
    x = _prepare(rgba, grid, background)
    N = x.shape[0]
    rgb, alpha = x[:, :3], x[:, 3:]
    mean = F.avg_pool2d(rgb, PATCH)
    std = (F.avg_pool2d(rgb * rgb, PATCH) - mean * mean).clamp_min(0).sqrt()
    cover = F.avg_pool2d(alpha, PATCH)
    gray = rgb.mean(1, keepdim=True)
    gx = F.pad(gray[..., :, 2:] - gray[..., :, :-2], (1, 1, 0, 0)) / 2
    gy = F.pad(gray[..., 2:, :] - gray[..., :-2, :], (0, 0, 1, 1)) / 2
    mag = (gx * gx + gy * gy).sqrt()
    theta = torch.atan2(gy, gx) % math.pi  # unsigned orientation in [0, pi)
    pos = theta / math.pi * bins
    lo = pos.floor().long() % bins
    w_hi = pos - pos.floor()
    hist = torch.zeros(N, bins, *gray.shape[-2:], device=gray.device)
    hist.scatter_add_(1, lo, mag * (1 - w_hi))  # soft binning between neighbouring bins
    hist.scatter_add_(1, (lo + 1) % bins, mag * w_hi)
    half = PATCH // 2  # 2 x 2 sub-cells of 7 x 7 pixels
    cells = F.avg_pool2d(hist, half)  # [N, bins, 2 gh, 2 gw]
    cells = cells / cells.norm(dim=1, keepdim=True).clamp_min(1e-3)
    cells = cells.reshape(N, bins, grid[0], 2, grid[1], 2).permute(0, 1, 3, 5, 2, 4)
    cells = cells.reshape(N, 4 * bins, grid[0], grid[1])
    return torch.cat([mean, std, cover, cells], 1).permute(0, 2, 3, 1).contiguous()


def pca_reduce(raw: list[Tensor], dim: int) -> list[Tensor]:
    """Standardise and project every [..., D] tensor on the top ``dim`` principal axes, fitted
    jointly over all of them (signs fixed so each axis's largest loading is positive)."""
    flat = torch.cat([r.reshape(-1, r.shape[-1]) for r in raw]).double()
    mu, sd = flat.mean(0), flat.std(0).clamp_min(1e-6)
    z = (flat - mu) / sd
    evals, evecs = torch.linalg.eigh(z.T @ z / max(1, z.shape[0] - 1))
    axes = evecs.flip(-1)[:, : min(dim, z.shape[1])]
    sign = torch.sign(axes.gather(0, axes.abs().argmax(0, keepdim=True)))
    axes = axes * sign
    return [(((r.double() - mu) / sd) @ axes).float() for r in raw]


def center_per_view(maps: list[Tensor]) -> list[Tensor]:
    """Subtract each view's clip mean (over frames and patches): [T, gh, gw, C] -> same."""
    return [m - m.mean(dim=(0, 1, 2), keepdim=True) for m in maps]


def extract_features(rgba_views: list[Tensor], cfg: FeatureConfig | None = None) -> FrameFeatures:
    """Features of every view: ``rgba_views[v]`` is [T, H, W, 4] in [0, 1] (a view's frames).

    Views may differ in size; the grid follows each view's aspect (equal for equal sizes).
    """
    cfg = cfg or FeatureConfig()
    if cfg.backend not in ("auto", "dinov2", "descriptor"):
        raise ParamError(f"feature backend {cfg.backend!r}: accepted auto, dinov2, descriptor")
    views = [torch.as_tensor(v).float() for v in rgba_views]
    kind = "descriptor"
    if cfg.backend != "descriptor":
        try:
            net = load_dinov2(cfg.model, cfg.device)
            kind = "dinov2"
        except ModelMissingError as e:
            if cfg.backend == "dinov2":
                raise
            warnings.warn(f"{e.message} Using the weight-free descriptor (colour statistics, "
                          "gradient orientations, alpha coverage) instead: features are "
                          "weaker than DINOv2's.", FeatureFallbackWarning, stacklevel=2)
    if kind == "dinov2":
        maps = [dinov2_grid(net, v, cfg) for v in views]
    else:
        raw = [descriptor_raw(v, patch_grid(v.shape[1], v.shape[2], cfg.image_size),
                              cfg.background, cfg.orientation_bins) for v in views]
        maps = pca_reduce(raw, cfg.descriptor_dim)
    center = cfg.center if cfg.center is not None else kind == "descriptor"
    if center:
        maps = center_per_view(maps)
    return FrameFeatures(maps, kind, tuple(maps[0].shape[1:3]))
