"""Mesh from 4D Gaussians: a closed surface where the Gaussians are, moved with them (one
topology), coloured by them."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from backend.methods.ds4d.mesh import MeshConfig, extract_surface, follow_weights, mesh_frames
from backend.render.gaussians import Gaussians


def ball(n: int = 3000, radius: float = 0.5, scale: float = 0.04, seed: int = 0) -> Gaussians:
    """``n`` opaque round Gaussians filling a ball; red on the +x side, blue elsewhere."""
    g = torch.Generator().manual_seed(seed)
    d = torch.nn.functional.normalize(torch.randn(n, 3, generator=g, dtype=torch.float64), dim=1)
    r = radius * torch.rand(n, 1, generator=g, dtype=torch.float64) ** (1 / 3)
    means = (d * r).float()
    quats = torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1)
    log_scales = torch.full((n, 3), math.log(scale))
    opac = torch.full((n, 1), 4.0)  # sigmoid: 0.982
    rgb = torch.where(means[:, :1] > 0, torch.tensor([[1.0, 0, 0]]), torch.tensor([[0, 0, 1.0]]))
    sh0 = ((rgb - 0.5) / 0.28209479177387814)[:, None, :]
    return Gaussians(means, quats, log_scales, opac, sh0, torch.zeros(n, 0, 3))


def moved(g: Gaussians, means: torch.Tensor, quats: torch.Tensor | None = None) -> Gaussians:
    q = g.quats if quats is None else quats.float()
    return Gaussians(means.float(), q, g.log_scales, g.opacity_logits, g.sh0, g.shN)


def turned(q: torch.Tensor, axis_angle_z: float) -> torch.Tensor:
    """Quaternions (w, x, y, z) ``[N, 4]`` turned by ``axis_angle_z`` about z (r * q)."""
    c, s = math.cos(axis_angle_z / 2), math.sin(axis_angle_z / 2)
    w, x, y, z = q.double().unbind(-1)
    return torch.stack([c * w - s * z, c * x - s * y, c * y + s * x, c * z + s * w], -1)


def edge_uses(faces: np.ndarray) -> np.ndarray:
    e = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    return np.unique(e, axis=0, return_counts=True)[1]


def test_the_surface_of_a_ball_of_gaussians_is_a_closed_sphere_near_its_radius():
    verts, faces = extract_surface(ball(), MeshConfig(resolution=48))
    assert len(faces) > 1000 and np.all(edge_uses(faces) == 2)
    r = np.linalg.norm(verts, axis=1)
    # the density falls to the level about one Gaussian scale outside the filled radius
    assert 0.45 < r.min() and r.max() < 0.62, (r.min(), r.max())


def test_a_translation_moves_the_mesh_by_exactly_that_and_keeps_its_topology():
    g = ball()
    shift = torch.tensor([0.3, -0.1, 0.05], dtype=torch.float64)
    frames = [moved(g, g.means.double() + k * shift) for k in range(3)]
    verts, faces, colors = mesh_frames(g, frames, MeshConfig(resolution=40))
    assert verts.shape[0] == 3 and faces.max() < verts.shape[1]
    for k in range(3):
        assert np.abs(verts[k] - verts[0] - k * shift.numpy()).max() < 1e-5


def test_a_rigid_rotation_is_followed_exactly():
    g = ball()
    a = 0.4
    rot = torch.tensor([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]],
                       dtype=torch.float64)
    cfg = MeshConfig(resolution=40)
    frame = moved(g, g.means.double() @ rot.T, turned(g.quats, a))
    verts, _, _ = mesh_frames(g, [g, frame], cfg)
    assert np.abs(verts[1] - verts[0] @ rot.numpy().T).max() < 1e-5


def test_vertex_colours_come_from_the_nearest_gaussians():
    g = ball()
    _, _, colors = mesh_frames(g, [g], MeshConfig(resolution=40))
    verts, _ = extract_surface(g, MeshConfig(resolution=40))
    red = colors[:, 0] > 0.5
    assert np.all(colors[:, 3] == 1.0)
    # away from the x = 0 seam, +x vertices are red and -x vertices blue
    assert np.all(red[verts[:, 0] > 0.1]) and not np.any(red[verts[:, 0] < -0.1])


def test_weights_are_a_partition_of_unity_over_the_nearest_gaussians():
    g = ball(n=500)
    verts, _ = extract_surface(g, MeshConfig(resolution=32))
    idx, w = follow_weights(verts, g, 8)
    assert idx.shape == (len(verts), 8) and np.allclose(w.sum(1), 1.0) and np.all(w >= 0)


def test_too_high_a_level_says_so():
    from shared.errors import JobError

    with pytest.raises(JobError, match="lower the level"):
        extract_surface(ball(n=200), MeshConfig(resolution=32, level=9.0))
