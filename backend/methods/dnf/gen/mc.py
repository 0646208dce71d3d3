"""The SDF grid for marching cubes, evaluated coarse to fine near the surface only.

A dense ``R^3`` grid at R = 128 is two million SDF evaluations; only the points around the
zero level set change the mesh. Marching cubes (PyMCubes) reads a grid value only through the
grid edges whose two ends have opposite signs (each such edge gets one vertex, placed by the
two values), so two grids give the same mesh when they have the same sign everywhere and the
same values at both ends of every sign-changing edge.

:func:`sdf_grid_fine` builds such a grid:

1. evaluate the points of a coarse grid (every ``stride``-th index along each axis, plus the
   last one);
2. going down one level at a time (stride halved), evaluate only the points inside coarse
   cells that are *near* the surface: a corner value within ``margin`` x the cell diagonal of
   zero, or corners of both signs. Every other point is *filled* with the sign of its cell
   (all corners agree) and a magnitude larger than any evaluated value;
3. at the finest level, repeat until none is left: every filled point at one end of a
   sign-changing grid edge is evaluated (so a filled sign that was wrong is found and fixed
   rather than meshed).

Step 3 makes the result the dense grid's everywhere the mesh looks, provided the filled signs
are right, i.e. the SDF does not flip sign inside a far cell without a neighbouring change to
reveal it. ``margin`` guards that: a true SDF (1-Lipschitz) keeps its sign over a cell whose
corner value exceeds the cell diagonal, so ``margin = 1`` is exact for it; a learned SDF may
grow faster than a distance, and step 3 catches a wrong sign next to the surface (the shipped
model meshed identically down to 0.75 at 64^3); tests/dnf/test_creature.py checks mesh
equality with the dense grid.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

#: points [P, 3] float32 -> SDF [P] float32
SdfFn = Callable[[torch.Tensor], np.ndarray]


def _level_index(res: int, stride: int) -> np.ndarray:
    """Fine-grid indices of a level: ``0, stride, 2 stride, ...`` and the last index."""
    idx = np.arange(0, res, stride)
    return idx if idx[-1] == res - 1 else np.append(idx, res - 1)


def _axis(res: int, bound: float) -> np.ndarray:
    return np.linspace(-bound, bound, res, dtype=np.float32)


def _points(axis: np.ndarray, ii: np.ndarray, jj: np.ndarray, kk: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.stack([axis[ii], axis[jj], axis[kk]], axis=-1))


def dense_grid(sdf: SdfFn, res: int, bound: float = 1.0, chunk: int = 65_536) -> np.ndarray:
    """Every point of the ``res^3`` grid over ``[-bound, bound]^3`` -> ``[R, R, R]`` float32."""
    ax = _axis(res, bound)
    ii, jj, kk = (a.reshape(-1) for a in np.meshgrid(*(np.arange(res),) * 3, indexing="ij"))
    out = np.empty(res ** 3, np.float32)
    for s in range(0, out.size, chunk):
        out[s:s + chunk] = sdf(_points(ax, ii[s:s + chunk], jj[s:s + chunk], kk[s:s + chunk]))
    return out.reshape(res, res, res)


class _Grid:
    """The fine grid being filled: values, which are evaluated, and the evaluation count."""

    def __init__(self, sdf: SdfFn, res: int, bound: float, chunk: int):
        self.sdf, self.res, self.chunk = sdf, res, chunk
        self.axis = _axis(res, bound)
        self.values = np.zeros((res,) * 3, np.float32)
        self.known = np.zeros((res,) * 3, bool)
        self.evaluations = 0

    def evaluate(self, flat: np.ndarray) -> None:
        """Evaluate the fine points with flat indices ``flat`` not yet known."""
        flat = flat[~self.known.reshape(-1)[flat]]
        if flat.size == 0:
            return
        ii, jj, kk = np.unravel_index(flat, self.values.shape)
        vals = np.empty(flat.size, np.float32)
        for s in range(0, flat.size, self.chunk):
            vals[s:s + self.chunk] = self.sdf(_points(self.axis, ii[s:s + self.chunk],
                                                      jj[s:s + self.chunk], kk[s:s + self.chunk]))
        self.values.reshape(-1)[flat] = vals
        self.known.reshape(-1)[flat] = True
        self.evaluations += int(flat.size)


def _near_cells(vals: np.ndarray, known: np.ndarray, diag: np.ndarray, margin: float):
    """Cells ``[n-1]^3`` of a level's sub-grid ``vals`` that may hold the surface."""
    corners = [vals[a:vals.shape[0] - 1 + a, b:vals.shape[1] - 1 + b, c:vals.shape[2] - 1 + c]
               for a in (0, 1) for b in (0, 1) for c in (0, 1)]
    kn = [known[a:known.shape[0] - 1 + a, b:known.shape[1] - 1 + b, c:known.shape[2] - 1 + c]
          for a in (0, 1) for b in (0, 1) for c in (0, 1)]
    pos = np.any([v > 0 for v in corners], axis=0)
    neg = np.any([v <= 0 for v in corners], axis=0)
    close = np.any([(np.abs(v) < margin * diag) & k for v, k in zip(corners, kn, strict=True)],
                   axis=0)
    return (pos & neg) | close


def sdf_grid_fine(sdf: SdfFn, res: int, bound: float = 1.0, stride: int = 8,
                  margin: float = 1.0, chunk: int = 65_536) -> tuple[np.ndarray, dict]:
    """A ``[R, R, R]`` grid that meshes as the dense grid (module docstring) and
    ``{"evaluations", "dense", "fraction"}`` (SDF evaluations used vs the dense grid's)."""
    if stride < 1 or stride & (stride - 1):
        raise ValueError(f"stride must be a power of two, got {stride}")
    g = _Grid(sdf, res, bound, chunk)
    step = 2 * bound / (res - 1)
    idx = _level_index(res, stride)
    ii, jj, kk = np.meshgrid(idx, idx, idx, indexing="ij")
    g.evaluate(np.ravel_multi_index((ii.ravel(), jj.ravel(), kk.ravel()), g.values.shape))
    big = np.float32(max(1.0, float(np.abs(g.values).max())) * 4.0)
    s = stride
    while s > 1:
        coarse = _level_index(res, s)
        sub = np.ix_(coarse, coarse, coarse)
        span = np.diff(coarse).astype(np.float32) * step  # cell sides along an axis
        diag = np.sqrt(span[:, None, None] ** 2 + span[None, :, None] ** 2
                       + span[None, None, :] ** 2)
        near = _near_cells(g.values[sub], g.known[sub], diag, margin)
        s //= 2
        fine = _level_index(res, s)
        # each fine index lies in coarse cell c = searchsorted - 1 (the last in the last cell);
        # one on a coarse boundary belongs to both neighbouring cells
        cell = np.clip(np.searchsorted(coarse, fine, side="right") - 1, 0, len(coarse) - 2)
        on = np.isin(fine, coarse)
        prev = np.clip(cell - 1, 0, len(coarse) - 2)
        lo = np.where(on & (fine == coarse[cell]), prev, cell)  # cells touching each index
        sel = np.zeros((len(fine),) * 3, bool)
        for a in (lo, cell):
            for b in (lo, cell):
                for c in (lo, cell):
                    sel |= near[np.ix_(a, b, c)]
        fi, fj, fk = np.nonzero(sel)
        flat = np.ravel_multi_index((fine[fi], fine[fj], fine[fk]), g.values.shape)
        g.evaluate(flat)
        # fill the rest of this level with the sign of its cell (all its corners agree)
        sign_src = np.sign(g.values[sub])
        sign_src[sign_src == 0] = -1
        rest = ~sel & ~g.known[np.ix_(fine, fine, fine)]
        ri, rj, rk = np.nonzero(rest)
        ci, cj, ck = cell[ri], cell[rj], cell[rk]
        g.values[fine[ri], fine[rj], fine[rk]] = sign_src[ci, cj, ck] * big
    _fix_crossings(g)
    dense = res ** 3
    return g.values, {"evaluations": g.evaluations, "dense": dense,
                      "fraction": g.evaluations / dense}


def _fix_crossings(g: _Grid) -> None:
    """Evaluate filled points at an end of a sign-changing edge until there is none."""
    while True:
        pos = g.values > 0
        todo = np.zeros_like(g.known)
        for ax in range(3):
            a = [slice(None)] * 3
            b = [slice(None)] * 3
            a[ax], b[ax] = slice(0, -1), slice(1, None)
            cross = pos[tuple(a)] != pos[tuple(b)]
            todo[tuple(a)] |= cross
            todo[tuple(b)] |= cross
        todo &= ~g.known
        if not todo.any():
            return
        g.evaluate(np.flatnonzero(todo))
