"""A recording stand-in for ``bpy.types.UILayout`` that checks every call against Blender's RNA.

A panel's ``draw`` cannot run on a real layout outside a UI, and a ``MagicMock`` accepts anything
(a misspelt property draws "fine"). :class:`FakeLayout` accepts only what Blender would:

- methods that ``UILayout`` has, with keyword and positional arguments that the RNA function
  declares, of the declared type (enums, icons included, must be one of the RNA items);
- ``prop(data, name)`` only where ``name`` is a property of ``data.bl_rna``;
- ``operator(idname)`` only for a registered operator, and the properties assigned on what it
  returns must exist on that operator;
- attributes set on the layout (``alert``, ``active``, ...) must be ``UILayout`` properties.

Every call lands in one shared list, ``layout.calls``, as :class:`Call` records.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import bpy


@dataclass
class Call:
    """One layout call: ``name`` (``prop``, ``label``...), its arguments by RNA parameter name."""

    name: str
    args: dict[str, Any]
    layout: FakeLayout
    result: Any = None


def _check_value(where: str, param, value: Any) -> None:
    kind = param.type
    ok = {
        "STRING": lambda v: isinstance(v, str),
        "BOOLEAN": lambda v: isinstance(v, bool),
        "INT": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "FLOAT": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "ENUM": lambda v: v in {i.identifier for i in param.enum_items}
        or (param.is_enum_flag and set(v) <= {i.identifier for i in param.enum_items}),
        "POINTER": lambda v: v is None or hasattr(v, "bl_rna"),
    }.get(kind, lambda v: True)(value)
    if not ok:
        raise AssertionError(f"{where}: {param.identifier}={value!r} is not a valid {kind}")


def operator_rna(idname: str):
    """The RNA struct of the registered operator ``idname`` (``"anim4d.cancel"``)."""
    module, _, name = idname.partition(".")
    try:
        return getattr(getattr(bpy.ops, module), name).get_rna_type()
    except (AttributeError, KeyError) as err:
        raise AssertionError(f"operator {idname!r} is not registered") from err


class FakeOperatorProperties:
    """What ``layout.operator`` returns: assignments must name the operator's properties."""

    def __init__(self, idname: str):
        object.__setattr__(self, "_rna", operator_rna(idname))
        object.__setattr__(self, "_idname", idname)
        object.__setattr__(self, "values", {})

    def __setattr__(self, name: str, value: Any) -> None:
        props = self._rna.properties
        if name not in props.keys() or name == "rna_type":
            raise AssertionError(f"operator {self._idname} has no property {name!r} "
                                 f"(it has {sorted(k for k in props.keys() if k != 'rna_type')})")
        _check_value(f"{self._idname}.{name}", props[name], value)
        self.values[name] = value


class FakeLayout:
    """Records the calls a panel makes; rejects any Blender would not accept (see module doc)."""

    def __init__(self, calls: list[Call] | None = None, parent: FakeLayout | None = None):
        object.__setattr__(self, "calls", [] if calls is None else calls)
        object.__setattr__(self, "parent", parent)
        object.__setattr__(self, "attrs", {})

    def __setattr__(self, name: str, value: Any) -> None:
        props = bpy.types.UILayout.bl_rna.properties
        if name not in props.keys() or props[name].is_readonly:
            raise AssertionError(f"UILayout has no writable property {name!r}")
        _check_value(f"layout.{name}", props[name], value)
        self.attrs[name] = value

    def __getattr__(self, name: str):
        functions = bpy.types.UILayout.bl_rna.functions
        if name not in functions.keys():
            raise AssertionError(f"UILayout has no function {name!r}")
        fn = functions[name]
        inputs = [p for p in fn.parameters if not p.is_output]
        outputs = [p for p in fn.parameters if p.is_output]

        def call(*args: Any, **kwargs: Any):
            if len(args) > len(inputs):
                raise AssertionError(f"layout.{name}: {len(args)} positional arguments, "
                                     f"takes at most {len(inputs)}")
            bound = {p.identifier: a for p, a in zip(inputs, args, strict=False)}
            for key, value in kwargs.items():
                if key in bound or key not in {p.identifier for p in inputs}:
                    raise AssertionError(f"layout.{name}: unexpected argument {key!r}")
                bound[key] = value
            by_name = {p.identifier: p for p in inputs}
            missing = [p.identifier for p in inputs if p.is_required and p.identifier not in bound]
            if missing:
                raise AssertionError(f"layout.{name}: missing {missing}")
            for key, value in bound.items():
                _check_value(f"layout.{name}", by_name[key], value)
            result = self._result(name, bound, outputs)
            self.calls.append(Call(name, bound, self, result))
            return result

        return call

    def _result(self, name: str, args: dict[str, Any], outputs: list) -> Any:
        if name == "prop":
            data, prop = args["data"], args["property"]
            rna = getattr(data, "bl_rna", None)
            if rna is None:
                raise AssertionError(f"layout.prop: {data!r} has no RNA, it cannot be drawn")
            if prop not in rna.properties.keys():
                raise AssertionError(f"layout.prop: {rna.identifier} has no property {prop!r}")
        if name == "operator":
            return FakeOperatorProperties(args["operator"])
        made = [FakeLayout(self.calls, self) for p in outputs
                if p.type == "POINTER" and p.fixed_type.identifier == "UILayout"]
        if not made:
            return None
        return made[0] if len(made) == 1 else tuple(made)

    def find(self, name: str) -> list[Call]:
        """Every recorded call of ``name``, in order."""
        return [c for c in self.calls if c.name == name]
