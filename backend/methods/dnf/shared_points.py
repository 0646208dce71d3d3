"""Inference of a field at the same points for many vectors (frames), the fast way.

Decoding a creature evaluates the motion field at the canonical mesh's V vertices for each of T
frames: ``FieldRep(x, vec, cond)`` with x repeated T times. :class:`~.train.FieldRep` is built
for training (every instance has its own points, gradients flow through the factors). Here
everything is fixed, which allows three savings that give the same function:

- **dense per-vector weights**: each layer's ``U diag(exp(logsv)) V^T (+ A diag(res) B^T)`` is
  formed once per vector (``[T, out, in]``, a few hundred thousand numbers) instead of applying
  the factors to every point (``k (in + out)`` multiply-adds per point instead of ``in out``;
  with the ``tiny`` preset's top-k at 75 % the dense form is 40 % cheaper);
- **split first layer**: the input is ``[PE(x), codes]`` and only PE(x) varies over points, so
  the code columns of layer 0 (and of every skip layer) become one bias per vector;
- bias fused into the product (``baddbmm``), the graph of :meth:`FieldMLP.run`, chunks of
  points bounded in memory.

The result equals ``FieldRep`` up to float rounding (tests/dnf/test_shared_points.py: worst
element under 1e-5 at every stage). Training and fitting keep ``FieldRep``.
"""

from __future__ import annotations

import torch

from .fields import posenc
from .train import FieldRep

#: rows (vectors x points) per chunk: bounds the [T, P, hidden] activations to ~2^20 rows
CHUNK_ROWS = 1 << 20


@torch.no_grad()
def layer_weights(rep: FieldRep, vecs: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per layer j: ``(W [T, out, in], b [out])`` of ``rep`` for vectors ``vecs`` ``[T, D]``."""
    dic, mlp = rep.dictionary, rep.mlp
    out = []
    if dic is None:
        for lin in mlp.linears:
            out.append((lin.weight[None].expand(vecs.shape[0], -1, -1), lin.bias))
        return out
    parts = rep.layout.split(vecs)
    for j in range(dic.layers):
        u, _, v, b = dic.factors(j)
        w = torch.matmul(u[None] * parts[f"L{j}.logsv"].exp()[:, None, :], v.T)
        if dic.residual[j]:
            w = w + torch.matmul(dic.A[j][None] * parts[f"L{j}.res"][:, None, :], dic.B[j].T)
        out.append((w, b))
    return out


@torch.no_grad()
def eval_shared_points(rep: FieldRep, x: torch.Tensor, vecs: torch.Tensor,
                       cond: torch.Tensor | None = None) -> torch.Tensor:
    """``rep`` at points ``x`` ``[P, 3]`` for each vector ``vecs`` ``[T, D]`` (``cond``
    ``[T, C]``: the shape code, for motion) -> ``[T, P, out]`` float32."""
    vecs = vecs.float()
    t = vecs.shape[0]
    code = rep.layout.get(vecs, "code")
    codes = torch.cat([cond.float(), code], dim=-1) if cond is not None else code  # [T, Dc]
    weights = layer_weights(rep, vecs)
    mlp = rep.mlp
    # per vector, the code columns (the last ones) of layer 0 and of each skip layer are a bias
    bias: list[torch.Tensor] = []
    for j, (w, b) in enumerate(weights):
        if j == 0 or j in mlp.skip:
            wc = w[..., w.shape[-1] - codes.shape[-1]:]  # [T, out, Dc]
            bias.append(torch.matmul(wc, codes[:, :, None])[..., 0] + b)  # [T, out]
        else:
            bias.append(b[None].expand(t, -1))

    def apply(j: int, h: torch.Tensor) -> torch.Tensor:
        # h is [PE(x)] or [h, PE(x)] (the graph re-concatenates the input we give it: PE
        # alone): its columns are the weight's first ones, the code columns are in the bias
        w = weights[j][0]
        return torch.baddbmm(bias[j][:, None, :], h, w[..., :h.shape[-1]].transpose(1, 2))

    out = torch.empty(t, x.shape[0], mlp.out_dim)
    step = max(256, CHUNK_ROWS // max(1, t))
    for s in range(0, x.shape[0], step):
        pe = posenc(x[s:s + step].float(), rep.pe_freqs)  # [P, E]
        out[:, s:s + step] = mlp.run(pe[None].expand(t, -1, -1), apply)
    return out
