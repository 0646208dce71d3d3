"""The Geometry Nodes tree and material that play a Gaussian sequence (built by script).

Input geometry: a vertex-only mesh holding every frame, frame after frame, with point attributes
``frame`` (int), ``position`` (means, Z-up), ``g_scale`` (axis lengths), ``g_rot`` (quaternion),
``g_color`` (RGBA from SH DC) and ``g_alpha`` (opacity). The tree:

1. ``i0 = floor(clamp(Time, 0, Frames - 1))``, ``w = Time - i0`` (0 unless Interpolate);
2. keeps the points of frame ``i0`` (Delete Geometry on ``frame != i0``);
3. samples the same splat in frame ``i1 = min(i0 + 1, Frames - 1)`` at index ``Index + i1 * N``
   (frames with correspondence have equal counts ``N``) and mixes position, scale, rotation
   (spherical), colour and opacity by ``w``;
4. instances an ico sphere per point, rotated and scaled (times Size), with the material.

The material reads ``g_color`` and ``g_alpha`` from the instancer: emission mixed with
transparency by opacity, softened towards the silhouette. It renders in Cycles and EEVEE.
"""

from __future__ import annotations

import bpy

TREE_NAME = "Anim4D Gaussians"
MATERIAL_NAME = "Anim4D Gaussian Splat"
# (name, socket type, default, min, max)
INPUTS = (
    ("Time", "NodeSocketFloat", 0.0, None, None),
    ("Frames", "NodeSocketInt", 1, 1, None),
    ("Points per Frame", "NodeSocketInt", 0, 0, None),
    ("Interpolate", "NodeSocketBool", True, None, None),
    ("Size", "NodeSocketFloat", 1.0, 0.0, None),
    ("Detail", "NodeSocketInt", 1, 1, 4),
)
_ATTRS = (  # attribute, Named Attribute / Sample Index type, Mix type, Mix socket suffix
    ("g_scale", "FLOAT_VECTOR", "VECTOR", "Vector"),
    ("g_rot", "QUATERNION", "ROTATION", "Rotation"),
    ("g_color", "FLOAT_COLOR", "RGBA", "Color"),
    ("g_alpha", "FLOAT", "FLOAT", "Float"),
)


class _Builder:
    """Tiny helper: create nodes in a row and link sockets by name or identifier."""

    def __init__(self, tree: bpy.types.NodeTree):
        self.tree = tree
        self.x = 0

    def node(self, type_: str, **props) -> bpy.types.Node:
        n = self.tree.nodes.new(type_)
        for key, value in props.items():
            setattr(n, key, value)
        n.location = (self.x, 0)
        self.x += 200
        return n

    def link(self, out, inp) -> None:
        self.tree.links.new(out, inp)

    def math(self, op: str, a, b=None) -> bpy.types.NodeSocket:
        n = self.node("ShaderNodeMath", operation=op)
        for i, v in enumerate((a, b)):
            if v is None:
                continue
            if isinstance(v, (int, float)):
                n.inputs[i].default_value = v
            else:
                self.link(v, n.inputs[i])
        return n.outputs[0]


def _sock(sockets, identifier: str) -> bpy.types.NodeSocket:
    """The socket with ``identifier`` (names repeat on multi-type nodes such as Mix)."""
    for sock in sockets:
        if sock.identifier == identifier:
            return sock
    raise KeyError(identifier)


def _interface(tree: bpy.types.NodeTree) -> None:
    tree.interface.new_socket("Geometry", in_out="INPUT", socket_type="NodeSocketGeometry")
    for name, stype, default, lo, hi in INPUTS:
        sock = tree.interface.new_socket(name, in_out="INPUT", socket_type=stype)
        sock.default_value = default
        if lo is not None:
            sock.min_value = lo
        if hi is not None:
            sock.max_value = hi
    tree.interface.new_socket("Geometry", in_out="OUTPUT", socket_type="NodeSocketGeometry")


def build_tree(material: bpy.types.Material) -> bpy.types.NodeTree:
    """A new Geometry Nodes tree as described in the module docstring."""
    tree = bpy.data.node_groups.new(TREE_NAME, "GeometryNodeTree")
    tree.is_modifier = True
    _interface(tree)
    b = _Builder(tree)
    gi = b.node("NodeGroupInput")
    go = b.node("NodeGroupOutput")
    geo = gi.outputs["Geometry"]

    last = b.math("SUBTRACT", gi.outputs["Frames"], 1.0)
    t = b.math("MINIMUM", b.math("MAXIMUM", gi.outputs["Time"], 0.0), last)
    i0 = b.math("FLOOR", t)
    i1 = b.math("MINIMUM", b.math("ADD", i0, 1.0), last)
    frac = b.math("SUBTRACT", t, i0)
    w = b.math("MULTIPLY", frac, gi.outputs["Interpolate"])

    frame_attr = b.node("GeometryNodeInputNamedAttribute", data_type="INT")
    frame_attr.inputs["Name"].default_value = "frame"
    cmp = b.node("FunctionNodeCompare", data_type="INT", operation="NOT_EQUAL")
    b.link(frame_attr.outputs["Attribute"], _sock(cmp.inputs, "A_INT"))
    b.link(i0, _sock(cmp.inputs, "B_INT"))
    delete = b.node("GeometryNodeDeleteGeometry", domain="POINT")
    b.link(geo, delete.inputs["Geometry"])
    b.link(cmp.outputs["Result"], delete.inputs["Selection"])
    points = delete.outputs["Geometry"]

    index = b.node("GeometryNodeInputIndex").outputs[0]
    next_index = b.math("ADD", index, b.math("MULTIPLY", i1, gi.outputs["Points per Frame"]))

    def mixed(attr: str, attr_type: str, mix_type: str, suffix: str) -> bpy.types.NodeSocket:
        if attr == "position":
            here = b.node("GeometryNodeInputPosition").outputs[0]
            there_field = b.node("GeometryNodeInputPosition").outputs[0]
        else:
            here_n = b.node("GeometryNodeInputNamedAttribute", data_type=attr_type)
            here_n.inputs["Name"].default_value = attr
            here = here_n.outputs["Attribute"]
            there_field = here
        sample = b.node("GeometryNodeSampleIndex", data_type=attr_type, domain="POINT",
                        clamp=True)
        b.link(geo, sample.inputs["Geometry"])
        b.link(there_field, sample.inputs["Value"])
        b.link(next_index, sample.inputs["Index"])
        mix = b.node("ShaderNodeMix", data_type=mix_type)
        b.link(w, _sock(mix.inputs, "Factor_Float"))
        b.link(here, _sock(mix.inputs, f"A_{suffix}"))
        b.link(sample.outputs["Value"], _sock(mix.inputs, f"B_{suffix}"))
        return _sock(mix.outputs, f"Result_{suffix}")

    pos = mixed("position", "FLOAT_VECTOR", "VECTOR", "Vector")
    values = {a: mixed(a, t_, m, s) for a, t_, m, s in _ATTRS}

    setpos = b.node("GeometryNodeSetPosition")
    b.link(points, setpos.inputs["Geometry"])
    b.link(pos, setpos.inputs["Position"])
    geo_out = setpos.outputs["Geometry"]
    for attr, attr_type in (("g_color", "FLOAT_COLOR"), ("g_alpha", "FLOAT")):
        store = b.node("GeometryNodeStoreNamedAttribute", data_type=attr_type, domain="POINT")
        store.inputs["Name"].default_value = attr
        b.link(geo_out, store.inputs["Geometry"])
        b.link(values[attr], store.inputs["Value"])
        geo_out = store.outputs["Geometry"]

    sphere = b.node("GeometryNodeMeshIcoSphere")
    sphere.inputs["Radius"].default_value = 1.0
    b.link(gi.outputs["Detail"], sphere.inputs["Subdivisions"])
    setmat = b.node("GeometryNodeSetMaterial")
    setmat.inputs["Material"].default_value = material
    b.link(sphere.outputs["Mesh"], setmat.inputs["Geometry"])

    scale = b.node("ShaderNodeVectorMath", operation="SCALE")
    b.link(values["g_scale"], scale.inputs["Vector"])
    b.link(gi.outputs["Size"], scale.inputs["Scale"])
    inst = b.node("GeometryNodeInstanceOnPoints")
    b.link(geo_out, inst.inputs["Points"])
    b.link(setmat.outputs["Geometry"], inst.inputs["Instance"])
    b.link(values["g_rot"], inst.inputs["Rotation"])
    b.link(scale.outputs["Vector"], inst.inputs["Scale"])
    b.link(inst.outputs["Instances"], go.inputs["Geometry"])
    return tree


def build_material() -> bpy.types.Material:
    """Emission coloured by ``g_color``, transparent by ``g_alpha`` and towards the edges."""
    mat = bpy.data.materials.new(MATERIAL_NAME)
    if mat.node_tree is None:  # Blender < 5: node trees are opt-in
        mat.use_nodes = True
    nt = mat.node_tree
    nt.nodes.clear()
    b = _Builder(nt)
    color = b.node("ShaderNodeAttribute", attribute_type="INSTANCER", attribute_name="g_color")
    alpha = b.node("ShaderNodeAttribute", attribute_type="INSTANCER", attribute_name="g_alpha")
    facing = b.node("ShaderNodeLayerWeight")
    facing.inputs["Blend"].default_value = 0.5
    edge = b.math("POWER", b.math("SUBTRACT", 1.0, facing.outputs["Facing"]), 2.0)
    opacity = b.math("MULTIPLY", alpha.outputs["Fac"], edge)
    emit = b.node("ShaderNodeEmission")
    b.link(color.outputs["Color"], emit.inputs["Color"])
    clear = b.node("ShaderNodeBsdfTransparent")
    mix = b.node("ShaderNodeMixShader")
    b.link(opacity, mix.inputs["Fac"])
    b.link(clear.outputs[0], mix.inputs[1])
    b.link(emit.outputs[0], mix.inputs[2])
    out = b.node("ShaderNodeOutputMaterial")
    b.link(mix.outputs[0], out.inputs["Surface"])
    if hasattr(mat, "surface_render_method"):
        mat.surface_render_method = "BLENDED"  # EEVEE: sorted transparency
    return mat


def input_identifier(tree: bpy.types.NodeTree, name: str) -> str:
    """The modifier key (``Socket_N``) of the tree input called ``name``."""
    return tree.interface.items_tree[name].identifier
