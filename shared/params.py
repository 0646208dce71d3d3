"""Job kinds and their parameter schemas.

The backend announces every job kind in its hello reply as a :class:`KindSpec`; clients build
their forms from it (the add-on draws one panel section per kind) and validate before sending. The
server validates again on receipt: it never trusts a client.

Protocol 1.1 adds two types: ``job`` (the id of a finished job on the same server, whose result a
kind works on; the server checks it exists and is done, and resolves a unique prefix to the full
id) and ``floats`` (a list of numbers, ``min``/``max`` per element, at most ``max_items``; the CLI
writes it as ``0,0.5,1``, JSON carries a list).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import ParamError

PARAM_TYPES = ("int", "float", "bool", "str", "enum", "job", "floats")
#: Types a protocol 1.0 peer does not know (hello leaves out kinds using them for a 1.0 client).
PARAM_TYPES_1_1 = frozenset(["job", "floats"])
#: ``floats`` without ``max_items`` still has a cap: a parameter is not a data channel.
FLOATS_MAX_ITEMS = 100_000
JOB_ID_CHARS = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: ``type`` is one of :data:`PARAM_TYPES` (an enum's ``choices`` list its
    values; a ``floats`` list holds at most ``max_items`` numbers, each in [``min``, ``max``])."""

    name: str
    type: str
    default: Any
    help: str = ""
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()
    max_items: int | None = None

    def __post_init__(self) -> None:
        if self.type not in PARAM_TYPES:
            raise ValueError(f"param {self.name}: type {self.type!r} not in {PARAM_TYPES}")
        if self.type == "enum" and not self.choices:
            raise ValueError(f"param {self.name}: an enum needs choices")

    def describe_accepted(self) -> str:
        if self.type == "enum":
            return "one of " + ", ".join(self.choices)
        if self.type == "bool":
            return "true or false"
        if self.type in ("int", "float"):
            lo = "-inf" if self.min is None else f"{self.min:g}"
            hi = "inf" if self.max is None else f"{self.max:g}"
            return f"{'an integer' if self.type == 'int' else 'a number'} in [{lo}, {hi}]"
        if self.type == "floats":
            lo = "-inf" if self.min is None else f"{self.min:g}"
            hi = "inf" if self.max is None else f"{self.max:g}"
            return (f"a list of 1 to {self.item_limit} numbers, each in [{lo}, {hi}] "
                    "(e.g. 0,0.5,1)")
        if self.type == "job":
            return "the id (or a unique prefix) of a finished job on this server"
        return "text"

    @property
    def item_limit(self) -> int:
        """Most elements a ``floats`` value may hold."""
        return FLOATS_MAX_ITEMS if self.max_items is None else int(self.max_items)

    def coerce(self, value: Any, kind: str = "") -> Any:
        """Return ``value`` converted to this parameter's type, or raise :class:`ParamError`.

        Strings are parsed (the CLI passes ``k=v`` text); other values must already have the
        right JSON type (an int is accepted for a float, never a bool for a number).
        """
        where = f"{kind}: parameter {self.name!r}" if kind else f"parameter {self.name!r}"
        accepted = self.describe_accepted()
        bad = ParamError(f"{where} = {value!r} is not accepted; expected {accepted}")
        t = self.type
        if t == "floats":
            return self._coerce_floats(value, where, accepted)
        if t == "job":
            if (not isinstance(value, str) or not value.strip()
                    or not set(value.strip().lower()) <= JOB_ID_CHARS or len(value.strip()) > 64):
                raise bad
            return value.strip().lower()
        if t == "bool":
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
                return True
            if isinstance(value, str) and value.lower() in ("0", "false", "no", "off"):
                return False
            raise bad
        if t in ("int", "float"):
            if isinstance(value, bool):
                raise bad
            if isinstance(value, str):
                try:
                    value = int(value) if t == "int" else float(value)
                except ValueError:
                    raise bad from None
            if t == "int":
                if isinstance(value, float) and value.is_integer():
                    value = int(value)
                if not isinstance(value, int):
                    raise bad
            else:
                if not isinstance(value, (int, float)):
                    raise bad
                value = float(value)
                if not math.isfinite(value):
                    raise bad
            if (self.min is not None and value < self.min) or (
                self.max is not None and value > self.max
            ):
                raise bad
            return value
        if not isinstance(value, str):
            raise bad
        if t == "enum" and value not in self.choices:
            raise bad
        return value

    def _coerce_floats(self, value: Any, where: str, accepted: str) -> list[float]:
        """``"0,0.5,1"``, ``[0, 0.5, 1]`` or one number -> ``[0.0, 0.5, 1.0]``, checked."""
        if isinstance(value, str):
            items: list[Any] = [v.strip() for v in value.strip().strip("[]").split(",")]
            if items == [""]:
                items = []
        elif isinstance(value, (list, tuple)):
            items = list(value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            items = [value]
        else:
            raise ParamError(f"{where} = {value!r} is not accepted; expected {accepted}")
        if not 1 <= len(items) <= self.item_limit:
            raise ParamError(f"{where} holds {len(items)} numbers; expected {accepted}")
        out = []
        for i, item in enumerate(items):
            num: Any = item
            if isinstance(item, str):
                try:
                    num = float(item)
                except ValueError:
                    num = None
            if isinstance(num, bool) or not isinstance(num, (int, float)):
                raise ParamError(f"{where}: element {i} = {item!r} is not a number; "
                                 f"expected {accepted}")
            num = float(num)
            if (not math.isfinite(num) or (self.min is not None and num < self.min)
                    or (self.max is not None and num > self.max)):
                raise ParamError(f"{where}: element {i} = {item!r} is out of range; "
                                 f"expected {accepted}")
            out.append(num)
        return out

    def to_json(self) -> dict:
        d = asdict(self)
        d["choices"] = list(self.choices)
        if self.type == "floats" and d["default"] is not None:
            d["default"] = list(d["default"])
        return d

    @classmethod
    def from_json(cls, d: dict) -> ParamSpec:
        return cls(
            name=str(d["name"]), type=str(d["type"]), default=d.get("default"),
            help=str(d.get("help", "")), min=d.get("min"), max=d.get("max"),
            choices=tuple(d.get("choices") or ()), max_items=d.get("max_items"),
        )


@dataclass(frozen=True)
class InputSpec:
    """A file input of a job kind: accepted extensions, how many files, and whether required."""

    name: str
    extensions: tuple[str, ...]
    help: str = ""
    required: bool = True
    multiple: bool = False
    #: the largest file this input takes, bytes (0: only the server's own limit)
    max_bytes: int = 0

    def to_json(self) -> dict:
        d = asdict(self)
        d["extensions"] = list(self.extensions)
        if not self.max_bytes:  # only when set: a 1.0 hello stays as it was
            del d["max_bytes"]
        return d

    @classmethod
    def from_json(cls, d: dict) -> InputSpec:
        return cls(
            name=str(d["name"]), extensions=tuple(d.get("extensions") or ()),
            help=str(d.get("help", "")), required=bool(d.get("required", True)),
            multiple=bool(d.get("multiple", False)), max_bytes=int(d.get("max_bytes", 0) or 0),
        )


@dataclass(frozen=True)
class KindSpec:
    """A job kind as announced in hello: its name, what it makes and what it takes."""

    name: str
    title: str
    description: str
    representation: str
    params: tuple[ParamSpec, ...] = ()
    inputs: tuple[InputSpec, ...] = ()
    section: str = ""
    extra: dict = field(default_factory=dict)
    #: Protocol 1.1: the kind that re-evaluates this kind's results exactly at new times
    #: (``source`` job + ``times`` floats); "" when its results cannot be re-evaluated.
    resample_kind: str = ""

    def param(self, name: str) -> ParamSpec:
        for p in self.params:
            if p.name == name:
                return p
        raise ParamError(
            f"{self.name}: unknown parameter {name!r}; accepted: "
            + (", ".join(p.name for p in self.params) or "none")
        )

    @property
    def protocol_minor(self) -> int:
        """The protocol minor version this kind needs: 1 when a parameter has a 1.1 type."""
        return 1 if any(p.type in PARAM_TYPES_1_1 for p in self.params) else 0

    def job_params(self) -> tuple[ParamSpec, ...]:
        """The parameters of type ``job`` (results of finished jobs this kind works on)."""
        return tuple(p for p in self.params if p.type == "job")

    def validate_params(self, given: dict[str, Any]) -> dict[str, Any]:
        """Return a complete parameter dict: ``given`` coerced and checked, defaults filled in."""
        if not isinstance(given, dict):
            raise ParamError(f"{self.name}: params must be an object of name: value")
        out = {p.name: list(p.default) if p.type == "floats" and p.default is not None
               else p.default for p in self.params}
        for key, value in given.items():
            out[key] = self.param(str(key)).coerce(value, self.name)
        return out

    def to_json(self) -> dict:
        d = {
            "name": self.name, "title": self.title, "description": self.description,
            "representation": self.representation, "section": self.section,
            "params": [p.to_json() for p in self.params],
            "inputs": [i.to_json() for i in self.inputs],
            "extra": dict(self.extra),
        }
        if self.resample_kind:  # only when set: a kind without it reads as before
            d["resample_kind"] = self.resample_kind
        return d

    @classmethod
    def from_json(cls, d: dict) -> KindSpec:
        return cls(
            name=str(d["name"]), title=str(d.get("title", d["name"])),
            description=str(d.get("description", "")),
            representation=str(d.get("representation", "")),
            params=tuple(ParamSpec.from_json(p) for p in d.get("params", [])),
            inputs=tuple(InputSpec.from_json(i) for i in d.get("inputs", [])),
            section=str(d.get("section", "")), extra=dict(d.get("extra") or {}),
            resample_kind=str(d.get("resample_kind") or ""),
        )


def parse_cli_params(pairs: list[str]) -> dict[str, str]:
    """``["seed=3"]`` -> ``{"seed": "3"}``; values are typed later by the kind's spec."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ParamError(f"--param {pair!r}: expected NAME=VALUE, e.g. --param seed=3")
        out[key.strip()] = value.strip()
    return out
