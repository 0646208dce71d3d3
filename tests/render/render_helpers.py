"""Random scenes and comparison helpers for the rasterizer tests."""

from __future__ import annotations

import math
import os

import torch


def fresh_seed() -> int:
    """A new seed every run (``ANIM4D_SEED`` replays one)."""
    env = os.environ.get("ANIM4D_SEED")
    return int(env) if env else int.from_bytes(os.urandom(4), "little")


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """||a - b|| / ||b|` (b is the reference, never all zeros in these tests)."""
    a, b = a.detach().double(), b.detach().double()
    nb = float(b.norm())
    assert nb > 0, "reference is all zeros: the scene tests nothing"
    return float((a - b).norm()) / nb


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
