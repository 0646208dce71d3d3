"""The models a server offers: clients name them, only the server knows where they live.

One convention for every method, now and later:

- a model is a folder ``<models dir>/<method>/<name>/`` holding what its method reads (for DNF:
  ``config.json`` + ``model.safetensors``, see :mod:`backend.methods.dnf.model_files`);
- ``anim4d serve --models-dir DIR`` (default ``<data dir>/models``) is scanned once at start-up;
  the models shipped with the software (each method's ``checkpoints/`` folder) are always listed;
- ``hello`` announces ``models: [{name, method, sha256, size}]``; a kind that needs a model takes
  a ``model`` enum parameter whose choices are the names of its method's models (the kind specs
  are built per server from this registry);
- a worker receives the name -> folder mapping of its kind (``JobContext.model_folder``); the
  server's log has the paths, no message sent to a client does.

A method describes its model folders without heavy imports (the server never imports torch): a
``describe(folder) -> ModelFiles`` function that reads the declared hash and size and raises
:class:`~shared.errors.FormatError` for a folder that is not one of its models.
"""

from __future__ import annotations

import importlib
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from shared.errors import FormatError, ParamError

log = logging.getLogger("anim4d.models")
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}\Z")


@dataclass(frozen=True)
class ModelFiles:
    """What a method reads from a model folder: the declared weights hash (64 hex digits), the
    folder's size in bytes, and method details the kind specs use (e.g. DNF's stages held)."""

    sha256: str
    size: int
    details: dict = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class ModelInfo:
    """One model: ``folder`` stays on the server (never sent); :meth:`to_json` is what hello
    announces."""

    name: str
    method: str
    folder: Path
    sha256: str
    size: int
    shipped: bool = False
    details: dict = field(default_factory=dict, compare=False, hash=False)

    def to_json(self) -> dict:
        return {"name": self.name, "method": self.method, "sha256": self.sha256,
                "size": self.size, "shipped": self.shipped}


@dataclass(frozen=True)
class ModelMethod:
    """How one method's models are found: its shipped models' folder and its ``describe``
    function (``"module:function"``, imported when the registry is built)."""

    method: str
    shipped_dir: Path
    describe: str

    def describer(self) -> Callable[[Path], ModelFiles]:
        module, _, func = self.describe.partition(":")
        return getattr(importlib.import_module(module), func)


def builtin_methods() -> list[ModelMethod]:
    """Every method that has models (add a line here when a method ships its first model)."""
    from backend.methods.dnf.model_files import SHIPPED_DIR

    return [ModelMethod("dnf", SHIPPED_DIR, "backend.methods.dnf.model_files:describe")]


class ModelRegistry:
    """The models of one server, in a stable order (shipped first, then the models folder's,
    each sorted by name)."""

    def __init__(self, models: Iterable[ModelInfo] = (), models_dir: Path | None = None):
        self.models = list(models)
        self.models_dir = models_dir

    def __iter__(self):
        return iter(self.models)

    def __len__(self) -> int:
        return len(self.models)

    def for_method(self, method: str) -> list[ModelInfo]:
        return [m for m in self.models if m.method == method]

    def names(self, method: str) -> list[str]:
        return [m.name for m in self.for_method(method)]

    def get(self, method: str, name: str) -> ModelInfo:
        """The model ``name`` of ``method``; the error names the choices, never a path."""
        for m in self.for_method(method):
            if m.name == name:
                return m
        have = ", ".join(self.names(method)) or "none"
        raise ParamError(f"this server has no {method} model {name!r}; it has: {have}",
                         "unknown_model")

    def folders(self, method: str) -> dict[str, str]:
        """``{name: folder}`` of ``method``'s models (what a worker of its kinds receives)."""
        return {m.name: str(m.folder) for m in self.for_method(method)}

    def to_json(self) -> list[dict]:
        return [m.to_json() for m in self.models]


def _scan(method: ModelMethod, root: Path, shipped: bool, taken: set[str],
          describe: Callable[[Path], ModelFiles]) -> list[ModelInfo]:
    out: list[ModelInfo] = []
    if not root.is_dir():
        return out
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        name = folder.name
        if name.startswith("."):
            continue
        where = "shipped" if shipped else "models folder"
        if not MODEL_NAME.match(name):
            log.warning("%s model %s skipped: a model name is 1-64 letters, digits, '_', '.', "
                        "'-', starting with a letter or digit", method.method, folder)
            continue
        if name in taken:
            log.warning("%s model %s skipped: the name %r is already taken by a shipped model",
                        method.method, folder, name)
            continue
        try:
            files = describe(folder)
        except (FormatError, OSError, ValueError) as err:
            log.warning("%s model %s (%s) skipped: %s", method.method, folder, where, err)
            continue
        taken.add(name)
        out.append(ModelInfo(name, method.method, folder.resolve(), files.sha256, files.size,
                             shipped, dict(files.details)))
        log.info("model %s/%s (%s): %s, sha256 %s", method.method, name, where,
                 folder.resolve(), files.sha256[:12])
    return out


def discover_models(models_dir: Path | str | None = None,
                    methods: list[ModelMethod] | None = None) -> ModelRegistry:
    """Shipped models plus those under ``models_dir/<method>/<name>/`` (absent: shipped only).

    A folder that is not a valid model of its method, or whose name is taken, is skipped with a
    warning in the server's log (one bad folder never stops a server).
    """
    models_dir = Path(models_dir) if models_dir is not None else None
    found: list[ModelInfo] = []
    for method in methods if methods is not None else builtin_methods():
        describe = method.describer()
        taken: set[str] = set()
        found += _scan(method, method.shipped_dir, True, taken, describe)
        if models_dir is not None:
            found += _scan(method, models_dir / method.method, False, taken, describe)
    return ModelRegistry(found, models_dir)
