"""Blender properties made at run time from the job kinds a backend announces.

Each ``KindSpec`` in the hello reply becomes a ``PropertyGroup`` class (one property per
parameter, one file-path property per input) reachable as ``scene.anim4d_kind_<name>``, so a new
kind on the server gets its own panel section without an add-on update.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import bpy
from bpy.props import (
    BoolProperty,
    EnumProperty,
    FloatProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)

_registered: dict[str, tuple[type, str]] = {}  # kind name -> (class, scene attribute)
INPUT_PREFIX = "input_"


def attr_name(kind: str) -> str:
    """``scene`` attribute of a kind's property group."""
    return "anim4d_kind_" + re.sub(r"[^0-9A-Za-z_]", "_", kind)


def _prop(spec) -> Any:
    """The bpy property for one ``shared.params.ParamSpec``."""
    common = {"name": spec.name.replace("_", " ").title(), "description": spec.help or spec.name}
    limits = {}
    if spec.min is not None:
        limits["min"] = spec.min
    if spec.max is not None:
        limits["max"] = spec.max
    if spec.type == "int":
        lim = {k: int(v) for k, v in limits.items()}
        return IntProperty(default=int(spec.default or 0), **lim, **common)
    if spec.type == "float":
        return FloatProperty(default=float(spec.default or 0.0), **limits, **common)
    if spec.type == "bool":
        return BoolProperty(default=bool(spec.default), **common)
    if spec.type == "enum":
        items = [(c, c.replace("_", " ").title(), "") for c in spec.choices]
        default = spec.default if spec.default in spec.choices else spec.choices[0]
        return EnumProperty(items=items, default=default, **common)
    if spec.type == "floats":  # typed as text, "0,0.5,1"; the spec turns it into a list
        common["description"] += f" ({spec.describe_accepted()})"
        return StringProperty(default=",".join(f"{x:g}" for x in spec.default or ()), **common)
    if spec.type == "job":  # a finished job's id, or a unique prefix as the Jobs list shows it
        common["description"] += " (the id, or its first characters, of a finished job)"
        return StringProperty(default=str(spec.default or ""), **common)
    return StringProperty(default=str(spec.default or ""), **common)


def ensure(kinds: list) -> None:
    """Register a property group for every kind not registered yet (main thread only)."""
    for kind in kinds:
        if kind.name in _registered:
            continue
        annotations = {p.name: _prop(p) for p in kind.params}
        for inp in kind.inputs:
            annotations[INPUT_PREFIX + inp.name] = StringProperty(
                name=inp.name.replace("_", " ").title(), subtype="FILE_PATH",
                description=(inp.help or inp.name) + " (" + ", ".join(inp.extensions)
                + ("; a folder for an image sequence" if inp.multiple else "") + ")")
        cls_name = "ANIM4D_PG_" + attr_name(kind.name)[len("anim4d_kind_"):]
        cls = type(cls_name, (bpy.types.PropertyGroup,), {"__annotations__": annotations})
        bpy.utils.register_class(cls)
        attr = attr_name(kind.name)
        setattr(bpy.types.Scene, attr, PointerProperty(type=cls))
        _registered[kind.name] = (cls, attr)


def unregister_all() -> None:
    for cls, attr in _registered.values():
        if hasattr(bpy.types.Scene, attr):
            delattr(bpy.types.Scene, attr)
        bpy.utils.unregister_class(cls)
    _registered.clear()


def group(scene: bpy.types.Scene, kind_name: str) -> Any | None:
    """The scene's property group for ``kind_name`` (None if not registered)."""
    if kind_name not in _registered:
        return None
    return getattr(scene, _registered[kind_name][1], None)


def values(scene: bpy.types.Scene, kind) -> tuple[dict[str, Any], list]:
    """``(params, inputs)`` from the panel for ``kind``; a folder becomes its files. Files of
    the kind's first input are paths, those of its other inputs ``(input name, path)`` pairs
    (``Client.submit``)."""
    grp = group(scene, kind.name)
    params = {p.name: getattr(grp, p.name) for p in kind.params} if grp else {}
    inputs: list = []
    for k, inp in enumerate(kind.inputs):
        raw = getattr(grp, INPUT_PREFIX + inp.name, "") if grp else ""
        if not raw:
            continue
        path = Path(bpy.path.abspath(raw))
        if path.is_dir():  # an image sequence: every accepted file, in name order
            exts = {e.lower().lstrip(".") for e in inp.extensions}
            files = [str(p) for p in sorted(path.iterdir())
                     if p.is_file() and p.suffix.lower().lstrip(".") in exts]
        else:
            files = [str(path)]
        inputs += files if k == 0 else [(inp.name, f) for f in files]
    return params, inputs
