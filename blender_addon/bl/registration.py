"""Register and unregister every class, the retime property, the timer and the quit hook."""

from __future__ import annotations

import atexit

import bpy
from bpy.props import PointerProperty

from . import camera_export, kind_props, operators, panel, prefs, resample_ops, runtime

CLASSES = (prefs.ANIM4D_AP_preferences, *operators.CLASSES, *resample_ops.CLASSES,
           *panel.CLASSES, *camera_export.CLASSES)


def _on_exit() -> None:
    runtime.RT.shutdown()


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Object.anim4d_retime = PointerProperty(type=panel.ANIM4D_PG_retime)
    if not bpy.app.timers.is_registered(runtime.tick):
        bpy.app.timers.register(runtime.tick, first_interval=runtime.IDLE_INTERVAL_S,
                                persistent=True)
    atexit.register(_on_exit)  # stops the local backend when Blender quits


def unregister() -> None:
    if bpy.app.timers.is_registered(runtime.tick):
        bpy.app.timers.unregister(runtime.tick)
    atexit.unregister(_on_exit)
    runtime.RT.shutdown()
    kind_props.unregister_all()
    if hasattr(bpy.types.Object, "anim4d_retime"):
        del bpy.types.Object.anim4d_retime
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
