"""The flat per-instance vector: which slice is which layer (part 2's tokenizer reads this).

A shape instance is one vector; a motion instance is one vector per frame. Both are::

    [ code (d) | L0.logsv (k_0) | L0.res (m_0) | L1.logsv (k_1) | L1.res (m_1) | ... ]

- ``code``: the auto-decoder latent code (shape code for shape, pose code of that frame for
  motion; the motion network also reads the shape code from the shape vector);
- ``Lj.logsv``: natural logs of layer j's per-instance singular values, for the shared
  directions ``U_j[:, :k_j]``, ``V_j[:, :k_j]`` sorted by the shared singular values (largest
  first); layer j's weight is ``U_j diag(exp(logsv)) V_j^T + A_j diag(res) B_j^T``;
- ``Lj.res``: coefficients of the shared residual basis ``A_j`` ``[out, m_j]``, ``B_j``
  ``[in, m_j]`` (absent, m_j = 0, before stage d).

Layers are numbered as in :class:`~.fields.FieldMLP` (hidden layers, then the output layer).
One token per layer = ``code`` and then each ``Lj.logsv ++ Lj.res``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Slice:
    name: str
    start: int
    stop: int
    layer: int  # -1 for the code
    kind: str  # code | logsv | res

    @property
    def size(self) -> int:
        return self.stop - self.start


class FlatLayout:
    """Slices of a flat vector: ``code_dim`` then per layer ``ranks[j]`` + ``residual[j]``."""

    def __init__(self, code_dim: int, ranks: list[int], residual: list[int] | None = None,
                 code_name: str = "code"):
        residual = list(residual) if residual is not None else [0] * len(ranks)
        if len(residual) != len(ranks):
            raise ValueError(f"residual has {len(residual)} entries for {len(ranks)} layers")
        self.code_dim, self.ranks, self.residual = int(code_dim), list(ranks), residual
        self.code_name = code_name
        slices = [Slice("code", 0, code_dim, -1, "code")]
        pos = code_dim
        for j, (k, m) in enumerate(zip(ranks, residual, strict=True)):
            slices.append(Slice(f"L{j}.logsv", pos, pos + k, j, "logsv"))
            pos += k
            if m:
                slices.append(Slice(f"L{j}.res", pos, pos + m, j, "res"))
                pos += m
        self.slices = slices
        self.size = pos
        self._by_name = {s.name: s for s in slices}

    @property
    def layers(self) -> int:
        return len(self.ranks)

    def get(self, vec: torch.Tensor, name: str) -> torch.Tensor:
        """The ``name`` slice of ``vec`` ``[..., size]`` -> ``[..., n]`` (a view)."""
        s = self._by_name[name]
        return vec[..., s.start:s.stop]

    def split(self, vec: torch.Tensor) -> dict[str, torch.Tensor]:
        """``vec`` ``[..., size]`` -> ``{slice name: [..., n]}`` (views)."""
        if vec.shape[-1] != self.size:
            raise ValueError(f"flat vector has {vec.shape[-1]} entries, layout needs {self.size}")
        return {s.name: vec[..., s.start:s.stop] for s in self.slices}

    def join(self, parts: dict[str, torch.Tensor]) -> torch.Tensor:
        """Inverse of :meth:`split`: every slice must be present with its size."""
        out = []
        for s in self.slices:
            if s.name not in parts:
                raise KeyError(f"missing slice {s.name!r}")
            t = parts[s.name]
            if t.shape[-1] != s.size:
                raise ValueError(f"slice {s.name!r} has {t.shape[-1]} entries, expected {s.size}")
            out.append(t)
        return torch.cat(out, dim=-1)

    def to_json(self) -> dict:
        return {"code_dim": self.code_dim, "ranks": self.ranks, "residual": self.residual,
                "code_name": self.code_name, "size": self.size,
                "slices": [[s.name, s.start, s.stop] for s in self.slices]}

    @classmethod
    def from_json(cls, d: dict) -> FlatLayout:
        lay = cls(d["code_dim"], d["ranks"], d["residual"], d.get("code_name", "code"))
        if "size" in d and d["size"] != lay.size:
            raise ValueError(f"layout size {d['size']} does not match its slices ({lay.size})")
        return lay

    def markdown(self, title: str = "") -> str:
        """A Markdown table of the slices."""
        rows = ["| slice | start | stop | size | meaning |", "|---|---|---|---|---|"]
        for s in self.slices:
            meaning = {"code": self.code_name, "logsv": f"log singular values of layer {s.layer}",
                       "res": f"residual-basis coefficients of layer {s.layer}"}[s.kind]
            rows.append(f"| `{s.name}` | {s.start} | {s.stop} | {s.size} | {meaning} |")
        head = f"**{title}** ({self.size} numbers)\n\n" if title else ""
        return head + "\n".join(rows)
