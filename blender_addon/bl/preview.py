"""The live preview object of a running job: the latest ``preview`` event as scrubbable splats.

One object per job (:func:`~..core.preview.preview_name`), rebuilt from each newer preview: the
same Gaussians at the preview's times, played on the timeline by the Gaussian player (so the
artist scrubs the motion while the optimisation runs). An older preview never replaces a newer one.
"""

from __future__ import annotations

import bpy
import numpy as np

from ..core.client_types import PreviewInfo
from ..core.preview import is_newer, preview_meta, preview_name
from .import_gaussians import GaussianImport

STEP_PROP = "anim4d_preview_step"


def update_preview_object(info: PreviewInfo, scene: bpy.types.Scene | None = None,
                          collection: bpy.types.Collection | None = None) -> bpy.types.Object:
    """Create or replace the preview object of ``info.job_id``; returns it."""
    name = preview_name(info.job_id)
    old = bpy.data.objects.get(name)
    if old is not None:
        if not is_newer(info, old.get(STEP_PROP)):
            return old
        mesh = old.data
        bpy.data.objects.remove(old)
        if mesh is not None and mesh.users == 0:
            bpy.data.meshes.remove(mesh)
    job = GaussianImport(preview_meta(info), np.asarray(info.times, dtype=np.float64),
                         correspond=True, scene=scene, collection=collection)
    last = len(info.times) - 1
    for i in range(len(info.times)):
        job.add_frame(i, **info.frame(i), rebuild=i == last)
    obj = job.finish()
    obj.name = name
    obj[STEP_PROP] = int(info.step)
    obj["anim4d_preview"] = True
    return obj
