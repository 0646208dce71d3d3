"""The loss on the views besides the input: LPIPS where its weights are here, else part 1's
substitute (multi-scale D-SSIM).

- ``lpips``: the ``lpips`` package (``pip install lpips torchvision``; optional, not a
  dependency: see the README's models section) with its shipped linear layers (``v0.1``), on
  an AlexNet backbone whose torchvision weights (``alexnet-owt-7be5be79.pth``) are found
  locally (the models folder's ``ds4d/lpips-alex/``, or torch's hub cache; ``anim4d models
  fetch lpips-alex``). The package is built with ``pnet_rand=True`` so it never downloads;
  the backbone is then loaded from the file.
- ``msdssim``: mean D-SSIM at full, 1/2 and 1/4 resolution (:func:`.train.multiscale_dssim`).

``view_loss="auto"`` picks LPIPS when both the package and the backbone file are here, else the
substitute; the choice (and why) goes into the result's ``extra.view_loss`` / notes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from backend.render.losses import dssim

from .features import ModelMissingError

ALEXNET_FILE = "alexnet-owt-7be5be79.pth"
SUBSTITUTE = "msdssim"
VIEW_LOSSES = ("auto", "lpips", SUBSTITUTE)
MIN_LPIPS_SIZE = 64


def _downsample(x: Tensor, s: int) -> Tensor:
    """[B, H, W, C] average-pooled by ``s``."""
    return F.avg_pool2d(x.permute(0, 3, 1, 2), s).permute(0, 2, 3, 1) if s > 1 else x


def multiscale_dssim(a: Tensor, b: Tensor, scales: tuple[int, ...] = (1, 2, 4)) -> Tensor:
    """Mean D-SSIM of [B, H, W, 3] images at full and pooled resolutions (the LPIPS substitute)."""
    used = [s for s in scales if a.shape[1] // s >= 4] or [1]
    return sum(dssim(_downsample(a, s), _downsample(b, s)) for s in used) / len(used)


@dataclass
class ViewLoss:
    """``fn(render [B, H, W, 3], target [B, H, W, 3]) -> scalar`` (images in [0, 1]); ``name``
    is what the manifest records; ``why``: how it was chosen."""

    name: str
    fn: Callable[[Tensor, Tensor], Tensor]
    why: str = ""


def lpips_backbone(folder: str | None) -> Path | None:
    """The AlexNet weights file: ``folder``/alexnet-owt-7be5be79.pth, else torch's hub cache."""
    cands = []
    if folder:
        cands.append(Path(folder) / ALEXNET_FILE)
    from backend.models.pretrained import torch_hub_checkpoints

    cands.append(torch_hub_checkpoints() / ALEXNET_FILE)
    return next((c for c in cands if c.is_file()), None)


def build_lpips(backbone: Path | None, random_backbone: bool = False):
    """An ``lpips.LPIPS`` (AlexNet, v0.1 linear layers from the package) in eval mode, its
    backbone loaded from ``backbone`` (or left random with ``random_backbone``: tests only)."""
    try:
        import lpips
    except Exception as e:  # absent, or torchvision built for another torch (RuntimeError)
        raise ModelMissingError(f"LPIPS needs the lpips package and a torchvision that loads "
                                f"beside this torch (pip install lpips torchvision): "
                                f"{type(e).__name__}: {e}") from None
    net = lpips.LPIPS(net="alex", pretrained=True, pnet_rand=True, verbose=False)
    if not random_backbone:
        if backbone is None:
            raise ModelMissingError("LPIPS backbone alexnet-owt-7be5be79.pth not found; fetch "
                                    "it with: anim4d models fetch lpips-alex")
        state = torch.load(backbone, map_location="cpu", weights_only=True)
        features = {k[len("features."):]: v for k, v in state.items()
                    if k.startswith("features.")}
        for name in ("slice1", "slice2", "slice3", "slice4", "slice5"):
            sl = getattr(net.net, name)
            for idx, module in sl.named_children():
                own = {k.split(".", 1)[1]: v for k, v in features.items()
                       if k.split(".", 1)[0] == idx}
                if own:
                    module.load_state_dict(own)
    return net.eval().requires_grad_(False)


def lpips_loss(net) -> Callable[[Tensor, Tensor], Tensor]:
    def fn(a: Tensor, b: Tensor) -> Tensor:
        x = a.permute(0, 3, 1, 2) * 2 - 1
        y = b.permute(0, 3, 1, 2) * 2 - 1
        if x.shape[-1] < MIN_LPIPS_SIZE:  # AlexNet's pooling needs about 64 pixels
            size = (MIN_LPIPS_SIZE * x.shape[-2] // x.shape[-1], MIN_LPIPS_SIZE)
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
            y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
        return net(x, y).mean()
    return fn


def make_view_loss(choice: str = "auto", lpips_folder: str | None = None,
                   device: str | torch.device = "cpu") -> ViewLoss:
    """The view loss for ``choice`` (see the module docstring); ``lpips`` when LPIPS cannot be
    built raises :class:`ModelMissingError` naming what is missing and the fetch command."""
    if choice not in VIEW_LOSSES:
        from shared.errors import ParamError

        raise ParamError(f"view_loss {choice!r}: accepted {', '.join(VIEW_LOSSES)}")
    if choice != SUBSTITUTE:
        try:
            net = build_lpips(lpips_backbone(lpips_folder)).to(device)
            return ViewLoss("lpips", lpips_loss(net), "lpips package and AlexNet weights found")
        except ModelMissingError as e:
            if choice == "lpips":
                raise
            why = e.message
    else:
        why = "chosen"
    return ViewLoss(SUBSTITUTE, multiscale_dssim, f"multi-scale D-SSIM substitute ({why})")
