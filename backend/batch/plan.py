"""The items of a batch: one job per (seed, input) pair, named so that folders sort in order."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from shared.errors import ParamError
from shared.params import KindSpec

MAX_ITEMS = 10_000


@dataclass(frozen=True)
class BatchItem:
    """One job of a batch. ``params``: CLI strings as given (typed by the server's spec);
    ``seed``: None when the batch is over inputs only."""

    name: str
    kind: str
    params: dict[str, str] = field(default_factory=dict)
    inputs: tuple[str, ...] = ()
    seed: int | None = None

    def remake_command(self) -> str:
        """The one ``anim4d submit`` line that makes this item again."""
        parts = ["anim4d", "submit", self.kind]
        if self.inputs:
            parts += ["--input", *self.inputs]
        if self.params:
            parts += ["--param", *(f"{k}={v}" for k, v in self.params.items())]
        parts += ["--wait", "--out", self.name]
        return shlex.join(parts)


def parse_seeds(text: str) -> list[int]:
    """``"1..8"`` (inclusive), ``"3,7,11"``, or a mix (``"1..3,10"``) -> distinct seeds, in order.

    Raises :class:`ParamError` naming the bad part."""
    seeds: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        m = re.fullmatch(r"(-?\d+)\s*\.\.\s*(-?\d+)", part)
        if m:
            lo, hi = int(m[1]), int(m[2])
            if hi < lo:
                raise ParamError(f"--seeds {text!r}: the range {part!r} runs backwards "
                                 "(write LOW..HIGH, e.g. 1..8)")
            if hi - lo + 1 > MAX_ITEMS:
                raise ParamError(f"--seeds {text!r}: {hi - lo + 1} seeds is more than a batch "
                                 f"takes ({MAX_ITEMS})")
            seeds += range(lo, hi + 1)
        elif re.fullmatch(r"-?\d+", part):
            seeds.append(int(part))
        else:
            raise ParamError(f"--seeds {text!r}: {part!r} is neither a seed nor a range; "
                             "accepted: 1..8, 3,7,11 or a mix such as 1..3,10")
    out = list(dict.fromkeys(seeds))
    if not out:
        raise ParamError(f"--seeds {text!r}: no seeds given")
    return out


def plan_batch(spec: KindSpec, params: dict[str, str], seeds: list[int] | None,
               inputs: list[str] | None) -> list[BatchItem]:
    """Every (seed, input) pair, seeds outer. ``spec``: the kind as the server offers it.

    Raises :class:`ParamError` when the kind takes no ``seed`` but seeds were given, takes no
    input file but inputs were given (or needs one and none was), or the batch is empty."""
    if seeds and not any(p.name == "seed" for p in spec.params):
        raise ParamError(f"{spec.name} has no seed parameter: batch it over --inputs instead "
                         f"(its parameters: {', '.join(p.name for p in spec.params) or 'none'})")
    if "seed" in params and seeds:
        raise ParamError("give the seed either as --seeds or as --param seed=..., not both")
    if inputs and not spec.inputs:
        raise ParamError(f"{spec.name} takes no input file; batch it over --seeds")
    if spec.inputs and not inputs:
        raise ParamError(f"{spec.name} needs an input file per job: give --inputs FILE...")
    for path in inputs or ():
        if not Path(path).is_file():
            raise ParamError(f"--inputs: {path} is not a file")
    seed_list: list[int | None] = list(seeds) if seeds else [None]
    input_list: list[str | None] = list(inputs) if inputs else [None]
    if len(seed_list) * len(input_list) > MAX_ITEMS:
        raise ParamError(f"{len(seed_list) * len(input_list)} jobs is more than a batch takes "
                         f"({MAX_ITEMS})")
    items = []
    width = len(str(len(seed_list) * len(input_list)))
    for i, (seed, path) in enumerate((s, p) for s in seed_list for p in input_list):
        item_params = dict(params)
        label = [f"{i + 1:0{width}d}"]
        if seed is not None:
            item_params["seed"] = str(seed)
            label.append(f"seed{seed}")
        if path is not None:
            label.append(_slug(Path(path).stem))
        items.append(BatchItem("-".join(label), spec.name, item_params,
                               (str(Path(path).resolve()),) if path else (), seed))
    return items


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "input"
