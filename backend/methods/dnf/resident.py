"""DNF models kept loaded between the jobs of one worker process (see
:mod:`backend.models.cache`): :func:`load_model` (a checkpoint, as
:func:`~.checkpoint.load_checkpoint`) and :func:`load_with_generator` (a checkpoint and its
generators, as :func:`~.gen.store.load_model_generator`), for the ``dnf.*`` and
``creature.*`` kinds, which only read them (``dnf.fit_shape`` optimises a vector of its own,
never the model's weights).

Each entry is stamped with the files it was read from (``config.json``, the weights, the
generator's folder): a model retrained or replaced on disk is loaded again at the next job, its
hashes checked again as on a first load. A hit skips the reading, the SHA-256 checks and the
networks' construction: the seconds a job would otherwise spend before its first step.
"""

from __future__ import annotations

from pathlib import Path

from backend.models.cache import cached

from .model_files import WEIGHT_FILES


def checkpoint_files(folder: Path) -> list[Path]:
    """What :func:`~.checkpoint.load_checkpoint` reads."""
    return [folder / "config.json", *(folder / f for f in WEIGHT_FILES)]


def generator_files(folder: Path) -> list[Path]:
    """What :func:`~.gen.store.load_model_generator` reads (its folder's files, and a
    ``generator.json`` that does not exist yet)."""
    from .gen.store import GENERATOR_DIR

    gdir = folder / GENERATOR_DIR
    files = sorted(p for p in gdir.glob("*") if p.is_file()) if gdir.is_dir() else []
    return [gdir / "generator.json", *(f for f in files if f.name != "generator.json")]


def load_model(folder: str | Path, label: str | None = None):
    """The DNF model in ``folder``, loaded once per process while its files are unchanged."""
    from .checkpoint import load_checkpoint

    folder = Path(folder).resolve()
    return cached(("dnf.checkpoint", str(folder)), checkpoint_files(folder),
                  lambda: load_checkpoint(folder, label=label))


def load_with_generator(folder: str | Path, label: str | None = None):
    """``(model, shape generator, motion generator, info)`` of ``folder``, as
    :func:`load_model` caches the model."""
    from .gen.store import load_model_generator

    folder = Path(folder).resolve()
    model = load_model(folder, label)
    gens = cached(("dnf.generator", str(folder), model.sha256), generator_files(folder),
                  lambda: load_model_generator(folder, model.sha256, label=label))
    return (model, *gens)
