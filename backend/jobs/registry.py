"""The job kinds a server offers: each a :class:`~shared.params.KindSpec` plus its runner.

Runners are named as ``"module:function"`` strings and imported only inside the worker process,
so the server itself never imports torch or a method's heavy dependencies.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from shared.params import KindSpec


@dataclass(frozen=True)
class JobKind:
    spec: KindSpec
    runner: str

    @property
    def name(self) -> str:
        return self.spec.name



def load_runner(runner: str) -> Callable:
    """``"package.module:function"`` -> the function."""
    module, _, func = runner.partition(":")
    return getattr(importlib.import_module(module), func)


def builtin_kinds(debug: bool = False) -> dict[str, JobKind]:
    """Every production kind; with ``debug``, also the ``debug.*`` kinds used to test the engine."""
    from backend.data import jobs as data_jobs
    from backend.methods.dnf import jobs as dnf_jobs

    kinds = [
        JobKind(data_jobs.PROCEDURAL_KIND, "backend.data.jobs:run_procedural"),
        JobKind(data_jobs.BAKE_KIND, "backend.data.jobs:run_bake"),
        JobKind(dnf_jobs.RECONSTRUCT_KIND, "backend.methods.dnf.jobs:run_reconstruct"),
        JobKind(dnf_jobs.FIT_SHAPE_KIND, "backend.methods.dnf.jobs:run_fit_shape"),
    ]
    out = {k.name: k for k in kinds}
    if debug:
        out.update(debug_kinds())
    return out


def debug_kinds() -> dict[str, JobKind]:
    """The ``debug.*`` kinds alone (engine diagnostics and tests)."""
    from backend.jobs import debug as debug_jobs

    return {spec.name: JobKind(spec, f"backend.jobs.debug:{fn}") for spec, fn in debug_jobs.KINDS}
