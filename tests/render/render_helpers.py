"""Random scenes and comparison helpers for the rasterizer tests."""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch

#: Seeds every seeded test runs with in ``make test``, besides the regression list.
FIXED_SEEDS = (1, 2)
REGRESSION_SEEDS_FILE = Path(__file__).resolve().parents[1] / "regression_seeds.txt"


def regression_seeds(path: Path = REGRESSION_SEEDS_FILE) -> list[int]:
    """Seeds listed in ``tests/regression_seeds.txt`` (one per line, ``#`` starts a comment)."""
    seeds = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        text = line.split("#", 1)[0].strip()
        if text:
            try:
                seeds.append(int(text))
            except ValueError:
                msg = f"{path}:{n}: expected a seed (an integer), got {text!r}"
                raise ValueError(msg) from None
    return seeds


def seeds_for_this_run(environ=os.environ) -> tuple[list[int], str]:
    """The seeds of this run and how they were chosen.

    ``ANIM4D_SEED=<s>`` replays one seed; ``ANIM4D_FUZZ=<n>`` draws n fresh random seeds (for
    ``make fuzz``); otherwise the fixed seeds plus the regression list, the same every run.
    """
    if environ.get("ANIM4D_SEED"):
        return [int(environ["ANIM4D_SEED"])], "ANIM4D_SEED"
    if environ.get("ANIM4D_FUZZ"):
        n = int(environ["ANIM4D_FUZZ"])
        return [int.from_bytes(os.urandom(4), "little") for _ in range(n)], "fuzz"
    seeds = list(FIXED_SEEDS)
    seeds += [s for s in regression_seeds() if s not in seeds]
    return seeds, "fixed"


def max_err(a: torch.Tensor, b: torch.Tensor, keep: torch.Tensor | None = None) -> float:
    """Largest absolute difference ``|a - b|`` over the kept pixels.

    a, b: [C, H, W, D]; keep: [C, H, W] bool (None: every pixel). One wrong pixel shows.
    """
    d = (a.detach().double() - b.detach().double()).abs()
    if keep is not None:
        d = d[keep]
    return float(d.max()) if d.numel() else 0.0


def grad_err(ours: torch.Tensor, ref: torch.Tensor) -> float:
    """Worst per-Gaussian gradient error: max over Gaussians i of ``e_i / (r_i + 0.01 S)``.

    ``e_i`` is the largest absolute error in Gaussian i's gradient row, ``r_i`` the largest
    entry of its reference row and ``S`` the largest entry of the whole reference gradient of
    that parameter; the 1 % floor keeps near-zero gradients (sums that cancel) from dividing by
    almost nothing. ours, ref: [N, ...] (the first axis is the Gaussian).
    """
    o = ours.detach().double().reshape(ours.shape[0], -1)
    r = ref.detach().double().reshape(ref.shape[0], -1)
    assert o.shape == r.shape and r.numel() > 0
    S = float(r.abs().max())
    assert S > 0, "the reference gradient is all zeros: the scene tests nothing"
    e = (o - r).abs().amax(dim=1)
    return float((e / (r.abs().amax(dim=1) + 0.01 * S)).max())


def look_at_viewmat(eye, target=(0.0, 0.0, 0.0), up=(0.0, 1.0, 0.0), dtype=torch.float64):
    """OpenCV world-to-camera matrix for a camera at ``eye`` looking at ``target``."""
    eye, target, up = (torch.tensor(v, dtype=dtype) for v in (eye, target, up))
    z = target - eye
    z = z / z.norm()
    x = torch.linalg.cross(z, up)
    x = x / x.norm()
    y = torch.linalg.cross(z, x)
    R = torch.stack([x, y, z])  # rows: camera axes in world coordinates
    vm = torch.eye(4, dtype=dtype)
    vm[:3, :3] = R
    vm[:3, 3] = -R @ eye
    return vm


def random_scene(
    seed: int,
    n: int = 300,
    cameras: int = 2,
    width: int = 44,
    height: int = 36,
    channels: int = 3,
    opacity: tuple[float, float] = (0.05, 0.99),
    log_scale: tuple[float, float] = (-2.6, 0.45),
    spread: float = 0.7,
):
    """Gaussians in a ball of radius ~``spread`` seen by cameras on a circle of radius 3.

    Returns a dict of float64 tensors: means, quats, scales, opacities, colors [N, D],
    viewmats [C, 4, 4], Ks [C, 3, 3], backgrounds [C, D], and width / height.
    """
    g = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return torch.rand(*shape, generator=g, dtype=torch.float64)

    def randn(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    means = randn(n, 3) * spread
    quats = randn(n, 4)
    scales = torch.exp(log_scale[0] + log_scale[1] * randn(n, 3))
    opacities = opacity[0] + (opacity[1] - opacity[0]) * rand(n)
    colors = rand(n, channels)
    viewmats, Ks = [], []
    for c in range(cameras):
        az = 2 * math.pi * float(rand(1)) + c
        el = 0.6 * (float(rand(1)) - 0.5)
        eye = (3 * math.cos(el) * math.sin(az), 3 * math.sin(el), 3 * math.cos(el) * math.cos(az))
        viewmats.append(look_at_viewmat(eye))
        f = width * (0.9 + 0.4 * float(rand(1)))
        Ks.append(
            torch.tensor(
                [
                    [f, 0, width / 2 + float(randn(1))],
                    [0, f * (0.95 + 0.1 * float(rand(1))), height / 2 + float(randn(1))],
                    [0, 0, 1],
                ],
                dtype=torch.float64,
            )
        )
    viewmats = torch.stack(viewmats)
    means = separate_depths(means, viewmats, g)
    return {
        "means": means,
        "quats": quats,
        "scales": scales,
        "opacities": opacities,
        "colors": colors,
        "viewmats": viewmats,
        "Ks": torch.stack(Ks),
        "backgrounds": rand(cameras, channels),
        "width": width,
        "height": height,
    }


def separate_depths(
    means: torch.Tensor, viewmats: torch.Tensor, g: torch.Generator, min_gap: float = 1e-5
) -> torch.Tensor:
    """Nudge Gaussians so that, in every camera, no two depths are closer than ``min_gap``.

    Depth order decides colour where Gaussians overlap, so two depths closer than float32 can
    resolve (about 2e-7 at depth 3) may be sorted differently by a float32 renderer and the
    float64 reference, a legitimate discontinuity (gsplat sorts float32 depths too). Test scenes
    keep depths at least 50x further apart than that.
    """
    m = means.clone()
    for _ in range(50):
        z = torch.einsum("cj,nj->cn", viewmats[:, 2, :3], m) + viewmats[:, None, 2, 3]
        zs, order = torch.sort(z, dim=1)
        close = (zs[:, 1:] - zs[:, :-1]) < min_gap  # [C, N - 1]
        if not bool(close.any()):
            return m
        cam, k = close.nonzero(as_tuple=True)
        bad = torch.unique(order[cam, k + 1])  # the farther Gaussian of each close pair
        m[bad] += 1e-3 * torch.randn(bad.numel(), 3, generator=g, dtype=m.dtype)
    raise AssertionError("could not separate the depths of the test scene")


PARAMS = ("means", "quats", "scales", "opacities", "colors")


def leaf_params(scene: dict, dtype=torch.float32) -> dict:
    """Copies of the Gaussian parameters in ``dtype`` that require grad."""
    return {k: scene[k].detach().clone().to(dtype).requires_grad_(True) for k in PARAMS}
