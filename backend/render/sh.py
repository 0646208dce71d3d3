"""Real spherical harmonics, degrees 0 to 3, in the basis and sign convention gsplat uses.

Colours given as SH coefficients are evaluated in the direction from the camera centre to the
Gaussian centre; like gsplat (and the original 3DGS code) the result is shifted by +0.5 and clamped
at 0 (:func:`sh_to_rgb`).
"""

from __future__ import annotations

import torch
from torch import Tensor

# Normalisation constants of the real SH basis (Sloan, "Efficient Spherical Harmonic Evaluation").
_C0 = 0.28209479177387814
_C1 = 0.4886025119029199
_C2 = (1.0925484305920792, 0.31539156525252005, 0.5462742152960396)
_C3 = (0.5900435899266435, 2.890611442640554, 0.4570457994644658, 0.3731763325901154,
       1.445305721320277)

MAX_SH_DEGREE = 3


def num_sh_bases(degree: int) -> int:
    """Number of SH coefficients for ``degree`` (1, 4, 9 or 16)."""
    if not 0 <= degree <= MAX_SH_DEGREE:
        raise ValueError(f"sh_degree must be in 0..{MAX_SH_DEGREE}, got {degree}")
    return (degree + 1) ** 2


def sh_basis(degree: int, dirs: Tensor) -> Tensor:
    """Evaluate the SH basis functions up to ``degree``.

    Args:
        degree: 0..3.
        dirs: [..., 3] directions (any length; a zero vector gives only the degree-0 term).

    Returns:
        [..., (degree + 1) ** 2] basis values, ordered by degree then order m = -l..l.
    """
    n = num_sh_bases(degree)
    norm = torch.linalg.vector_norm(dirs, dim=-1, keepdim=True)
    d = dirs / norm.clamp_min(1e-12)
    x, y, z = d.unbind(-1)
    out = [torch.full_like(x, _C0)]
    if degree >= 1:
        out += [-_C1 * y, _C1 * z, -_C1 * x]
    if degree >= 2:
        xx, yy, zz = x * x, y * y, z * z
        out += [
            _C2[0] * x * y,
            -_C2[0] * y * z,
            _C2[1] * (2.0 * zz - xx - yy),
            -_C2[0] * x * z,
            _C2[2] * (xx - yy),
        ]
    if degree >= 3:
        out += [
            -_C3[0] * y * (3.0 * xx - yy),
            _C3[1] * x * y * z,
            -_C3[2] * y * (4.0 * zz - xx - yy),
            _C3[3] * z * (2.0 * zz - 3.0 * xx - 3.0 * yy),
            -_C3[2] * x * (4.0 * zz - xx - yy),
            _C3[4] * z * (xx - yy),
            -_C3[0] * x * (xx - 3.0 * yy),
        ]
    basis = torch.stack(out, dim=-1)
    assert basis.shape[-1] == n
    return basis


def eval_sh(degree: int, dirs: Tensor, coeffs: Tensor) -> Tensor:
    """Evaluate SH colours (before the +0.5 shift).

    Args:
        degree: active degree; only the first ``(degree + 1) ** 2`` coefficients are used.
        dirs: [..., 3] view directions (camera -> Gaussian).
        coeffs: [..., K, 3] SH coefficients, ``K >= (degree + 1) ** 2``.

    Returns:
        [..., 3].
    """
    n = num_sh_bases(degree)
    if coeffs.shape[-2] < n:
        raise ValueError(f"sh_degree {degree} needs {n} coefficients, got {coeffs.shape[-2]}")
    basis = sh_basis(degree, dirs)  # [..., n]
    return (basis.unsqueeze(-1) * coeffs[..., :n, :]).sum(dim=-2)


def sh_to_rgb(degree: int, dirs: Tensor, coeffs: Tensor) -> Tensor:
    """gsplat's activation of SH colours, ``clamp_min(eval_sh + 0.5, 0)``; shapes as eval_sh."""
    return torch.clamp_min(eval_sh(degree, dirs, coeffs) + 0.5, 0.0)


def rgb_to_sh0(rgb: Tensor) -> Tensor:
    """Degree-0 coefficient that renders as ``rgb``: [..., 3] -> [..., 3]."""
    return (rgb - 0.5) / _C0
