"""Signed distances to triangle meshes, robust to open and non-manifold surfaces.

- unsigned distance: exact point-triangle distance (projection inside the triangle, else the
  nearest of its three edges), brute force over all faces in chunks (torch, vectorised);
- sign: the generalised winding number (Jacobson et al. 2013), the sum of the signed solid angles
  of all triangles seen from the point over 4 pi (Van Oosterom-Strackee formula); a point is
  inside where ``|w| > 0.5``, which stays meaningful for open meshes, overlapping parts and
  meshes whose orientation is flipped as a whole.

Also: area-weighted surface sampling as (face, barycentric) pairs, so the same material points
can be followed through every frame of a constant-topology sequence, and the mesh checks that
turn a faceless mesh into an error and an open one into a warning.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch

from backend.data.mesh_pieces import face_components  # noqa: F401 - used here and re-exported
from shared.errors import FormatError


class OpenMeshWarning(UserWarning):
    """The mesh has boundary or non-manifold edges; signs come from winding numbers."""


def check_mesh(verts: np.ndarray, faces: np.ndarray, where: str) -> dict:
    """Validate a surface for SDF sampling; returns edge statistics.

    Raises :class:`FormatError` naming ``where`` for a mesh with no faces (or no vertices);
    warns :class:`OpenMeshWarning` for boundary (open) or non-manifold edges.
    """
    verts = np.asarray(verts)
    faces = np.asarray(faces)
    if verts.ndim != 2 or verts.shape[0] == 0:
        raise FormatError(f"{where}: mesh has no vertices; an SDF needs a triangle surface")
    if faces.ndim != 2 or faces.shape[0] == 0:
        raise FormatError(
            f"{where}: mesh has no faces (a point cloud?); an SDF needs a triangle surface")
    areas = triangle_areas(verts, faces)
    if not np.any(areas > 0):
        raise FormatError(f"{where}: every triangle of the mesh has zero area")
    edges = np.sort(faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    boundary = int(np.sum(counts == 1))
    nonmanifold = int(np.sum(counts > 2))
    if boundary or nonmanifold:
        warnings.warn(
            f"{where}: mesh is open or non-manifold ({boundary} boundary edges, {nonmanifold} "
            "non-manifold edges); accepted, the inside test uses generalised winding numbers",
            OpenMeshWarning, stacklevel=2,
        )
    return {"boundary_edges": boundary, "nonmanifold_edges": nonmanifold}


def triangle_areas(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Areas ``[F]`` of the triangles ``faces`` ``[F, 3]`` over ``verts`` ``[V, 3]``."""
    v = np.asarray(verts, dtype=np.float64)
    a, b, c = v[faces[:, 0]], v[faces[:, 1]], v[faces[:, 2]]
    return 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)


def sample_surface(
    verts: np.ndarray, faces: np.ndarray, n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` area-weighted surface samples as (face index ``[n]``, barycentrics ``[n, 3]``)."""
    areas = triangle_areas(verts, faces)
    total = areas.sum()
    if not total > 0:
        raise ValueError("cannot sample a surface of zero area")
    fi = rng.choice(faces.shape[0], size=n, p=areas / total)
    r1, r2 = rng.random(n), rng.random(n)
    s = np.sqrt(r1)
    bary = np.stack([1 - s, s * (1 - r2), s * r2], axis=1)
    return fi.astype(np.int64), bary.astype(np.float32)


def points_from_bary(
    verts: np.ndarray, faces: np.ndarray, fi: np.ndarray, bary: np.ndarray
) -> np.ndarray:
    """Points ``[..., n, 3]`` at (face, barycentric) samples of ``verts`` ``[..., V, 3]``."""
    tri = faces[fi]  # [n, 3]
    v = np.asarray(verts)
    return (v[..., tri[:, 0], :] * bary[:, 0:1] + v[..., tri[:, 1], :] * bary[:, 1:2]
            + v[..., tri[:, 2], :] * bary[:, 2:3]).astype(np.float32)


def _seg_dist2(p: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared distance ``[..., M]`` from points ``p`` ``[..., 1, 3]`` to segments ``a``-``b``
    ``[..., M, 3]``."""
    ab = b - a
    t = ((p - a) * ab).sum(-1) / (ab * ab).sum(-1).clamp_min(1e-20)
    q = a + t.clamp(0, 1).unsqueeze(-1) * ab
    return ((p - q) ** 2).sum(-1)


def _exact(p: torch.Tensor, tri: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Squared distance and solid angle / (4 pi), both ``[E, M]``, of points ``p`` ``[E, 1, 3]``
    to triangles ``tri`` ``[E, M, 3, 3]``."""
    a, b, c = tri[..., 0, :], tri[..., 1, :], tri[..., 2, :]
    pa, pb, pc = a - p, b - p, c - p
    la, lb, lc = pa.norm(dim=-1), pb.norm(dim=-1), pc.norm(dim=-1)
    det = (pa * torch.cross(pb, pc, dim=-1)).sum(-1)
    den = (la * lb * lc + (pa * pb).sum(-1) * lc + (pb * pc).sum(-1) * la
           + (pc * pa).sum(-1) * lb)
    wind = torch.atan2(det, den) / (2 * math.pi)
    n = torch.cross(b - a, c - a, dim=-1)
    inside = (((torch.cross(b - a, -pa, dim=-1) * n).sum(-1) >= 0)
              & ((torch.cross(c - b, -pb, dim=-1) * n).sum(-1) >= 0)
              & ((torch.cross(a - c, -pc, dim=-1) * n).sum(-1) >= 0))
    plane = (pa * n).sum(-1) ** 2 / (n * n).sum(-1).clamp_min(1e-30)
    edge = torch.minimum(torch.minimum(_seg_dist2(p, a, b), _seg_dist2(p, b, c)),
                         _seg_dist2(p, c, a))
    return torch.where(inside, plane, edge), wind


class TriangleClusters:
    """Triangles grouped by recursive median splits (at most ``leaf`` per cluster).

    ``tris`` ``[K, M, 3, 3]`` (padded), ``valid`` ``[K, M]``, ``centre`` ``[K, 3]`` (area-weighted
    centroid), ``radius`` ``[K]`` (bounds every vertex), ``area_vec`` ``[K, 3]`` (sum of
    area-weighted normals: the far-field dipole of the winding number).
    """

    def __init__(self, verts: np.ndarray, faces: np.ndarray, leaf: int = 8,
                 device: str = "cpu", flags: np.ndarray | None = None):
        tri = np.asarray(verts, dtype=np.float64)[np.asarray(faces)]  # [F, 3, 3]
        cen = tri.mean(axis=1)
        groups: list[np.ndarray] = []
        stack = [np.arange(tri.shape[0])]
        while stack:
            idx = stack.pop()
            if idx.shape[0] <= leaf:
                groups.append(idx)
                continue
            axis = int(np.argmax(np.ptp(cen[idx], axis=0)))
            order = idx[np.argsort(cen[idx, axis], kind="stable")]
            half = order.shape[0] // 2
            stack += [order[:half], order[half:]]
        k = len(groups)
        m = max(g.shape[0] for g in groups)
        tris = np.zeros((k, m, 3, 3))
        valid = np.zeros((k, m), dtype=bool)
        flag = np.zeros((k, m), dtype=bool)
        area_vec = 0.5 * np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        area = np.linalg.norm(area_vec, axis=1)
        centre = np.zeros((k, 3))
        radius = np.zeros(k)
        dip = np.zeros((k, 3))
        for i, g in enumerate(groups):
            tris[i, :g.shape[0]] = tri[g]
            valid[i, :g.shape[0]] = True
            if flags is not None:
                flag[i, :g.shape[0]] = flags[g]
            w = area[g]
            centre[i] = (cen[g] * w[:, None]).sum(0) / w.sum() if w.sum() > 0 else cen[g].mean(0)
            radius[i] = np.linalg.norm(tri[g].reshape(-1, 3) - centre[i], axis=1).max()
            dip[i] = area_vec[g].sum(0)
        f32 = dict(dtype=torch.float32, device=device)
        self.tris = torch.as_tensor(tris, **f32)
        self.valid = torch.as_tensor(valid, device=device)
        self.flags = torch.as_tensor(flag, device=device)  # per-triangle mark (optional)
        self.centre = torch.as_tensor(centre, **f32)
        self.radius = torch.as_tensor(radius, **f32)
        self.area_vec = torch.as_tensor(dip, **f32)


def distance_and_winding(
    points: np.ndarray, verts: np.ndarray, faces: np.ndarray, device: str = "cpu",
    beta: float = 2.5, chunk: int = 1024,
) -> tuple[np.ndarray, np.ndarray]:
    """Unsigned distance ``[P]`` and generalised winding number ``[P]`` of ``points`` ``[P, 3]``.

    Distances are exact. Winding numbers are exact over every cluster of triangles closer than
    ``beta`` times its radius and use the cluster's dipole (first-order far field, as in fast
    winding numbers) beyond; clusters that could hold the nearest triangle (lower bound below an
    upper bound from surface samples) are evaluated exactly too.
    """
    d, w, _ = _distance_winding(points, verts, faces, None, 0.0, device, beta, chunk)
    return d, w


def _distance_winding(
    points: np.ndarray, verts: np.ndarray, faces: np.ndarray, subset: np.ndarray | None,
    margin: float, device: str = "cpu", beta: float = 2.5, chunk: int = 1024,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """:func:`distance_and_winding` plus, for a face mask ``subset`` ``[F]``, the distance to
    those faces, exact wherever it is below the distance to all faces plus ``margin`` (larger
    or inf elsewhere)."""
    from scipy.spatial import cKDTree

    verts = np.asarray(verts, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    order = None
    if subset is not None:
        order = np.asarray(subset, dtype=bool)
    cl = TriangleClusters(verts, faces, device=device, flags=order)
    rng = np.random.default_rng(0)
    fi, bary = sample_surface(verts, faces, max(4096, 4 * faces.shape[0]), rng)
    probe = np.concatenate([verts, points_from_bary(verts, faces, fi, bary)])
    upper, _ = cKDTree(probe).query(np.asarray(points, dtype=np.float64))
    pts = torch.as_tensor(np.asarray(points, dtype=np.float32), device=device)
    up = torch.as_tensor(upper, dtype=torch.float32, device=device) + 1e-6 + margin
    dist = torch.empty(pts.shape[0], device=device)
    dsub = torch.empty(pts.shape[0], device=device) if order is not None else None
    wind = torch.empty(pts.shape[0], device=device)
    valid = cl.valid
    with torch.no_grad():
        for s in range(0, pts.shape[0], chunk):
            p = pts[s:s + chunk]  # [P, 3]
            rel = cl.centre[None] - p[:, None]  # [P, K, 3]
            d = rel.norm(dim=-1)  # [P, K]
            exact = (d < beta * cl.radius[None]) | (d - cl.radius[None] <= up[s:s + chunk, None])
            far = (cl.area_vec[None] * rel).sum(-1) / d.clamp_min(1e-12) ** 3 / (4 * math.pi)
            w = torch.where(exact, torch.zeros_like(far), far).sum(-1)
            d2 = torch.full((p.shape[0],), float("inf"), device=device)
            d2s = torch.full((p.shape[0],), float("inf"), device=device)
            pi, ki = exact.nonzero(as_tuple=True)
            step = max(1, 60_000 // cl.tris.shape[1])
            for e in range(0, pi.shape[0], step):
                pe, ke = pi[e:e + step], ki[e:e + step]
                dd, ww = _exact(p[pe, None, :], cl.tris[ke])
                ok = valid[ke]
                ww = torch.where(ok, ww, torch.zeros_like(ww)).sum(-1)
                inf = torch.full_like(dd, float("inf"))
                if dsub is not None:
                    sub = torch.where(ok & cl.flags[ke], dd, inf).amin(-1)
                    d2s = d2s.scatter_reduce(0, pe, sub, reduce="amin")
                dd = torch.where(ok, dd, inf).amin(-1)
                w = w.index_add(0, pe, ww)
                d2 = d2.scatter_reduce(0, pe, dd, reduce="amin")
            dist[s:s + chunk] = d2.clamp_min(0).sqrt()
            wind[s:s + chunk] = w
            if dsub is not None:
                dsub[s:s + chunk] = d2s.clamp_min(0).sqrt()
    return (dist.cpu().numpy(), wind.cpu().numpy(),
            None if dsub is None else dsub.cpu().numpy())


def signed_distance(
    points: np.ndarray, verts: np.ndarray, faces: np.ndarray, device: str = "cpu"
) -> np.ndarray:
    """SDF ``[P]`` (negative inside, by ``|winding| > 0.5``) of ``points`` ``[P, 3]``."""
    d, w = distance_and_winding(points, verts, faces, device)
    return np.where(np.abs(w) > 0.5, -d, d).astype(np.float32)


def inside(points: np.ndarray, verts: np.ndarray, faces: np.ndarray,
           device: str = "cpu") -> np.ndarray:
    """Boolean ``[P]``: generalised winding number test."""
    return np.abs(distance_and_winding(points, verts, faces, device)[1]) > 0.5



def open_faces(faces: np.ndarray) -> np.ndarray:
    """Boolean ``[F]``: faces of connected components that are not closed 2-manifolds (some
    edge with one face, or with more than two)."""
    faces = np.asarray(faces, dtype=np.int64)
    comp = face_components(faces)
    edges = np.sort(faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    _, inv, counts = np.unique(edges, axis=0, return_inverse=True, return_counts=True)
    bad_edge = (counts[inv.reshape(-1)] != 2).reshape(-1, 3).any(axis=1)  # per face
    bad_comp = np.unique(comp[bad_edge])
    return np.isin(comp, bad_comp)


def solid_sdf(points: np.ndarray, verts: np.ndarray, faces: np.ndarray, shell: float,
              device: str = "cpu") -> np.ndarray:
    """SDF ``[P]`` of the solid that a possibly open, multi-part surface stands for.

    The solid is the union of (1) the generalised-winding-number inside region of all faces and
    (2) a shell of half-thickness ``shell`` around the faces of open components (see
    :func:`open_faces`: single-plane fins, open-bottomed horns). As a union of solids, its SDF is
    the minimum of ``+-d_all`` (``d_all``: unsigned distance to every face, negative where
    ``|w| > 0.5``) and ``d_open - shell``. A closed mesh (no open component) or ``shell <= 0``
    gives the plain winding-number SDF. Without (2) a fin that is one plane is 'outside' on both
    sides and vanishes from the SDF.
    """
    mask = open_faces(faces) if shell > 0 else np.zeros(len(faces), bool)
    d, w, d_open = _distance_winding(points, verts, faces, mask if mask.any() else None,
                                     shell, device)
    sdf = np.where(np.abs(w) > 0.5, -d, d).astype(np.float32)
    if d_open is not None:  # exact wherever d_open - shell < d, which is all the min needs
        sdf = np.minimum(sdf, (d_open - shell).astype(np.float32))
    return sdf


def solid_pieces(verts: np.ndarray, faces: np.ndarray, touch: float, samples: int = 20_000,
                 seed: int = 0) -> int:
    """Pieces of the source solid: the mesh's connected components, joined where they come
    within ``touch`` of each other (dense surface samples) or lie inside another part
    (winding number of the other parts > 0.5 at most of their samples)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    faces = np.asarray(faces, dtype=np.int64)
    comp = face_components(faces)
    _, comp = np.unique(comp, return_inverse=True)
    k = int(comp.max()) + 1
    if k == 1:
        return 1
    rng = np.random.default_rng(seed)
    fi, bary = sample_surface(verts, faces, samples, rng)
    pts = points_from_bary(verts, faces, fi, bary)
    lab = comp[fi]
    pairs = cKDTree(pts).query_pairs(touch, output_type="ndarray")
    pairs = pairs[lab[pairs[:, 0]] != lab[pairs[:, 1]]]
    edges = [lab[pairs]] if pairs.size else []
    inside_of = []
    for c in range(k):
        sel = lab == c
        if not sel.any():
            continue
        rest = faces[comp != c]
        _, w = distance_and_winding(pts[sel][:256], verts, rest)
        if np.mean(np.abs(w) > 0.5) > 0.5:
            inside_of.append(c)
    graph_e = np.concatenate(edges) if edges else np.zeros((0, 2), np.int64)
    g = coo_matrix((np.ones(graph_e.shape[0]), (graph_e[:, 0], graph_e[:, 1])), shape=(k, k))
    _, labels = connected_components(g, directed=False)
    roots = {int(labels[c]) for c in range(k) if c not in inside_of}
    return max(1, len(roots))
