"""EWA projection of 3D Gaussians into pinhole cameras, with gsplat's rules.

World -> camera with an OpenCV world-to-camera ``viewmat`` (camera looks down +Z, y down),
perspective Jacobian with gsplat's clamping of x/z and y/z to 1.3x the field of view, 2D
covariance ``J W S W^T J^T`` plus ``eps2d`` on the diagonal, conic = inverse 2D covariance, and an
opacity-aware screen radius ``ceil(min(3.33, sqrt(2 ln(255 o))) * sqrt(cov_ii))``. A Gaussian is
culled for a camera (radius 0) when its depth is outside [near, far], the blurred covariance is
not positive, its opacity is below 1/255, its radius is not above ``radius_clip`` or its box lies
outside the image. Everything is differentiable through autograd; culled entries carry finite
placeholder values so no NaN reaches the backward pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

ALPHA_THRESHOLD = 1.0 / 255.0


@dataclass
class Projection:
    """Per camera and Gaussian results; ``C`` cameras, ``N`` Gaussians.

    means2d: [C, N, 2] pixel coordinates (pixel centres at +0.5).
    conics: [C, N, 3] upper triangle (a, b, c) of the inverse 2D covariance.
    depths: [C, N] camera-space z.
    radii: [C, N, 2] int32 screen radii in pixels, 0 where culled.
    opacities: [C, N] opacities used for compositing (times the compensation when antialiased).
    compensations: [C, N] or None, sqrt(det(cov) / det(cov + eps2d I)).
    """

    means2d: Tensor
    conics: Tensor
    depths: Tensor
    radii: Tensor
    opacities: Tensor
    compensations: Tensor | None = None

    @property
    def visible(self) -> Tensor:
        """[C, N] bool, True where the Gaussian is rendered in that camera."""
        return (self.radii > 0).all(dim=-1)


def quat_to_rotmat(quats: Tensor) -> Tensor:
    """Rotation matrices of quaternions (w, x, y, z), normalised first: [..., 4] -> [..., 3, 3]."""
    q = quats / torch.linalg.vector_norm(quats, dim=-1, keepdim=True).clamp_min(1e-12)
    w, x, y, z = q.unbind(-1)
    rows = [
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ]
    return torch.stack(rows, dim=-1).reshape(q.shape[:-1] + (3, 3))


def covariance_factor(quats: Tensor, scales: Tensor) -> Tensor:
    """M = R(q) diag(s) so that the 3D covariance is M M^T: [..., 4], [..., 3] -> [..., 3, 3]."""
    return quat_to_rotmat(quats) * scales.unsqueeze(-2)


def project_gaussians(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    opacities: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    eps2d: float = 0.3,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    radius_clip: float = 0.0,
    antialiased: bool = False,
) -> Projection:
    """Project N Gaussians into C pinhole cameras.

    Args:
        means: [N, 3] world positions.
        quats: [N, 4] rotations (w, x, y, z), any norm.
        scales: [N, 3] standard deviations along the rotated axes.
        opacities: [N] in [0, 1].
        viewmats: [C, 4, 4] world-to-camera (OpenCV axes).
        Ks: [C, 3, 3] pinhole intrinsics.
        width, height: image size in pixels.
        eps2d: added to the diagonal of the 2D covariance (low-pass filter).
        near_plane, far_plane: depth range kept.
        radius_clip: Gaussians whose radii are both <= this (pixels) are skipped.
        antialiased: multiply opacities by the eps2d compensation (gsplat "antialiased" mode).

    Returns:
        A :class:`Projection`.
    """
    C = viewmats.shape[0]
    R = viewmats[:, :3, :3]  # [C, 3, 3]
    t = viewmats[:, :3, 3]  # [C, 3]
    means_c = torch.einsum("cij,nj->cni", R, means) + t[:, None, :]  # [C, N, 3]
    x, y, z = means_c.unbind(-1)

    depth_ok = (z >= near_plane) & (z <= far_plane)
    z_safe = torch.where(depth_ok, z, torch.ones_like(z))

    fx, fy = Ks[:, 0, 0, None], Ks[:, 1, 1, None]  # [C, 1]
    cx, cy = Ks[:, 0, 2, None], Ks[:, 1, 2, None]
    tan_x, tan_y = 0.5 * width / fx, 0.5 * height / fy
    lim_xp, lim_xn = (width - cx) / fx + 0.3 * tan_x, cx / fx + 0.3 * tan_x
    lim_yp, lim_yn = (height - cy) / fy + 0.3 * tan_y, cy / fy + 0.3 * tan_y
    tx = z_safe * torch.minimum(torch.maximum(x / z_safe, -lim_xn), lim_xp)
    ty = z_safe * torch.minimum(torch.maximum(y / z_safe, -lim_yn), lim_yp)

    rz = 1.0 / z_safe
    zero = torch.zeros_like(rz)
    J = torch.stack(
        [fx * rz, zero, -fx * tx * rz * rz, zero, fy * rz, -fy * ty * rz * rz], dim=-1
    ).reshape(C, -1, 2, 3)  # [C, N, 2, 3]

    M = covariance_factor(quats, scales)  # [N, 3, 3]
    JW = torch.einsum("cnij,cjk->cnik", J, R)  # [C, N, 2, 3]
    T = torch.einsum("cnik,nkl->cnil", JW, M)  # [C, N, 2, 3]
    cov = T @ T.transpose(-1, -2)  # [C, N, 2, 2]
    c00, c01, c11 = cov[..., 0, 0], cov[..., 0, 1], cov[..., 1, 1]
    det_orig = c00 * c11 - c01 * c01
    c00 = c00 + eps2d
    c11 = c11 + eps2d
    det = c00 * c11 - c01 * c01
    det_ok = det > 0
    det_safe = torch.where(det_ok, det, torch.ones_like(det))
    conics = torch.stack([c11 / det_safe, -c01 / det_safe, c00 / det_safe], dim=-1)

    means2d = torch.stack([fx * x * rz + cx, fy * y * rz + cy], dim=-1)  # [C, N, 2]

    opac = opacities.unsqueeze(0).expand(C, -1)
    compensations = None
    if antialiased:
        compensations = torch.sqrt(torch.clamp_min(det_orig / det_safe, 0.0))
        opac = opac * compensations

    with torch.no_grad():
        op = opac.detach()
        opac_ok = op >= ALPHA_THRESHOLD
        extend = torch.sqrt(2.0 * torch.log(op.clamp_min(ALPHA_THRESHOLD) / ALPHA_THRESHOLD))
        extend = torch.clamp_max(extend, 3.33)
        rx = torch.ceil(extend * torch.sqrt(c00.detach().clamp_min(0)))
        ry = torch.ceil(extend * torch.sqrt(c11.detach().clamp_min(0)))
        big = (rx > radius_clip) | (ry > radius_clip)
        m2 = means2d.detach()
        inside = (
            (m2[..., 0] + rx > 0)
            & (m2[..., 0] - rx < width)
            & (m2[..., 1] + ry > 0)
            & (m2[..., 1] - ry < height)
        )
        keep = depth_ok & det_ok & opac_ok & big & inside
        radii = torch.stack([rx, ry], dim=-1) * keep.unsqueeze(-1)
        radii = radii.to(torch.int32)

    return Projection(
        means2d=means2d,
        conics=conics,
        depths=z,
        radii=radii,
        opacities=opac,
        compensations=compensations,
    )


def camera_centers(viewmats: Tensor) -> Tensor:
    """World-space camera centres from world-to-camera matrices: [C, 4, 4] -> [C, 3]."""
    R = viewmats[:, :3, :3]
    t = viewmats[:, :3, 3:]
    return -(R.transpose(-1, -2) @ t)[..., 0]


def tile_grid(width: int, height: int, tile_size: int) -> tuple[int, int]:
    """Number of tiles along x and y."""
    return math.ceil(width / tile_size), math.ceil(height / tile_size)
