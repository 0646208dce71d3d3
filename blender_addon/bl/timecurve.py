"""The one time curve of an imported object: find it, write it in bulk, set its repeat mode.

Where the curve lives depends on how the animation is stored (``anim4d_time_kind``):

- ``shape_keys``: ``eval_time`` of the mesh's shape-key datablock (absolute keys, 10 per sample);
- ``mesh_cache``: ``eval_frame`` of the object's Mesh Cache modifier (1 per sample);
- ``geometry_nodes``: the Time input of the object's Geometry Nodes modifier (1 per sample).

Blender 5 actions are layered: F-curves live in the channel bag of the action slot assigned to
the animated ID, which :func:`ensure_fcurve` creates when missing.
"""

from __future__ import annotations

import bpy
import numpy as np
from bpy_extras import anim_utils

from ..core import import_plan as plan
from ..core import retime_plan

CACHE_MODIFIER = "Anim4D Cache"
GN_MODIFIER = "Anim4D Gaussians"
_LINEAR = 1  # index of 'LINEAR' in Keyframe.interpolation's enum


def time_target(obj: bpy.types.Object) -> tuple[bpy.types.ID, str, float]:
    """``(animated ID, data path, value step per sample)`` of ``obj``'s time curve."""
    kind = obj.get("anim4d_time_kind", "")
    if kind == plan.TIME_SHAPE_KEYS:
        key = obj.data.shape_keys if obj.type == "MESH" else None
        if key is None:
            raise LookupError(f"{obj.name}: its shape keys are gone, nothing to retime")
        return key, "eval_time", plan.SHAPE_KEY_STEP
    if kind == plan.TIME_MESH_CACHE:
        if CACHE_MODIFIER not in obj.modifiers:
            raise LookupError(f"{obj.name}: its '{CACHE_MODIFIER}' modifier is gone")
        return obj, f'modifiers["{CACHE_MODIFIER}"].eval_frame', 1.0
    if kind == plan.TIME_GEOMETRY_NODES:
        mod = obj.modifiers.get(GN_MODIFIER)
        if mod is None or mod.node_group is None:
            raise LookupError(f"{obj.name}: its '{GN_MODIFIER}' modifier is gone")
        ident = mod.node_group.interface.items_tree["Time"].identifier
        return obj, f'modifiers["{GN_MODIFIER}"]["{ident}"]', 1.0
    raise LookupError(f"{obj.name} was not imported by Anim4D (no time curve)")


def ensure_fcurve(owner: bpy.types.ID, data_path: str) -> bpy.types.FCurve:
    """The F-curve animating ``owner.data_path``, creating action, slot and curve if needed."""
    ad = owner.animation_data or owner.animation_data_create()
    if ad.action is None:
        ad.action = bpy.data.actions.new(f"{owner.name}_Anim4D")
    action = ad.action
    if ad.action_slot is None:
        slot = anim_utils.action_get_first_suitable_slot(action, owner.id_type)
        if slot is None:
            slot = action.slots.new(id_type=owner.id_type, name=owner.name)
        ad.action_slot = slot
    bag = anim_utils.action_ensure_channelbag_for_slot(action, ad.action_slot)
    fc = bag.fcurves.find(data_path)
    return fc if fc is not None else bag.fcurves.new(data_path)


def find_fcurve(obj: bpy.types.Object) -> bpy.types.FCurve | None:
    """The existing time F-curve of ``obj``, or None."""
    owner, path, _ = time_target(obj)
    ad = owner.animation_data
    if ad is None or ad.action is None or ad.action_slot is None:
        return None
    bag = anim_utils.action_get_channelbag_for_slot(ad.action, ad.action_slot)
    return None if bag is None else bag.fcurves.find(path)


def write_keys(fc: bpy.types.FCurve, frames: np.ndarray, values: np.ndarray) -> None:
    """Replace all keys of ``fc`` with LINEAR keys at ``frames`` / ``values``, in bulk."""
    fc.keyframe_points.clear()
    n = len(frames)
    fc.keyframe_points.add(n)
    fc.keyframe_points.foreach_set("co", plan.keyframe_coords(frames, values))
    fc.keyframe_points.foreach_set("interpolation", np.full(n, _LINEAR, dtype=np.int32))
    fc.update()


def read_keys(fc: bpy.types.FCurve) -> tuple[np.ndarray, np.ndarray]:
    """``(frames, values)`` of all keys of ``fc`` (float64)."""
    n = len(fc.keyframe_points)
    co = np.empty(2 * n, dtype=np.float32)
    fc.keyframe_points.foreach_get("co", co)
    co = co.reshape(n, 2).astype(np.float64)
    return co[:, 0], co[:, 1]


def set_repeat(fc: bpy.types.FCurve, repeat: str) -> None:
    """Hold (no modifier), loop or ping-pong (one Cycles modifier) after the last key."""
    for mod in [m for m in fc.modifiers if m.type == "CYCLES"]:
        fc.modifiers.remove(mod)
    modes = retime_plan.cycle_modes(repeat)
    fc.extrapolation = "CONSTANT"
    if modes is not None:
        mod = fc.modifiers.new("CYCLES")
        mod.mode_before, mod.mode_after = modes
    fc.update()


def write_time_curve(obj: bpy.types.Object, frames: np.ndarray, values: np.ndarray,
                     repeat: str = "HOLD") -> bpy.types.FCurve:
    """Write ``obj``'s whole time curve (frames and values as computed by the core)."""
    owner, path, _ = time_target(obj)
    fc = ensure_fcurve(owner, path)
    write_keys(fc, frames, values)
    set_repeat(fc, repeat)
    owner.update_tag()
    return fc
