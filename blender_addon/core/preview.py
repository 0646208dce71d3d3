"""Live previews of a running job (no bpy): what the preview object shows.

A ``preview`` event (:class:`~.client_types.PreviewInfo`) carries the same Gaussians at a few
times. The add-on shows it as one object per job, replaced by each newer preview, that plays
those times on the timeline (so the artist scrubs it while the optimisation runs); the final
result imports as a separate object.
"""

from __future__ import annotations

from .client_types import PreviewInfo
from .import_plan import ResultMeta

PREVIEW_PREFIX = "Anim4D_preview"


def preview_name(job_id: str) -> str:
    return f"{PREVIEW_PREFIX}_{job_id[:8]}"


def preview_meta(info: PreviewInfo) -> ResultMeta:
    """The object's metadata: representation ``gaussian_sequence``, the preview's times."""
    return ResultMeta(job_id=info.job_id, kind="preview", representation="gaussian_sequence",
                      params={"stage": info.stage, "step": info.step, "steps": info.steps},
                      times=list(info.times), source=preview_name(info.job_id))


def is_newer(info: PreviewInfo, shown_step: int | None) -> bool:
    """Whether ``info`` should replace what the object shows (step ``shown_step``)."""
    return shown_step is None or info.step > shown_step
