"""Operators: "Resample from Backend" (exact frames at the current retime) and its revert.

Interactive Blender: the operator plans the times, sends one ``resample`` command to the worker
thread and returns; when the result is fetched, the runtime's timer applies it
(:func:`finish_event`) and pushes an undo step. Background mode (scripts, ``bpy`` module): the
command runs at once and the operator returns with the frames replaced (one undo step).
"""

from __future__ import annotations

import bpy

from ..core import resample_plan
from ..core._shared import errors
from . import prefs, resample
from .runtime import RT


def backend_kind(obj):
    """The connected backend's spec of ``obj``'s resample kind, or None (not offered, not
    connected, not resamplable)."""
    ri = resample.info(obj)
    if ri is None or RT.state.connection != "connected":
        return None
    return RT.state.kind(ri.kind)


def finish_event(job_id: str, data: dict) -> str:
    """Apply a ``resampled`` event (the worker fetched the result) to its object; a notice."""
    ctx = data.get("context") or {}
    obj = bpy.data.objects.get(str(ctx.get("object", "")))
    if obj is None:
        raise errors.Anim4DError(f"resample job {job_id[:12]}: its object "
                                 f"{ctx.get('object')!r} is gone; the result is in "
                                 f"{data.get('folder')}")
    rp = resample_plan.ResamplePlan.from_json(ctx["plan"])
    resample.apply_result(obj, data["folder"], rp, job_id)
    if not bpy.app.background:  # applied from the timer: give Ctrl-Z a step of its own
        try:
            bpy.ops.ed.undo_push(message="Resample from Backend")
        except RuntimeError:  # no window context: Revert Resample still brings it back
            pass
    return (f"{obj.name}: {len(rp.scene_frames)} exact frames (scene frames "
            f"{rp.scene_frames[0]:g}-{rp.scene_frames[-1]:g}) from job {job_id[:12]}")


class ANIM4D_OT_resample(bpy.types.Operator):
    """Ask the backend for exact frames at the times the current retime shows, replace the
    animation with them and reset the retime to identity"""

    bl_idname = "anim4d.resample"
    bl_label = "Resample from Backend"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return backend_kind(context.active_object) is not None

    def execute(self, context):
        from .operators import _fail, _report_events

        obj = context.active_object
        try:
            spec = backend_kind(obj)
            if spec is None:
                raise errors.Anim4DError(f"{obj.name if obj else 'nothing'}: connect to a "
                                         "backend that offers its resample kind first",
                                         "not_resamplable")
            rp = resample.make_plan(obj)
            params = resample_plan.request_params(
                rp, resample.info(obj), spec, _object_params(obj))
            root = prefs.results_root()
            root.mkdir(parents=True, exist_ok=True)
            events = RT.run("resample", kind=spec.name, params=params, out_root=str(root),
                            context={"object": obj.name, "plan": rp.to_json()})
        except Exception as err:  # noqa: BLE001
            return _fail(self, err)
        if not RT.sync:
            self.report({"INFO"}, f"{obj.name}: asking {spec.name} for {len(rp.request)} times")
            return {"FINISHED"}
        if not _report_events(self, events):
            return {"CANCELLED"}
        for n in RT.notices:
            self.report({"INFO"}, n)
        RT.notices.clear()
        return {"FINISHED"}


class ANIM4D_OT_resample_revert(bpy.types.Operator):
    """Bring back the frames and retime the object had before its last resample"""

    bl_idname = "anim4d.resample_revert"
    bl_label = "Revert Resample"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        obj = context.active_object
        return obj is not None and bool(obj.get(resample.PREV))

    def execute(self, context):
        from .operators import _fail

        try:
            resample.restore_previous(context.active_object)
        except Exception as err:  # noqa: BLE001
            return _fail(self, err)
        return {"FINISHED"}


def _object_params(obj) -> dict:
    import json

    try:
        return dict(json.loads(obj.get("anim4d_params") or "{}"))
    except ValueError:
        return {}


CLASSES = (ANIM4D_OT_resample, ANIM4D_OT_resample_revert)
