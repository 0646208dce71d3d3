"""Where Blender's glTF importer puts a rigid mesh parented to a joint (horns, eyes, a saddle).

Why Blender and the glTF node hierarchy disagree
-------------------------------------------------
glTF places a mesh node that is a child of a joint at ``world(joint) @ local(mesh)``. Blender's
importer (io_scene_gltf2, as shipped with Blender 4.x/5.0) turns the joints into bones of an
armature object and parents the mesh object to the bone (``parent_type = 'BONE'``). Blender
places a bone-parented object relative to the bone's TAIL: its parent matrix is the pose bone's
matrix translated by ``bone.length`` along the bone's own +Y axis. The importer compensates by
moving the object back by ``-bone_length`` along +Y (``obj.location`` in ``imp/node.py``, and every
translation key in ``imp/animation_node.py``), where ``bone_length`` is its heuristic length
(``vnode.bone_length``: the shortest bind-pose offset to a child joint, else the parent bone's,
else the joint's own offset, else 1).

With the default "Bone Dir" heuristic (``bone_heuristic='BLENDER'``) the edit bone, however, is
created with length ``bone_length / max(armature object scale)`` (``imp/node.py``,
``create_bones``), while the compensation still subtracts ``bone_length``. So whenever the
armature node (the deepest common ancestor of the skin's joints) has a scale other than 1 (an
FBX-converted rig at 0.01 or 100, or any scaled root) the two no longer cancel and the object
ends up offset by ``d = bone_length * (1 / max(scale) - 1)`` along the joint's local +Y axis
(the BLENDER heuristic points every bone along its joint's local +Y in glTF space). For a
scale below 1, d > 0: Blender's horns sit further out along the head bone, and the plain node
hierarchy ("the spec") has them sunk into the head. The skinned body is unaffected (bone length
plays no part in skinning). With ``bone_heuristic='TEMPERANCE'`` or ``'FORTUNE'`` the edit bone
gets ``bone_length`` exactly and Blender matches the glTF hierarchy. ``guess_original_bind_pose``
changes the pose the length is measured in (inverse bind matrices, or the nodes' default pose),
so the size of the offset when the two poses differ. So Blender's placement depends on two
import options; we match Blender's DEFAULT import (``bone_heuristic='BLENDER'``,
``guess_original_bind_pose=True``), which is what an artist sees. Measured on the test creature
(tests/data/test_gltf_bone_parent.py): armature scale 0.5 or 2 (and 0.01, checked once), every
frame, within 3e-7 of the bounding-box diagonal of Blender's import, against 0.14 with the plain
node hierarchy.

What is mirrored from the importer (``imp/vnode.py``): which nodes become bones (every node on
the path from a skin joint up to, not including, the armature node: the deepest common ancestor
of the joints and ``skin.skeleton``, or its parent when that ancestor is itself a joint), which
armature each bone belongs to, the bind-pose guess from inverse bind matrices, and the bone
length heuristic. Two placements follow:

- a node that is not a bone but whose parent is a bone (the horns): its local matrix is
  pre-multiplied by a translation of ``d(parent)`` along +Y, so its descendants move with it;
- a mesh on a bone node itself (the importer moves it onto a new child object with an identity
  transform): the mesh is placed at ``world(bone) @ translate(0, d(bone), 0)``.

A non-positive armature scale (which the importer cannot turn into a bone length either) gets no
offset.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .gltf_anim import rest_trs
from .gltf_buffers import GltfDocument

MIN_BONE_LENGTH = 0.004  # the importer's threshold below which a child offset is ignored
ROOT = -1  # the importer's dummy root node above every scene root


@dataclass(frozen=True)
class BoneParentOffsets:
    """Offsets (source units, along a joint's local +Y) that reproduce Blender's import.

    ``child``: node -> offset applied before the node's local matrix (its parent is a bone);
    ``own``: bone node carrying a mesh -> offset applied after that node's world matrix, for its
    mesh only. Nodes not listed have no offset.
    """

    child: dict[int, float] = field(default_factory=dict)
    own: dict[int, float] = field(default_factory=dict)


def _path_from_root(node: int, parent: np.ndarray) -> list[int]:
    path = []
    while node != ROOT:
        path.append(node)
        node = int(parent[node])
    return [ROOT] + path[::-1]


def _deepest_common_ancestor(nodes: list[int], parent: np.ndarray) -> int:
    common: list[int] = []
    for n in nodes:
        path = _path_from_root(n, parent)
        if not common:
            common = path
            continue
        i = 0
        while i < min(len(path), len(common)) and path[i] == common[i]:
            i += 1
        common = common[:i]
    return common[-1]


def bones_and_armatures(doc: GltfDocument, parent: np.ndarray) -> dict[int, int]:
    """Bone node -> its armature node (``ROOT`` when the armature is the dummy root), as the
    importer's ``mark_bones_and_armas`` decides."""
    g = doc.gltf
    is_bone: set[int] = set()
    is_arma: set[int] = set()
    for si, skin in enumerate(g.skins or []):
        joints = list(skin.joints or [])
        for j in joints + ([skin.skeleton] if skin.skeleton is not None else []):
            if not 0 <= j < len(parent):
                raise doc.fail(f"skin {si} names node {j} as a joint or skeleton, but the file "
                               f"has nodes 0..{len(parent) - 1}")
        if not joints:
            continue
        marks = joints + ([skin.skeleton] if skin.skeleton is not None else [])
        arma = _deepest_common_ancestor(marks, parent)
        if arma in joints:
            arma = int(parent[arma])
        if arma not in is_bone:
            is_arma.add(arma)
        for j in joints:
            while j != arma:
                is_bone.add(j)
                is_arma.discard(j)
                j = int(parent[j])
    children: dict[int, list[int]] = {ROOT: [i for i in range(len(parent)) if parent[i] == ROOT]}
    for i, node in enumerate(g.nodes or []):
        children[i] = list(node.children or [])
    out: dict[int, int] = {}
    stack: list[tuple[int, int | None]] = [(ROOT, None)]
    while stack:
        n, arma = stack.pop()
        if n in is_arma:
            arma = n
        elif n in is_bone:
            if arma is not None:
                out[n] = arma
        else:
            arma = None
        stack.extend((c, arma) for c in children[n])
    return out


def _bind_translations(doc: GltfDocument, parent: np.ndarray, bones: dict[int, int],
                       inverse_bind, rest: np.ndarray) -> dict[int, np.ndarray]:
    """Bind-pose local translation ``[3]`` of each bone (``pick_bind_pose`` with
    ``guess_original_bind_pose``): from the inverse bind matrices where the bone and its parent
    both have one, else the node's rest translation (``rest``: ``[N, 4, 4]`` local matrices)."""
    g = doc.gltf
    inv: dict[int, np.ndarray] = {ROOT: np.eye(4)}
    for si, skin in enumerate(g.skins or []):
        if skin.inverseBindMatrices is None:
            continue
        skel = skin.skeleton
        if skel is not None:
            if skel in (skin.joints or []):
                skel = int(parent[skel])
            inv.setdefault(skel, np.eye(4))
        for i, j in enumerate(skin.joints or []):
            inv[j] = inverse_bind(si)[i]
    out = {}
    for b in bones:
        p = int(parent[b])
        if b in inv and p in inv:
            out[b] = (inv[p] @ np.linalg.pinv(inv[b]))[:3, 3]
        else:
            out[b] = rest[b][:3, 3]
    return out


def _max_scale(rest: np.ndarray, node: int) -> float:
    """``max(obj.scale)`` of the armature object made from ``node`` (1 for the dummy root)."""
    if node == ROOT:
        return 1.0
    m = rest[node][:3, :3]
    size = np.linalg.norm(m, axis=0)
    if np.linalg.det(m) < 0:  # Blender's decompose gives a negative scale for a mirrored matrix
        size = -size
    return float(size.max())


def blender_bone_offsets(doc: GltfDocument, parent: np.ndarray, inverse_bind) -> BoneParentOffsets:
    """Offsets placing joint-parented rigid meshes where Blender's default glTF import does.

    Args:
        doc: the loaded glTF.
        parent: ``[N]`` parent node of each node (-1 for roots).
        inverse_bind: ``skin index -> [J, 4, 4]`` inverse bind matrices (identity when absent).
    """
    bones = bones_and_armatures(doc, parent)
    if not bones:
        return BoneParentOffsets()
    rest = rest_trs(doc)[3]
    bind = _bind_translations(doc, parent, bones, inverse_bind, rest)
    g = doc.gltf
    depth = {b: len(_path_from_root(b, parent)) for b in bones}
    length: dict[int, float] = {}
    for b in sorted(bones, key=depth.__getitem__):  # parents before children
        kids = [float(np.linalg.norm(bind[c])) for c in g.nodes[b].children or [] if c in bones]
        kids = [k for k in kids if k > MIN_BONE_LENGTH]
        own = float(np.linalg.norm(bind[b]))
        if kids:
            length[b] = min(kids)
        elif int(parent[b]) in bones:
            length[b] = length[int(parent[b])]
        elif own > MIN_BONE_LENGTH:
            length[b] = own
        else:
            length[b] = 1.0
    scale = {a: _max_scale(rest, a) for a in set(bones.values())}
    offset = {}
    for b, arma in bones.items():
        if scale[arma] > 0 and scale[arma] != 1.0:
            offset[b] = length[b] * (1.0 / scale[arma] - 1.0)
    child = {c: offset[b] for b in offset for c in g.nodes[b].children or [] if c not in bones}
    own_mesh = {b: offset[b] for b in offset if g.nodes[b].mesh is not None}
    return BoneParentOffsets(child=child, own=own_mesh)
