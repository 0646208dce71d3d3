"""A DNF model folder read without torch (the server describes models at start-up):
the declared weights hash, the folder's size, and the stages whose vectors it holds.

Files (see :mod:`.checkpoint`): ``config.json`` (``format`` ``anim4d-dnf``, ``model_sha256``,
``stages_sha256`` when ``stages.safetensors`` was written with it), ``model.safetensors`` (MLPs,
stages a and d), optional ``stages.safetensors`` (vectors of stages b and c). A stage is *held*
when its ``shape.<stage>.vecs`` tensor is in one of the two weight files: the shipped ``tiny``
model holds a and d (its b/c vectors served only the results table and are not shipped).
A folder may also hold a generator (``generator/``, :mod:`.gen.store`); ``details["generator"]``
says whether it does, for this very dictionary (the ``creature.*`` kinds offer only those).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from backend.models.checksums import file_sha256  # noqa: F401 - the DNF files' checksum
from backend.models.registry import ModelFiles
from shared.errors import FormatError

FORMAT = "anim4d-dnf"
SHIPPED_DIR = Path(__file__).resolve().parent / "checkpoints"
WEIGHT_FILES = ("model.safetensors", "stages.safetensors")
STAGE_ORDER = ("a", "b", "c", "d")
_MAX_HEADER = 100 * 1024 * 1024


def safetensors_keys(path: Path) -> list[str]:
    """Tensor names in a ``.safetensors`` file's JSON header (the file's first 8 + n bytes)."""
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise FormatError(f"{path.name}: not a safetensors file (shorter than 8 bytes)")
        (n,) = struct.unpack("<Q", raw)
        if n > _MAX_HEADER:
            raise FormatError(f"{path.name}: not a safetensors file (header of {n} bytes)")
        try:
            header = json.loads(f.read(n))
        except ValueError:
            raise FormatError(f"{path.name}: not a safetensors file (bad header)") from None
    if not isinstance(header, dict):
        raise FormatError(f"{path.name}: not a safetensors file (bad header)")
    return [k for k in header if k != "__metadata__"]


def read_config(folder: Path) -> dict:
    """``config.json`` of a DNF model folder; errors name the file (relative to the folder)."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise FormatError("config.json: not found (not a DNF model folder)", "missing_checkpoint")
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise FormatError(f"config.json: not a DNF model config ({err})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        got = config.get("format") if isinstance(config, dict) else None
        raise FormatError(f"config.json: format {got!r}, expected {FORMAT!r}")
    return config


def held_stages(folder: Path, config: dict | None = None) -> list[str]:
    """The stages whose vectors the folder's weight files hold, in order a, b, c, d."""
    folder = Path(folder)
    config = read_config(folder) if config is None else config
    keys: set[str] = set()
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            keys |= set(safetensors_keys(folder / name))
    listed = config.get("stages") or []
    return [s for s in STAGE_ORDER
            if s in listed and f"shape.{s}.vecs" in keys and f"motion.{s}.vecs" in keys]


def describe(folder: Path) -> ModelFiles:
    """:class:`~backend.models.registry.ModelFiles` of a DNF model folder (details: ``stages``
    held). Raises :class:`FormatError` when the folder is not a usable DNF model."""
    folder = Path(folder)
    config = read_config(folder)
    if not (folder / "model.safetensors").is_file():
        raise FormatError("model.safetensors: not found", "missing_checkpoint")
    sha = config.get("model_sha256")
    if not isinstance(sha, str) or len(sha) != 64:
        raise FormatError("config.json: no model_sha256 (the weights' SHA-256) recorded")
    stages = held_stages(folder, config)
    if not stages:
        raise FormatError("model.safetensors: holds the vectors of no stage")
    size = sum((folder / n).stat().st_size for n in ("config.json", *WEIGHT_FILES)
               if (folder / n).is_file())
    return ModelFiles(sha256=sha, size=size,
                      details={"stages": stages, "generator": _has_generator(folder, sha)})


def _has_generator(folder: Path, sha: str) -> bool:
    """Whether the folder holds a generator (``generator/``) made for this dictionary; one
    made for another dictionary is logged and not offered (the creature kinds would refuse it)."""
    import logging

    from .gen.store import FIT_COMMAND, generator_info

    try:
        info = generator_info(folder)
    except FormatError as err:
        logging.getLogger("anim4d.models").warning("DNF model %s: generator skipped: %s",
                                                   folder, err)
        return False
    if info is None:
        return False
    if info.get("dictionary_sha256") != sha:
        logging.getLogger("anim4d.models").warning(
            "DNF model %s: its generator was trained for another dictionary; retrain it with "
            "`%s`", folder, FIT_COMMAND.format(folder=folder))
        return False
    return True
