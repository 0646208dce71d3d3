"""Flat per-instance vectors <-> standardised tokens (one token per layer, plus the code token).

Token ``0`` is the ``code`` slice of the :class:`~..layout.FlatLayout`; token ``j + 1`` is layer
j's ``Lj.logsv ++ Lj.res`` (contiguous in the flat vector). Tokens have different widths
``w_i``; they are padded with zeros to the widest ``W`` and :attr:`Tokenizer.mask` ``[n, W]``
says which entries are real, so a batch of vectors ``[..., D]`` becomes ``[..., n, W]``.

Every dimension is standardised with statistics of the fitted training vectors (raw values
differ by an order of magnitude between dimensions): ``z = (x - mean) / scale``, where ``scale``
is the dimension's standard deviation rounded to the nearest power of two (so standardised
values have a spread between 0.71 and 1.41). The mean is rounded to float32 and the arithmetic is
float64, so for float32 inputs every step is exact (the difference of two float32 numbers is a
float64 number when their magnitudes are within 2^29 of each other, or one of them is 0, and
scaling by a power of two is exact): :meth:`Tokenizer.from_tokens` undoes
:meth:`Tokenizer.to_tokens` bit for bit. Tokens are float64; the denoisers take them as float32.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from shared.errors import FormatError

from ..layout import FlatLayout

FORMAT = "anim4d-dnf-tokens"
VERSION = 1
#: standard deviations below this (constant dimensions) use it as their scale (2^-20 ~ 1e-6)
MIN_SCALE = 2.0 ** -20


def token_ranges(layout: FlatLayout) -> list[tuple[str, int, int]]:
    """``(name, start, stop)`` of every token in the flat vector: ``code``, ``L0``, ``L1``..."""
    out = [("code", 0, layout.code_dim)]
    pos = layout.code_dim
    for j, (k, m) in enumerate(zip(layout.ranks, layout.residual, strict=True)):
        out.append((f"L{j}", pos, pos + k + m))
        pos += k + m
    if pos != layout.size:
        raise ValueError(f"layout slices end at {pos}, layout size is {layout.size}")
    return out


class Tokenizer:
    """Standardised tokens of one layout (see module docstring).

    ``mean`` and ``scale`` ``[D]`` (float64, ``scale`` powers of two); ``count``: how many vectors
    (instances, or instance-frames for motion) the statistics were computed from.
    """

    def __init__(self, layout: FlatLayout, mean: torch.Tensor, scale: torch.Tensor,
                 count: int = 0):
        d = layout.size
        if mean.shape != (d,) or scale.shape != (d,):
            raise ValueError(f"token statistics have shapes {tuple(mean.shape)} and "
                             f"{tuple(scale.shape)}; the layout needs ({d},)")
        if not bool((scale > 0).all()) or not bool(torch.isfinite(mean).all()):
            raise ValueError("token statistics must be finite with positive scales")
        self.layout = layout
        self.mean = mean.detach().to(torch.float64).cpu()
        self.scale = scale.detach().to(torch.float64).cpu()
        self.count = int(count)
        self.ranges = token_ranges(layout)
        self.widths = [stop - start for _, start, stop in self.ranges]
        if min(self.widths) == 0:
            raise ValueError(f"empty token in layout (widths {self.widths})")
        n, w = len(self.widths), max(self.widths)
        self.mask = torch.arange(w)[None, :] < torch.tensor(self.widths)[:, None]  # [n, W]
        index = torch.full((n, w), d, dtype=torch.long)  # d points at an appended zero
        for i, (_, start, stop) in enumerate(self.ranges):
            index[i, : stop - start] = torch.arange(start, stop)
        self._index = index

    @property
    def n_tokens(self) -> int:
        return len(self.widths)

    @property
    def width(self) -> int:
        return int(self.mask.shape[1])

    @property
    def names(self) -> list[str]:
        return [name for name, _, _ in self.ranges]

    @classmethod
    def fit(cls, layout: FlatLayout, vectors: torch.Tensor) -> Tokenizer:
        """Statistics per dimension of ``vectors`` ``[..., D]`` (every leading index is one
        sample: ``[N, D]`` shapes, ``[N, T, D]`` motion frames)."""
        flat = _check(layout, vectors).reshape(-1, layout.size).to(torch.float64)
        if flat.shape[0] < 2:
            raise ValueError(f"need at least 2 vectors for token statistics, got {flat.shape[0]}")
        if not bool(torch.isfinite(flat).all()):
            raise ValueError("training vectors contain NaN or infinite values")
        std = flat.std(dim=0, unbiased=False).clamp_min(MIN_SCALE)
        scale = torch.exp2(torch.round(torch.log2(std)))
        mean = flat.mean(dim=0).to(torch.float32).to(torch.float64)  # see module docstring
        return cls(layout, mean, scale, flat.shape[0])

    def standardize(self, vectors: torch.Tensor) -> torch.Tensor:
        """``[..., D]`` -> float64 ``[..., D]`` with per-dimension mean 0 and spread about 1."""
        return (_check(self.layout, vectors).to(torch.float64) - self.mean) / self.scale

    def destandardize(self, z: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Inverse of :meth:`standardize`: ``[..., D]`` -> ``[..., D]`` of ``dtype``."""
        return (z.to(torch.float64) * self.scale + self.mean).to(dtype)

    def to_tokens(self, vectors: torch.Tensor) -> torch.Tensor:
        """``[..., D]`` -> standardised tokens ``[..., n, W]`` (float64, zeros where padded)."""
        z = self.standardize(vectors)
        z = torch.cat([z, z.new_zeros(z.shape[:-1] + (1,))], dim=-1)
        return z[..., self._index]

    def from_tokens(self, tokens: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Tokens ``[..., n, W]`` -> flat vectors ``[..., D]`` of ``dtype`` (padding ignored)."""
        if tuple(tokens.shape[-2:]) != tuple(self.mask.shape):
            raise ValueError(f"tokens have shape {tuple(tokens.shape)}; this tokenizer needs "
                             f"[..., {self.n_tokens}, {self.width}]")
        return self.destandardize(tokens[..., self.mask], dtype)  # row-major = flat order

    def to_json(self) -> dict:
        return {"format": FORMAT, "version": VERSION, "layout": self.layout.to_json(),
                "tokens": [[name, start, stop] for name, start, stop in self.ranges],
                "count": self.count,
                "scale": "per-dimension standard deviation rounded to a power of two"}

    def state(self) -> dict[str, torch.Tensor]:
        return {"mean": self.mean.clone(), "scale": self.scale.clone()}

    @classmethod
    def from_state(cls, meta: dict, state: dict[str, torch.Tensor]) -> Tokenizer:
        if meta.get("format") != FORMAT or int(meta.get("version", 0)) > VERSION:
            raise FormatError(f"token statistics of format {meta.get('format')!r} version "
                              f"{meta.get('version')!r}; expected {FORMAT!r} <= {VERSION}")
        try:
            return cls(FlatLayout.from_json(meta["layout"]), state["mean"], state["scale"],
                       meta.get("count", 0))
        except (KeyError, ValueError) as err:
            raise FormatError(f"token statistics do not match their layout ({err})") from None

    def save(self, folder: str | Path, name: str) -> tuple[Path, Path]:
        """Write ``{name}.tokens.json`` and ``{name}.tokens.safetensors`` into ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        meta, tens = folder / f"{name}.tokens.json", folder / f"{name}.tokens.safetensors"
        save_file(self.state(), str(tens), metadata={"format": FORMAT})
        meta.write_text(json.dumps(self.to_json(), indent=1))
        return meta, tens

    @classmethod
    def load(cls, folder: str | Path, name: str) -> Tokenizer:
        folder = Path(folder)
        meta, tens = folder / f"{name}.tokens.json", folder / f"{name}.tokens.safetensors"
        for p in (meta, tens):
            if not p.is_file():
                raise FormatError(f"{p}: token statistics file not found", "missing_checkpoint")
        try:
            return cls.from_state(json.loads(meta.read_text()), load_file(str(tens)))
        except (OSError, ValueError) as err:
            raise FormatError(f"{meta}: cannot read token statistics ({err})") from None


def _check(layout: FlatLayout, vectors: torch.Tensor) -> torch.Tensor:
    if vectors.shape[-1] != layout.size:
        raise ValueError(f"vectors have {vectors.shape[-1]} entries per instance; the layout "
                         f"needs {layout.size}")
    return vectors

