"""The job kinds a server offers: each a :class:`~shared.params.KindSpec` plus its runner.

Runners are named as ``"module:function"`` strings and imported only inside the worker process,
so the server itself never imports torch or a method's heavy dependencies.

The kinds are built per server: a kind that uses models gets a ``model`` enum whose choices are
the names of its method's models in the server's :class:`~backend.models.ModelRegistry`, and
carries their folders (``models``) to its workers; clients only ever see the names.
"""

from __future__ import annotations

import functools
import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared.params import KindSpec

if TYPE_CHECKING:
    from backend.models import ModelRegistry

log = logging.getLogger("anim4d.jobs")


@dataclass(frozen=True)
class Resources:
    """What one job of a kind asks of a Ray cluster (``serve --executor ray``; the local
    executor ignores it).

    ``num_gpus`` is dropped, with a warning, on a cluster that has no GPU at all (the methods
    fall back to the CPU, as in local mode); ``memory``: bytes reserved, 0 for none."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0
    memory: int = 0


#: the debug kinds do next to nothing: four of them share a CPU
LIGHT = Resources(num_cpus=0.25)
#: DS4D and DNF train or run networks: one GPU where the cluster has any
GPU = Resources(num_cpus=1.0, num_gpus=1.0)


@dataclass(frozen=True)
class JobKind:
    """``models``: ``(name, folder)`` pairs its workers may load (server-side only);
    ``resources``: what a job of this kind asks of a Ray cluster; ``resident``: the name of
    the method whose loaded models are worth keeping between jobs (its runner loads them
    through :mod:`backend.models.cache`): with ``--executor ray`` its jobs run on long-lived
    actors of that method (see :mod:`backend.server.ray_worker`); "" (the default): each job
    is a Ray task. The local executor ignores it."""

    spec: KindSpec
    runner: str
    models: tuple[tuple[str, str], ...] = ()
    resources: Resources = Resources()
    resident: str = ""

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def model_folders(self) -> dict[str, str]:
        return dict(self.models)


def load_runner(runner: str) -> Callable:
    """``"package.module:function"`` -> the function."""
    module, _, func = runner.partition(":")
    return getattr(importlib.import_module(module), func)


def builtin_kinds(debug: bool = False, models: ModelRegistry | None = None) -> dict[str, JobKind]:
    """Every production kind; with ``debug``, also the ``debug.*`` kinds used to test the engine.

    ``models``: the server's models (default: the shipped ones). A method's kinds are offered
    only when it has at least one model.
    """
    from backend.data import jobs as data_jobs
    from backend.data import resample_jobs
    from backend.methods.dnf import jobs as dnf_jobs
    from backend.methods.ds4d import jobs as ds4d_jobs
    from backend.methods.ds4d import mesh_job as ds4d_mesh
    from backend.models import discover_models
    from backend.models.pretrained import present_folders

    models = models if models is not None else discover_models(None)
    kinds = [
        JobKind(data_jobs.PROCEDURAL_KIND, "backend.data.jobs:run_procedural"),
        JobKind(data_jobs.BAKE_KIND, "backend.data.jobs:run_bake"),
        *(JobKind(spec, f"backend.data.resample_jobs:{fn}") for spec, fn in resample_jobs.KINDS),
        # DS4D needs no model: without DINOv2 weights it uses the weight-free descriptor; the
        # pretrained models found here (models folder, then library caches) reach its workers
        JobKind(ds4d_jobs.TO4D_KIND, "backend.methods.ds4d.jobs:run_to4d",
                present_folders(models.models_dir, "ds4d"), resources=GPU),
        JobKind(ds4d_jobs.RESAMPLE_KIND, "backend.methods.ds4d.jobs:run_resample"),
        JobKind(ds4d_mesh.MESH_KIND, "backend.methods.ds4d.mesh_job:run_mesh"),
    ]
    dnf = models.for_method("dnf")
    if dnf:
        folders = tuple(models.folders("dnf").items())
        runner = "backend.methods.dnf.jobs:"
        # resident: their DNF model stays loaded between jobs on a Ray cluster
        kinds += [JobKind(dnf_jobs.reconstruct_kind(dnf), runner + "run_reconstruct", folders,
                          GPU, resident="dnf"),
                  JobKind(dnf_jobs.fit_shape_kind(dnf), runner + "run_fit_shape", folders, GPU,
                          resident="dnf")]
        kinds += _creature_kinds(dnf)
    else:
        log.warning("no dnf model found: the dnf.* kinds are not offered")
    kinds += _render_kinds()
    out = {k.name: k for k in kinds}
    if debug:
        out.update(debug_kinds())
    return out


def _creature_kinds(dnf: list) -> list[JobKind]:
    """The ``creature.*`` kinds for the DNF models holding a generator (none: not offered)."""
    from backend.methods.dnf import creature_jobs as cj

    gen = cj.creature_models(dnf)
    if not gen:
        log.info("no dnf model holds a generator: the creature.* kinds are not offered")
        return []
    folders = tuple((m.name, str(m.folder)) for m in gen)
    runners = {cj.SAMPLE: "run_sample", cj.ANIMATE: "run_animate_mesh",
               cj.RESAMPLE: "run_resample", cj.BLEND: "run_blend"}
    # they load a model and its generators (seconds), through the process's model cache
    return [JobKind(spec, f"backend.methods.dnf.creature_jobs:{runners[name]}", folders, GPU,
                    resident="dnf")
            for name, spec in cj.kind_specs(gen).items()]


def _render_kinds() -> list[JobKind]:
    """``render.video`` where this Python has ``bpy`` (the render runs in a subprocess)."""
    from backend.blender_render.run import bpy_missing

    why = bpy_missing()
    if why:
        log.warning("render.video is not offered: %s", why)
        return []
    from backend.blender_render.job import RENDER_KIND

    return [JobKind(RENDER_KIND, "backend.blender_render.job:run_render_video")]


@functools.lru_cache(maxsize=1)
def builtin_runner_modules() -> tuple[str, ...]:
    """The modules holding every built-in kind's runner (the debug kinds' too): what a warm
    worker process imports ahead, whichever server of the process starts the fork server."""
    kinds = builtin_kinds(debug=True)
    return tuple(dict.fromkeys(k.runner.partition(":")[0] for k in kinds.values()))


def debug_kinds() -> dict[str, JobKind]:
    """The ``debug.*`` kinds alone (engine diagnostics and tests)."""
    from backend.jobs import debug as debug_jobs

    return {spec.name: JobKind(spec, f"backend.jobs.debug:{fn}", resources=LIGHT,
                               resident=debug_jobs.RESIDENT.get(spec.name, ""))
            for spec, fn in debug_jobs.KINDS}
