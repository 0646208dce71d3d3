"""Image metrics of the DS4D study: PSNR, SSIM, mask IoU, the object's box.

Images are RGBA float arrays [H, W, 4] in [0, 1] with straight alpha. Colour metrics compare the
images composited over white (the ground truth's film is transparent; white is what the pages
show). ``*_box`` variants crop both images to the object's bounding box first: the union of the
ground truth's and ours (alpha > 0.5), padded by :data:`BOX_PAD` pixels and at least
:data:`SSIM_WINDOW` wide, so a creature covering 5 % of a frame is not scored mostly on empty
background. The blank frame (an empty render, alpha 0 everywhere) scored against the ground truth
is the floor any reconstruction must beat.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from backend.render.losses import composite
from backend.render.losses import psnr as _psnr

ALPHA_THRESHOLD = 0.5
BOX_PAD = 4
SSIM_WINDOW = 11  # Wang et al.: 11 x 11 Gaussian window, sigma 1.5
SSIM_SIGMA = 1.5
_C1, _C2 = 0.01 ** 2, 0.03 ** 2


def over_white(rgba: np.ndarray) -> np.ndarray:
    """[H, W, 3] RGB of ``rgba`` [H, W, 4] composited over white (the trainer's compositing)."""
    return composite(torch.from_numpy(np.asarray(rgba)), 1.0).numpy()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of RGB images [H, W, 3] in [0, 1] (inf when equal): the trainer's PSNR."""
    return _psnr(torch.from_numpy(np.asarray(a, np.float64)),
                 torch.from_numpy(np.asarray(b, np.float64)))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of RGB images [H, W, 3] in [0, 1] (Gaussian window, per channel, averaged;
    borders use the window's valid part only, so nothing is padded in: unlike the training
    loss's zero-padded SSIM (``backend.render.losses.ssim``), which treats the outside of a crop
    as black)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if min(a.shape[:2]) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW} pixels, got {a.shape}")
    r = SSIM_WINDOW // 2
    vals = []
    for c in range(a.shape[2]):
        x, y = a[..., c], b[..., c]

        def blur(z):
            return gaussian_filter(z, SSIM_SIGMA, truncate=r / SSIM_SIGMA)[r:-r, r:-r]

        mx, my = blur(x), blur(y)
        vx, vy = blur(x * x) - mx * mx, blur(y * y) - my * my
        cxy = blur(x * y) - mx * my
        s = ((2 * mx * my + _C1) * (2 * cxy + _C2)) / ((mx * mx + my * my + _C1)
                                                      * (vx + vy + _C2))
        vals.append(s.mean())
    return float(np.mean(vals))


def mask_iou(alpha_a: np.ndarray, alpha_b: np.ndarray, threshold: float = ALPHA_THRESHOLD
             ) -> float:
    """IoU of the masks alpha > ``threshold`` (1 when both are empty)."""
    ma, mb = alpha_a > threshold, alpha_b > threshold
    union = int((ma | mb).sum())
    return 1.0 if union == 0 else float((ma & mb).sum()) / union


def object_box(*alphas: np.ndarray, threshold: float = ALPHA_THRESHOLD, pad: int = BOX_PAD,
               min_side: int = SSIM_WINDOW) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1) of the union of the masks alpha > ``threshold``, padded by ``pad`` and
    grown to ``min_side`` (within the image); the whole image when every mask is empty."""
    H, W = alphas[0].shape
    m = np.zeros((H, W), bool)
    for a in alphas:
        m |= a > threshold
    if not m.any():
        return 0, H, 0, W
    ys, xs = np.nonzero(m)

    def span(lo: int, hi: int, n: int) -> tuple[int, int]:
        lo, hi = max(0, lo - pad), min(n, hi + 1 + pad)
        need = min(min_side, n)
        if hi - lo < need:  # grow around the middle, shifted back inside the image
            lo = max(0, lo - (need - (hi - lo) + 1) // 2)
            hi = min(n, lo + need)
            lo = hi - need
        return lo, hi

    y0, y1 = span(int(ys.min()), int(ys.max()), H)
    x0, x1 = span(int(xs.min()), int(xs.max()), W)
    return y0, y1, x0, x1


@dataclass
class Scores:
    psnr: float
    ssim: float
    psnr_box: float
    ssim_box: float
    iou: float

    def as_dict(self) -> dict:
        return asdict(self)


def score(ours: np.ndarray, gt: np.ndarray) -> Scores:
    """All metrics of RGBA ``ours`` against RGBA ``gt`` ([H, W, 4], [0, 1])."""
    if ours.shape != gt.shape:
        raise ValueError(f"image sizes differ: ours {ours.shape}, ground truth {gt.shape}")
    a, b = over_white(ours), over_white(gt)
    y0, y1, x0, x1 = object_box(ours[..., 3], gt[..., 3])
    return Scores(psnr(a, b), ssim(a, b), psnr(a[y0:y1, x0:x1], b[y0:y1, x0:x1]),
                  ssim(a[y0:y1, x0:x1], b[y0:y1, x0:x1]), mask_iou(ours[..., 3], gt[..., 3]))


def blank_score(gt: np.ndarray) -> Scores:
    """The floor: an empty render (alpha 0 everywhere) scored against ``gt``."""
    return score(np.zeros_like(gt), gt)


def mean_scores(scores: list[Scores]) -> Scores:
    """Field-wise mean (inf PSNRs of identical frames are capped at 100 dB first)."""
    d = [s.as_dict() for s in scores]
    return Scores(**{k: float(np.mean([min(x[k], 100.0) for x in d])) for k in d[0]})
