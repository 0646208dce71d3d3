"""Operators: connect, submit, cancel, import, refresh, retime, local backend.

Every operator catches ``Anim4DError`` (and anything else) and reports it with ``self.report``
and in the panel: an artist never sees a traceback. In background mode the network operators
run synchronously (``submit`` waits for the job and imports it), so scripts can drive them.
"""

from __future__ import annotations

import json

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, StringProperty

from ..core._shared import errors
from ..core.retime_plan import RetimeSettings
from . import importer, kind_props, prefs, retime
from .runtime import RT


def _report_events(op, events) -> bool:
    """Report error events of a synchronous run; True when there was none."""
    failed = [e for e in events if e.type == "error"]
    for e in failed:
        op.report({"ERROR"}, str(e.data))
    return not failed


def _fail(op, err: BaseException) -> set[str]:
    text = str(err) if isinstance(err, errors.Anim4DError) else f"{type(err).__name__}: {err}"
    RT.state.last_error = text
    op.report({"ERROR"}, text)
    return {"CANCELLED"}


def _hello_when_ready() -> float | None:
    """Timer: connect once the local backend prints that it serves (or show why it died)."""
    backend = RT.backend
    if backend is None:
        return None
    if backend.state == "exited":
        RT.state.last_error = f"local backend {backend.describe()}"
        return None
    if backend.state == "running":
        RT.run("hello")
        return None
    return 0.25


class ANIM4D_OT_connect(bpy.types.Operator):
    """Connect to the backend and ask what it offers (tests the connection)"""

    bl_idname = "anim4d.connect"
    bl_label = "Test Connection"

    def execute(self, context):
        try:
            if prefs.get().start_local and (RT.backend is None or RT.backend.state != "running"):
                backend = RT.start_backend()
                if not RT.sync:  # say hello once it serves, without blocking the UI
                    bpy.app.timers.register(_hello_when_ready, first_interval=0.25)
                    return {"FINISHED"}
                backend.wait_ready(30.0)
            events = RT.run("hello")
            if RT.sync and not any(e.type == "error" for e in events):
                events += RT.run("ping")
        except Exception as err:  # noqa: BLE001
            return _fail(self, err)
        if RT.sync:
            if not _report_events(self, events):
                return {"CANCELLED"}
            self.report({"INFO"}, f"connected to {RT.state.address}: anim4d "
                                  f"{RT.state.server_version}, {len(RT.state.kinds)} job kinds")
        return {"FINISHED"}


class ANIM4D_OT_submit(bpy.types.Operator):
    """Submit a job of this kind with the parameters shown in the panel"""

    bl_idname = "anim4d.submit"
    bl_label = "Submit"

    kind: StringProperty(name="Kind")
    params_json: StringProperty(name="Parameters (JSON)", default="",
                                description="Overrides the panel's values when not empty")
    inputs: StringProperty(name="Inputs", default="",
                           description="Input files separated by ';' (overrides the panel)")
    wait: BoolProperty(name="Wait", default=True,
                       description="Background mode: wait for the job (and import it) before "
                                   "returning")

    def execute(self, context):
        try:
            spec = RT.state.kind(self.kind)
            params, inputs = kind_props.values(context.scene, spec) if spec else ({}, [])
            if self.params_json:
                params = json.loads(self.params_json)
            if self.inputs:
                inputs = [p for p in self.inputs.split(";") if p]
            if spec is not None:
                params = spec.validate_params(params)  # same message the server would give
            events = RT.run("submit", kind=self.kind, params=params, inputs=inputs)
            if not RT.sync:
                self.report({"INFO"}, f"submitted {self.kind}")
                return {"FINISHED"}
            if not _report_events(self, events):
                return {"CANCELLED"}
            job_id = next(e.job_id for e in events if e.type == "submitted")
            if self.wait:
                events = RT.run("wait", job_id=job_id)
                if not _report_events(self, events):
                    return {"CANCELLED"}
                row = RT.state.job(job_id)
                if row.state != "done":
                    self.report({"ERROR"}, f"job {job_id} {row.state}: {row.error or row.message}")
                    return {"CANCELLED"}
            self.report({"INFO"}, f"job {job_id} {RT.state.job(job_id).state}")
        except ValueError as err:
            return _fail(self, errors.ParamError(f"parameters are not valid JSON: {err}"))
        except Exception as err:  # noqa: BLE001
            return _fail(self, err)
        return {"FINISHED"}


class ANIM4D_OT_cancel(bpy.types.Operator):
    """Cancel this job on the server"""

    bl_idname = "anim4d.cancel"
    bl_label = "Cancel Job"

    job_id: StringProperty()

    def execute(self, context):
        events = RT.run("cancel", job_id=self.job_id)
        return {"FINISHED"} if _report_events(self, events) else {"CANCELLED"}


class ANIM4D_OT_refresh(bpy.types.Operator):
    """Refresh the job list from the server"""

    bl_idname = "anim4d.refresh"
    bl_label = "Refresh Jobs"

    def execute(self, context):
        events = RT.run("jobs")
        return {"FINISHED"} if _report_events(self, events) else {"CANCELLED"}


class ANIM4D_OT_import_result(bpy.types.Operator):
    """Import a finished job (fetching it, frames appear as they arrive) or a result folder"""

    bl_idname = "anim4d.import_result"
    bl_label = "Import Result"
    bl_options = {"REGISTER", "UNDO"}

    job_id: StringProperty(name="Job", default="")
    directory: StringProperty(name="Result Folder", subtype="DIR_PATH", default="")
    storage: EnumProperty(name="Mesh Storage", items=prefs.STORAGE_ITEMS, default="AUTO")
    use_start: BoolProperty(name="Set Start Frame", default=False)
    start: FloatProperty(name="Start Frame", default=1.0)

    def invoke(self, context, event):
        if not self.job_id and not self.directory:
            context.window_manager.fileselect_add(self)
            return {"RUNNING_MODAL"}
        return self.execute(context)

    def execute(self, context):
        start = self.start if self.use_start else None
        try:
            if self.directory:
                objs, notices = importer.import_result(bpy.path.abspath(self.directory),
                                                       storage=self.storage, start=start)
                for n in notices:
                    self.report({"WARNING"}, n)
                if objs:
                    self.report({"INFO"}, "imported " + ", ".join(o.name for o in objs))
                return {"FINISHED"}
            if not self.job_id:
                raise errors.Anim4DError("give a job id or a result folder to import")
            RT._stream(self.job_id).storage = self.storage
            RT._stream(self.job_id).start = start
            events = RT.start_import(self.job_id)
        except Exception as err:  # noqa: BLE001
            return _fail(self, err)
        if RT.sync:
            if not _report_events(self, events):
                return {"CANCELLED"}
            for n in RT.notices:
                self.report({"WARNING"}, n)
            RT.notices.clear()
            self.report({"INFO"}, f"imported {RT.imported.get(self.job_id, self.job_id)}")
        return {"FINISHED"}


class ANIM4D_OT_retime(bpy.types.Operator):
    """Rewrite the time curve of the active imported object from the Retime settings"""

    bl_idname = "anim4d.retime"
    bl_label = "Apply Retime"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return retime.is_imported(context.active_object)

    def execute(self, context):
        obj = context.active_object
        try:
            retime.apply_retime(obj, settings_from(obj.anim4d_retime))
        except Exception as err:  # noqa: BLE001
            return _fail(self, err)
        return {"FINISHED"}


class ANIM4D_OT_local_backend(bpy.types.Operator):
    """Start or stop the local backend (anim4d serve) as a child process"""

    bl_idname = "anim4d.local_backend"
    bl_label = "Local Backend"

    action: EnumProperty(items=[("START", "Start", ""), ("STOP", "Stop", "")])

    def execute(self, context):
        try:
            if self.action == "START":
                RT.start_backend()
            elif RT.backend is not None:
                RT.backend.stop()
        except Exception as err:  # noqa: BLE001
            return _fail(self, err)
        return {"FINISHED"}


def settings_from(group) -> RetimeSettings:
    """:class:`RetimeSettings` from the object's ``anim4d_retime`` property group."""
    return RetimeSettings(speed=group.speed, start=group.start if group.use_start else None,
                          offset=group.offset, repeat=group.repeat, reverse=group.reverse,
                          ease=group.ease)


_job_items: list[tuple[str, str, str]] = []  # kept alive: Blender does not copy enum strings


def finished_job_items(self, context) -> list[tuple[str, str, str]]:
    """The finished jobs, as the dropdown beside a ``job`` parameter lists them."""
    _job_items[:] = [(j.id, f"{j.kind or 'job'}  {j.id[:8]}", f"use job {j.id}")
                     for j in RT.state.finished()] or [("", "no finished jobs", "")]
    return _job_items


class ANIM4D_OT_pick_job(bpy.types.Operator):
    """Use a finished job's result for this parameter"""

    bl_idname = "anim4d.pick_job"
    bl_label = "Pick a Finished Job"
    bl_options = {"INTERNAL"}

    kind: StringProperty(name="Kind")
    param: StringProperty(name="Parameter")
    job_id: EnumProperty(name="Job", items=finished_job_items)

    def execute(self, context):
        grp = kind_props.group(context.scene, self.kind)
        if grp is None or not self.job_id:
            return {"CANCELLED"}
        setattr(grp, self.param, self.job_id)
        return {"FINISHED"}


CLASSES = (ANIM4D_OT_connect, ANIM4D_OT_submit, ANIM4D_OT_cancel, ANIM4D_OT_refresh,
           ANIM4D_OT_import_result, ANIM4D_OT_retime, ANIM4D_OT_local_backend,
           ANIM4D_OT_pick_job)
