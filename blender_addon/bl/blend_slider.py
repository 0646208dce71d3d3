"""A blend imported as shape keys driven by one slider on the object (see
``core.import_plan.blend_slider``): the custom property drives ``eval_time`` of the absolute shape
keys; the time curve the import wrote is removed, so the scene's time no longer moves it."""

from __future__ import annotations

import bpy

from ..core import import_plan as plan


def apply_blend_slider(obj: bpy.types.Object, slider: plan.BlendSlider) -> None:
    """Replace ``obj``'s time curve by a driver from ``obj[slider.prop]`` (0..1)."""
    key = obj.data.shape_keys if obj.type == "MESH" else None
    if key is None or len(key.key_blocks) != slider.keys:
        raise ValueError(f"{obj.name}: a blend slider needs {slider.keys} shape keys")
    ad = key.animation_data
    if ad is not None and ad.action is not None:
        action = ad.action
        ad.action = None
        if action.users == 0:
            bpy.data.actions.remove(action)
    obj[slider.prop] = 0.0
    obj.id_properties_ui(slider.prop).update(
        min=0.0, max=1.0, soft_min=0.0, soft_max=1.0,
        description="Anim4D blend: 0 = the first creature, 1 = the second")
    key.eval_time = 0.0
    fc = key.driver_add("eval_time")
    drv = fc.driver
    drv.type = "SCRIPTED"
    var = drv.variables.new()
    var.name = slider.prop
    var.type = "SINGLE_PROP"
    var.targets[0].id_type = "OBJECT"
    var.targets[0].id = obj
    var.targets[0].data_path = f'["{slider.prop}"]'
    drv.expression = slider.expression
    obj["anim4d_time_kind"] = "blend_slider"
    obj["anim4d_blend_property"] = slider.prop
