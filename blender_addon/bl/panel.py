"""The "Anim4D" sidebar tab of the 3D viewport: connection, job kinds, jobs, retime."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty

from ..core.retime_plan import EASE_PRESETS, REPEAT_MODES
from . import kind_props, prefs, resample, resample_ops, retime
from .runtime import RT


def _retime_update(self, context):
    obj = self.id_data
    if retime.is_imported(obj):
        from .operators import settings_from

        try:
            retime.apply_retime(obj, settings_from(self))
        except Exception as err:  # noqa: BLE001 - shown in the panel
            RT.state.last_error = str(err)


class ANIM4D_PG_retime(bpy.types.PropertyGroup):
    """Retime settings of an imported object; each change rewrites its time curve."""

    speed: FloatProperty(name="Speed", default=1.0, min=0.01, soft_max=10.0,
                         update=_retime_update, description="2 plays twice as fast")
    use_start: BoolProperty(name="Start Frame", default=False, update=_retime_update)
    start: FloatProperty(name="Start", default=1.0, update=_retime_update)
    offset: FloatProperty(name="Offset", default=0.0, update=_retime_update,
                          description="Frames added after the start")
    repeat: EnumProperty(name="After End", items=[(m, m.title(), "") for m in REPEAT_MODES],
                         default="HOLD", update=_retime_update)
    reverse: BoolProperty(name="Reverse", default=False, update=_retime_update)
    ease: EnumProperty(name="Ease",
                       items=[(e, e.replace("_", " ").title(), "") for e in EASE_PRESETS],
                       default="LINEAR", update=_retime_update)


class _Base:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Anim4D"


class ANIM4D_PT_main(_Base, bpy.types.Panel):
    bl_idname = "ANIM4D_PT_main"
    bl_label = "Anim4D"

    def draw(self, context):
        layout = self.layout
        st = RT.state
        p = prefs.get()
        box = layout.box()
        row = box.row()
        icon = {"connected": "CHECKMARK", "error": "ERROR"}.get(st.connection, "QUESTION")
        row.label(text=p.address, icon=icon)
        row.operator("anim4d.connect", text="", icon="FILE_REFRESH")
        if st.connection == "connected":
            box.label(text=f"anim4d {st.server_version}, protocol {st.protocol_version}")
            if st.pretrained_text:
                box.label(text=st.pretrained_text)
        if st.last_error:
            col = box.column()
            col.alert = True
            for line in _wrap(st.last_error, 48):
                col.label(text=line)
        if p.backend_python:
            row = box.row()
            state = RT.backend.describe() if RT.backend else "local backend not running"
            row.label(text=state, icon="CONSOLE")
            running = RT.backend is not None and RT.backend.state in ("starting", "running")
            row.operator("anim4d.local_backend", text="Stop" if running else "Start").action = (
                "STOP" if running else "START")
        if st.upload_text:
            box.label(text=st.upload_text)
        layout.operator("anim4d.import_result", text="Import Result Folder...",
                        icon="IMPORT").directory = ""


class ANIM4D_PT_kinds(_Base, bpy.types.Panel):
    bl_idname = "ANIM4D_PT_kinds"
    bl_label = "New Job"
    bl_parent_id = "ANIM4D_PT_main"

    def draw(self, context):
        layout = self.layout
        if not RT.state.kinds:
            layout.label(text="Test the connection to list job kinds")
            return
        for kind in RT.state.kinds:
            header, body = layout.panel(f"anim4d_kind_{kind.name}", default_closed=True)
            header.label(text=kind.title or kind.name)
            if body is None:
                continue
            for line in _wrap(kind.description, 48)[:3]:
                body.label(text=line)
            grp = kind_props.group(context.scene, kind.name)
            if grp is not None:
                for inp in kind.inputs:
                    body.prop(grp, kind_props.INPUT_PREFIX + inp.name)
                for prm in kind.params:
                    if prm.type != "job":
                        body.prop(grp, prm.name)
                        continue
                    row = body.row(align=True)  # a job id as text, or picked from a dropdown
                    row.prop(grp, prm.name)
                    pick = row.operator_menu_enum("anim4d.pick_job", "job_id", text="",
                                                  icon="DOWNARROW_HLT")
                    pick.kind, pick.param = kind.name, prm.name
            body.operator("anim4d.submit", icon="PLAY").kind = kind.name


class ANIM4D_PT_jobs(_Base, bpy.types.Panel):
    bl_idname = "ANIM4D_PT_jobs"
    bl_label = "Jobs"
    bl_parent_id = "ANIM4D_PT_main"

    def draw_header_preset(self, context):
        self.layout.operator("anim4d.refresh", text="", icon="FILE_REFRESH", emboss=False)

    def draw(self, context):
        layout = self.layout
        rows = RT.state.ordered()
        if not rows:
            layout.label(text="No jobs yet")
        for job in rows[:20]:
            box = layout.box()
            head = box.row()
            head.label(text=f"{job.kind or 'job'}  {job.id[:8]}")
            if not job.terminal:
                head.operator("anim4d.cancel", text="", icon="X").job_id = job.id
            if job.can_import:
                head.operator("anim4d.import_result", text="Import", icon="IMPORT").job_id = job.id
            elif job.imported:
                head.label(text="", icon="CHECKMARK")
            box.progress(factor=min(max(job.fraction, 0.0), 1.0), type="BAR",
                         text=job.status_text()[:60])


class ANIM4D_PT_retime(_Base, bpy.types.Panel):
    bl_idname = "ANIM4D_PT_retime"
    bl_label = "Retime"
    bl_parent_id = "ANIM4D_PT_main"

    @classmethod
    def poll(cls, context):
        return retime.is_imported(context.active_object)

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        settings = context.active_object.anim4d_retime
        layout.prop(settings, "speed")
        row = layout.row(heading="Start")
        row.prop(settings, "use_start", text="")
        sub = row.row()
        sub.active = settings.use_start
        sub.prop(settings, "start", text="")
        layout.prop(settings, "offset")
        layout.prop(settings, "repeat")
        layout.prop(settings, "reverse")
        layout.prop(settings, "ease")
        layout.operator("anim4d.retime")
        obj = context.active_object
        if resample_ops.backend_kind(obj) is not None:  # exact frames from the source
            layout.operator("anim4d.resample", icon="FILE_REFRESH")
        if obj.get(resample.PREV):
            layout.operator("anim4d.resample_revert", icon="LOOP_BACK")


def _wrap(text: str, width: int) -> list[str]:
    words, lines, cur = text.split(), [], ""
    for w in words:
        if len(cur) + len(w) + 1 > width and cur:
            lines.append(cur)
            cur = w
        else:
            cur = f"{cur} {w}".strip()
    return lines + ([cur] if cur else [])


CLASSES = (ANIM4D_PG_retime, ANIM4D_PT_main, ANIM4D_PT_kinds, ANIM4D_PT_jobs, ANIM4D_PT_retime)
