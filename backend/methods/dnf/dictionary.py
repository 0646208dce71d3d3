"""The SVD dictionary of a trained MLP: shared directions, per-instance coefficients.

For every linear layer j of a :class:`~.fields.FieldMLP`, ``W_j = U_j diag(s_j) V_j^T`` (SVD in
float64). The dictionary keeps, shared by all instances and frozen: ``U_j[:, :k_j]``,
``V_j[:, :k_j]`` (the top-k directions; k_j = full rank before compression) and the bias b_j;
shared and trainable: a residual basis ``A_j`` ``[out, m_j]``, ``B_j`` ``[in, m_j]``. An
instance's weight of layer j is::

    W_j(i) = U_j diag(exp(logsv_j(i))) V_j^T + A_j diag(res_j(i)) B_j^T

with ``logsv_j(i)`` ``[k_j]`` and ``res_j(i)`` ``[m_j]`` the instance's slices of its flat
vector (:mod:`.layout`). :meth:`Dictionary.forward` evaluates the MLP for N instances at once
with batched matmuls, never forming the N weight matrices.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .fields import FieldMLP, run_graph
from .layout import FlatLayout

LOG_FLOOR = 1e-12


class Dictionary(nn.Module):
    """Shared factors of ``mlp`` (see module docstring).

    ``keep``: per-layer k_j (None = full rank); ``residual``: per-layer m_j (None = none).
    """

    def __init__(self, mlp: FieldMLP, keep: list[int] | None = None,
                 residual: list[int] | None = None, seed: int = 0):
        super().__init__()
        self.depth, self.skip = mlp.depth, mlp.skip
        self.in_dim, self.out_dim = mlp.in_dim, mlp.out_dim
        n = len(mlp.linears)
        keep = list(keep) if keep is not None else [None] * n
        residual = list(residual) if residual is not None else [0] * n
        if len(keep) != n or len(residual) != n:
            raise ValueError(f"keep/residual need {n} entries (one per linear layer)")
        gen = torch.Generator().manual_seed(seed)
        self.ranks: list[int] = []
        self.residual: list[int] = []
        self.A = nn.ParameterList()
        self.B = nn.ParameterList()
        for j, lin in enumerate(mlp.linears):
            w = lin.weight.detach()
            u, s, vh = torch.linalg.svd(w.double(), full_matrices=False)
            k = s.shape[0] if keep[j] is None else max(1, min(int(keep[j]), s.shape[0]))
            self.register_buffer(f"U{j}", u[:, :k].to(w.dtype).contiguous())
            self.register_buffer(f"V{j}", vh[:k].T.to(w.dtype).contiguous())
            self.register_buffer(f"s{j}", s[:k].to(w.dtype).contiguous())
            self.register_buffer(f"b{j}", lin.bias.detach().clone())
            self.ranks.append(k)
            m = int(residual[j])
            self.residual.append(m)
            out_f, in_f = w.shape
            a = _orthonormal(out_f, m, gen).to(w.device, w.dtype)
            b = _orthonormal(in_f, m, gen).to(w.device, w.dtype)
            self.A.append(nn.Parameter(a))
            self.B.append(nn.Parameter(b))

    @property
    def layers(self) -> int:
        return len(self.ranks)

    def factors(self, j: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(U [out, k], s [k], V [in, k], bias [out])`` of layer j."""
        return (getattr(self, f"U{j}"), getattr(self, f"s{j}"), getattr(self, f"V{j}"),
                getattr(self, f"b{j}"))

    def layout(self, code_dim: int, code_name: str = "code") -> FlatLayout:
        return FlatLayout(code_dim, self.ranks, self.residual, code_name)

    def init_vectors(self, codes: torch.Tensor, layout: FlatLayout) -> torch.Tensor:
        """Flat vectors ``[N, D]``: ``codes`` ``[N, d]``, shared log singular values, zero
        residual coefficients (so every instance starts as the trained MLP)."""
        parts = {"code": codes}
        for j in range(self.layers):
            s = self.factors(j)[1].clamp_min(LOG_FLOOR).log()
            parts[f"L{j}.logsv"] = s[None].expand(codes.shape[0], -1).to(codes.dtype)
            if self.residual[j]:
                parts[f"L{j}.res"] = codes.new_zeros(codes.shape[0], self.residual[j])
        return layout.join(parts)

    def weight(self, j: int, logsv: torch.Tensor, res: torch.Tensor | None = None) -> torch.Tensor:
        """One instance's dense weight ``[out, in]`` of layer j (``logsv`` ``[k]``)."""
        u, _, v, _ = self.factors(j)
        w = (u * logsv.exp()[None]) @ v.T
        if self.residual[j] and res is not None:
            w = w + (self.A[j] * res[None]) @ self.B[j].T
        return w

    def apply(self, j: int, h: torch.Tensor, logsv: torch.Tensor,
              res: torch.Tensor | None) -> torch.Tensor:
        """Layer j for N instances: ``h`` ``[N, P, in]``, ``logsv`` ``[N, k]``, ``res`` ``[N, m]``
        -> ``[N, P, out]``."""
        u, _, v, b = self.factors(j)
        y = ((h @ v) * logsv.exp()[:, None, :]) @ u.T
        if self.residual[j] and res is not None:
            y = y + ((h @ self.B[j]) * res[:, None, :]) @ self.A[j].T
        return y + b

    def forward(self, inp: torch.Tensor, vec: torch.Tensor, layout: FlatLayout) -> torch.Tensor:
        """The MLP on ``inp`` ``[N, P, in_dim]`` with per-instance ``vec`` ``[N, D]``."""
        parts = layout.split(vec)

        def lin(j: int, h: torch.Tensor) -> torch.Tensor:
            return self.apply(j, h, parts[f"L{j}.logsv"], parts.get(f"L{j}.res"))

        return run_graph(inp, self.depth, self.skip, lin)

    def per_instance_count(self, code_dim: int) -> int:
        return code_dim + sum(self.ranks) + sum(self.residual)

    def shared_count(self) -> int:
        """Numbers shared by all instances (U, V, biases, residual bases)."""
        n = 0
        for j in range(self.layers):
            u, _, v, b = self.factors(j)
            n += u.numel() + v.numel() + b.numel() + self.A[j].numel() + self.B[j].numel()
        return n


def _orthonormal(rows: int, cols: int, gen: torch.Generator) -> torch.Tensor:
    """``[rows, cols]`` with orthonormal columns (cols may exceed rows: then scaled noise)."""
    if cols == 0:
        return torch.zeros(rows, 0, dtype=torch.float64)
    g = torch.randn(rows, cols, generator=gen, dtype=torch.float64)
    if cols <= rows:
        return torch.linalg.qr(g)[0]
    return g / math.sqrt(rows)


def keep_counts(mlp: FieldMLP, fraction: float, full_below: int = 8, topk: int = 0) -> list[int]:
    """Top-k per layer: ``min(topk, rank)`` when ``topk`` > 0 (absolute, as the public code),
    else ``ceil(fraction * rank)``; layers of rank ``<= full_below`` (the output layers: 1 for
    the SDF, 3 for displacements) keep every direction, since dropping one there removes a whole
    output dimension."""
    out = []
    for lin in mlp.linears:
        r = min(lin.in_features, lin.out_features)
        k = min(r, topk) if topk > 0 else max(1, min(r, math.ceil(fraction * r)))
        out.append(r if r <= full_below else k)
    return out


def convert_vectors(vec: torch.Tensor, old: FlatLayout, new: FlatLayout) -> torch.Tensor:
    """Carry flat vectors ``[N, D_old]`` to layout ``new``: code kept, log singular values
    truncated to the new top-k, residual coefficients kept or zero-filled."""
    src = old.split(vec)
    parts = {"code": src["code"]}
    for j in range(new.layers):
        k = new.ranks[j]
        lsv = src[f"L{j}.logsv"]
        if lsv.shape[-1] < k:
            raise ValueError(f"layer {j}: cannot widen {lsv.shape[-1]} singular values to {k}")
        parts[f"L{j}.logsv"] = lsv[..., :k]
        m = new.residual[j]
        if m:
            r = src.get(f"L{j}.res")
            if r is None or r.shape[-1] != m:
                r = vec.new_zeros(vec.shape[:-1] + (m,))
            parts[f"L{j}.res"] = r
    return new.join(parts)
