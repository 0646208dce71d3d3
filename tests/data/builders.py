"""Small test inputs built in code: tiny glTF files (pygltflib) and mesh sequences.

Every builder documents the exact geometry and animation so tests can state expected positions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pygltflib

from backend.data.transforms import trs_matrix
from shared.meshseq import MeshSequence

_COMPONENT = {
    np.dtype(np.float32): 5126, np.dtype(np.uint8): 5121, np.dtype(np.uint16): 5123,
    np.dtype(np.uint32): 5125, np.dtype(np.int8): 5120, np.dtype(np.int16): 5122,
}
_TYPES = {1: "SCALAR", 2: "VEC2", 3: "VEC3", 4: "VEC4", 16: "MAT4"}


class GltfBuilder:
    """Assemble a glTF 2.0 file with pygltflib: one buffer, views added 4-byte aligned."""

    def __init__(self) -> None:
        self.g = pygltflib.GLTF2(asset=pygltflib.Asset(version="2.0"))
        self.blob = bytearray()

    def view(self, data: bytes, stride: int | None = None) -> int:
        self.blob += b"\0" * (-len(self.blob) % 4)
        self.g.bufferViews.append(pygltflib.BufferView(
            buffer=0, byteOffset=len(self.blob), byteLength=len(data), byteStride=stride))
        self.blob += data
        return len(self.g.bufferViews) - 1

    def accessor(self, arr: np.ndarray, normalized: bool = False, stride: int | None = None,
                 minmax: bool = False, matrix: bool = False) -> int:
        """Add ``arr`` ``[count, n]`` (or ``[count, 4, 4]`` matrices, written column-major)."""
        arr = np.asarray(arr)
        if matrix:
            arr = np.ascontiguousarray(np.swapaxes(arr, 1, 2)).reshape(arr.shape[0], 16)
        if arr.ndim == 1:
            arr = arr[:, None]
        elem = arr.shape[1] * arr.itemsize
        if stride:  # interleave-style padding after each element
            rows = np.zeros((arr.shape[0], stride), dtype=np.uint8)
            rows[:, :elem] = np.frombuffer(arr.tobytes(), np.uint8).reshape(arr.shape[0], elem)
            data = rows.tobytes()
        else:
            data = arr.tobytes()
        view = self.view(data, stride)
        acc = pygltflib.Accessor(
            bufferView=view, componentType=_COMPONENT[arr.dtype], count=arr.shape[0],
            type="MAT4" if matrix else _TYPES[arr.shape[1]], normalized=normalized or None,
        )
        if minmax:
            acc.min = arr.min(axis=0).tolist()
            acc.max = arr.max(axis=0).tolist()
        self.g.accessors.append(acc)
        return len(self.g.accessors) - 1

    def sparse_accessor(self, count: int, indices: np.ndarray, values: np.ndarray) -> int:
        """A float VEC3 accessor of zeros with sparse substitutions (no base bufferView)."""
        iv = self.view(np.asarray(indices, dtype=np.uint16).tobytes())
        vv = self.view(np.asarray(values, dtype=np.float32).tobytes())
        self.g.accessors.append(pygltflib.Accessor(
            componentType=5126, count=count, type="VEC3",
            sparse=pygltflib.Sparse(
                count=len(indices),
                indices=pygltflib.AccessorSparseIndices(bufferView=iv, componentType=5123),
                values=pygltflib.AccessorSparseValues(bufferView=vv)),
        ))
        return len(self.g.accessors) - 1

    def animation(self, name: str, channels: list[tuple[int, str, np.ndarray, np.ndarray, str]]):
        """``channels``: (node, path, key times [K], values [K*m, C], interpolation)."""
        anim = pygltflib.Animation(name=name, samplers=[], channels=[])
        for node, path, keys, values, interp in channels:
            inp = self.accessor(np.asarray(keys, dtype=np.float32), minmax=True)
            out = self.accessor(np.asarray(values, dtype=np.float32))
            anim.samplers.append(pygltflib.AnimationSampler(input=inp, output=out,
                                                            interpolation=interp))
            anim.channels.append(pygltflib.AnimationChannel(
                sampler=len(anim.samplers) - 1,
                target=pygltflib.AnimationChannelTarget(node=node, path=path)))
        self.g.animations.append(anim)

    def save(self, path: Path) -> Path:
        self.g.buffers = [pygltflib.Buffer(byteLength=len(self.blob))]
        self.g.set_binary_blob(bytes(self.blob))
        if path.suffix == ".gltf":
            self.g.convert_buffers(pygltflib.BufferFormat.DATAURI)
            self.g.save_json(str(path))
        else:
            self.g.save_binary(str(path))
        return path


def quat_z(angle: float) -> list[float]:
    return [0.0, 0.0, float(np.sin(angle / 2)), float(np.cos(angle / 2))]


def quat_y(angle: float) -> list[float]:
    return [0.0, float(np.sin(angle / 2)), 0.0, float(np.cos(angle / 2))]


STRIP_Y = np.repeat([0.0, 0.5, 1.0, 1.5, 2.0], 2)
STRIP_X = np.tile([-0.1, 0.1], 5)


def skinned_strip(path: Path, split_sets: bool = False, byte_weights: bool = False) -> Path:
    """Two-bone strip along +Y: joint 0 at the origin, joint 1 at y = 1 (child), rotated by 90
    degrees about Z between t = 0 and t = 1 ("bend"). Vertices below y = 1 follow joint 0, above
    it joint 1, at y = 1 half each. The skinned node sits at x = 5 (which glTF ignores).

    ``split_sets``: joint 1's influence lives in JOINTS_1/WEIGHTS_1; ``byte_weights``: weights
    as normalised uint8; positions are always written with a padded byteStride of 16.
    """
    b = GltfBuilder()
    pos = np.stack([STRIP_X, STRIP_Y, np.zeros(10)], 1).astype(np.float32)
    faces = []
    for r in range(4):
        a = 2 * r
        faces += [a, a + 1, a + 3, a, a + 3, a + 2]
    w1 = np.clip(STRIP_Y - 0.5, 0, 1) * (STRIP_Y >= 1.0)
    w1[STRIP_Y == 1.0] = 0.5
    w0 = 1.0 - w1
    attrs = pygltflib.Attributes(POSITION=b.accessor(pos, stride=16, minmax=True))
    if split_sets:
        j0 = np.zeros((10, 4), np.uint8)
        wa = np.zeros((10, 4), np.float32)
        wa[:, 0] = w0
        j1 = np.zeros((10, 4), np.uint8)
        j1[:, 0] = 1
        wb = np.zeros((10, 4), np.float32)
        wb[:, 0] = w1
        attrs.JOINTS_0, attrs.WEIGHTS_0 = b.accessor(j0), b.accessor(wa)
        attrs.JOINTS_1, attrs.WEIGHTS_1 = b.accessor(j1), b.accessor(wb)
    else:
        joints = np.zeros((10, 4), np.uint16)
        joints[:, 1] = 1
        weights = np.zeros((10, 4), np.float32)
        weights[:, 0], weights[:, 1] = w0, w1
        if byte_weights:
            q = np.round(weights * 255).astype(np.uint8)
            attrs.WEIGHTS_0 = b.accessor(q, normalized=True)
        else:
            attrs.WEIGHTS_0 = b.accessor(weights)
        attrs.JOINTS_0 = b.accessor(joints)
    idx = b.accessor(np.asarray(faces, dtype=np.uint16))
    b.g.meshes.append(pygltflib.Mesh(name="strip", primitives=[
        pygltflib.Primitive(attributes=attrs, indices=idx)]))
    ibm = np.stack([np.eye(4), np.eye(4)]).astype(np.float32)
    ibm[1, 1, 3] = -1.0
    b.g.skins.append(pygltflib.Skin(joints=[0, 1], inverseBindMatrices=b.accessor(ibm,
                                                                                  matrix=True)))
    b.g.nodes = [
        pygltflib.Node(name="root", children=[1]),
        pygltflib.Node(name="child", translation=[0.0, 1.0, 0.0]),
        pygltflib.Node(name="strip", mesh=0, skin=0, translation=[5.0, 0.0, 0.0]),
    ]
    b.g.scenes = [pygltflib.Scene(nodes=[0, 2])]
    b.g.scene = 0
    b.animation("bend", [(1, "rotation", [0.0, 1.0], [quat_z(0.0), quat_z(np.pi / 2)],
                          "LINEAR")])
    return b.save(path)


def morph_quad(path: Path) -> Path:
    """Unit quad in the XY plane with UVs and two morph targets: target 0 (sparse) lifts vertex
    2 by +1 in Z, target 1 lifts vertex 3 by +2. Clips: "morph" (LINEAR, weights [0,0] ->
    [1,0.5] -> [0,1] at t = 0, 1, 2), "morph_step" (same keys, STEP), "morph_cubic"
    (CUBICSPLINE on t = 0, 1: weight 0 goes 0 -> 1 with out-tangent 2 at the first key)."""
    b = GltfBuilder()
    pos = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], np.float32)
    uv = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float32)
    t0 = b.sparse_accessor(4, [2], [[0.0, 0.0, 1.0]])
    d1 = np.zeros((4, 3), np.float32)
    d1[3, 2] = 2.0
    t1 = b.accessor(d1)
    prim = pygltflib.Primitive(
        attributes=pygltflib.Attributes(POSITION=b.accessor(pos, minmax=True),
                                        TEXCOORD_0=b.accessor(uv)),
        indices=b.accessor(np.array([0, 1, 2, 0, 2, 3], np.uint8)), material=0,
        targets=[{"POSITION": t0}, {"POSITION": t1}],
    )
    b.g.meshes.append(pygltflib.Mesh(name="quad", primitives=[prim], weights=[0.0, 0.5]))
    b.g.materials.append(pygltflib.Material(
        name="blue", pbrMetallicRoughness=pygltflib.PbrMetallicRoughness(
            baseColorFactor=[0.2, 0.4, 0.6, 1.0])))
    b.g.nodes = [pygltflib.Node(name="quad", mesh=0)]
    b.g.scenes = [pygltflib.Scene(nodes=[0])]
    keys = [0.0, 1.0, 2.0]
    vals = [[0.0], [0.0], [1.0], [0.5], [0.0], [1.0]]
    b.animation("morph", [(0, "weights", keys, vals, "LINEAR")])
    b.animation("morph_step", [(0, "weights", keys, vals, "STEP")])
    cubic = [[0.0], [0.0], [0.0], [0.0], [2.0], [0.0],   # key 0: in, value, out (2 targets)
             [0.0], [0.0], [1.0], [0.0], [0.0], [0.0]]   # key 1
    b.animation("morph_cubic", [(0, "weights", [0.0, 1.0], cubic, "CUBICSPLINE")])
    return b.save(path)


BOX = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)],
               np.float32)
BOX_FACES = np.array([
    [0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
    [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]], np.uint32)


def node_box(path: Path, animated: bool = True, mode: int | None = None) -> Path:
    """A box (COLOR_0, float RGB) on node "child" under node "parent" (scale 2), plus a static
    triangle (material colour) placed by a column-major ``matrix`` at y = 3.

    Clips: "move" (child translation 0 -> (1,0,0) over t = 0..1, LINEAR; rotation STEP from
    identity to 90 degrees about Y at t = 0.5) and "late" (translation keys at t = 1 and 2).
    ``mode`` overrides the box primitive's draw mode (0 = points).
    """
    b = GltfBuilder()
    colors = np.tile(np.array([[1.0, 0.5, 0.25]], np.float32), (8, 1))
    box = pygltflib.Primitive(
        attributes=pygltflib.Attributes(POSITION=b.accessor(BOX, minmax=True),
                                        COLOR_0=b.accessor(colors)),
        indices=b.accessor(BOX_FACES.reshape(-1)), mode=mode)
    tri = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float32)
    tri_prim = pygltflib.Primitive(
        attributes=pygltflib.Attributes(POSITION=b.accessor(tri, minmax=True)), material=0)
    b.g.meshes = [pygltflib.Mesh(name="box", primitives=[box]),
                  pygltflib.Mesh(name="tri", primitives=[tri_prim])]
    b.g.materials.append(pygltflib.Material(
        name="red", pbrMetallicRoughness=pygltflib.PbrMetallicRoughness(
            baseColorFactor=[0.9, 0.1, 0.1, 0.5])))
    b.g.nodes = [
        pygltflib.Node(name="parent", scale=[2.0, 2.0, 2.0], children=[1]),
        pygltflib.Node(name="child", mesh=0),
        pygltflib.Node(name="static", mesh=1,
                       matrix=[1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 3, 0, 1]),
    ]
    b.g.scenes = [pygltflib.Scene(nodes=[0, 2])]
    if animated:
        b.animation("move", [
            (1, "translation", [0.0, 1.0], [[0, 0, 0], [1, 0, 0]], "LINEAR"),
            (1, "rotation", [0.0, 0.5], [quat_y(0.0), quat_y(np.pi / 2)], "STEP"),
        ])
        b.animation("late", [(1, "translation", [1.0, 2.0], [[0, 0, 0], [0, 1, 0]], "LINEAR")])
    return b.save(path)


def box_sequence(frames: int = 5, fps: float = 10.0, uvs: bool = True,
                 colors: bool = True) -> MeshSequence:
    """A unit box that translates along X and squashes in Y over ``frames`` frames."""
    t = np.arange(frames) / fps
    verts = np.repeat(BOX[None].astype(np.float64), frames, axis=0)
    verts[:, :, 0] += t[:, None]
    verts[:, :, 1] *= (1 - 0.3 * np.sin(t))[:, None]
    uv = np.stack([BOX[:, 0] + 0.5, BOX[:, 2] + 0.5], 1) if uvs else None
    col = np.concatenate([np.linspace(0, 1, 24).reshape(8, 3), np.ones((8, 1))], 1)
    return MeshSequence(verts, BOX_FACES.astype(np.int32), t, uv, col if colors else None,
                        name="box")


def quat_x(angle: float) -> list[float]:
    return [float(np.sin(angle / 2)), 0.0, 0.0, float(np.cos(angle / 2))]


HORNED_ROWS = np.array([0.0, 0.5, 1.0, 1.4, 1.8])


def horned_creature(path: Path, armature_scale: float = 0.5,
                    jaw_bind: tuple[float, float, float] = (0.0, 0.6, 0.0)) -> Path:
    """A skinned neck-and-head column with rigid horns: a separate mesh node parented to a joint.

    Nodes: "Armature" (root; translation (0.3, 0, -0.2), 30 degrees about Y, uniform scale
    ``armature_scale``) with children "spine" (joint at the origin) and "body" (the skinned
    mesh); "spine" -> "head" (joint, translation (0, 1, 0)) -> "jaw" (joint, (0, 0.4, 0.3))
    and "ear" (joint, (0.33, 0.44, 0), length 0.55, no vertex weight); "horns" (a box, scaled
    (0.3, 0.5, 0.2), translation (0, 0.6, 0.1), 20 degrees about X) is a plain mesh child of
    "head"; "jaw" itself carries a mesh too ("teeth", a box of side 0.1). Skin: joints [spine,
    head, jaw, ear], inverse bind matrices = inverses of the bind world matrices, where the bind
    pose is the rest pose except that the jaw sits at ``jaw_bind`` under the head (a file whose
    default node pose is not its bind pose, which Blender's importer detects): Blender's bone for
    "head" is as long as its shortest child offset in the bind pose (0.55, the ear; 0.5, the
    jaw, in the node pose) and "jaw", which has no child joint, inherits that length rather
    than its own offset (0.6). The body:
    square rings of 4 vertices (half-width 0.2) at y = 0, 0.5, 1, 1.4, 1.8 (mesh space); rings
    below y = 1 follow spine, y = 1 half spine half head, 1.4 head, 1.8 half head half jaw.

    Clip "nod" (LINEAR, keys t = 0, 0.5, 1, 1.5): spine about Z (0, 0.3, -0.2, 0), head about
    X (0, 0.6, -0.4, 0.2), jaw about X (0, 0.3, 0, 0.3), Armature translation drifting +X,
    and the horns' own translation wiggling in Y (0.6, 0.7, 0.6, 0.65).
    """
    b = GltfBuilder()
    ring = np.array([[-0.2, -0.2], [0.2, -0.2], [0.2, 0.2], [-0.2, 0.2]])
    pos = np.array([[x, y, z] for y in HORNED_ROWS for x, z in ring], np.float32)
    faces = []
    for r in range(len(HORNED_ROWS) - 1):
        for k in range(4):
            a, c = 4 * r + k, 4 * r + (k + 1) % 4
            faces += [a, c, c + 4, a, c + 4, a + 4]
    joints = np.zeros((pos.shape[0], 4), np.uint8)
    joints[:, 1], joints[:, 2], joints[:, 3] = 1, 2, 3
    weights = np.zeros((pos.shape[0], 4), np.float32)
    row = np.repeat(np.arange(len(HORNED_ROWS)), 4)
    weights[:, 0] = np.choose(row, [1.0, 1.0, 0.5, 0.0, 0.0])
    weights[:, 1] = np.choose(row, [0.0, 0.0, 0.5, 1.0, 0.5])
    weights[:, 2] = np.choose(row, [0.0, 0.0, 0.0, 0.0, 0.5])
    body = pygltflib.Primitive(
        attributes=pygltflib.Attributes(POSITION=b.accessor(pos, minmax=True),
                                        JOINTS_0=b.accessor(joints),
                                        WEIGHTS_0=b.accessor(weights)),
        indices=b.accessor(np.asarray(faces, np.uint16)))
    horns = pygltflib.Primitive(
        attributes=pygltflib.Attributes(POSITION=b.accessor(BOX, minmax=True)),
        indices=b.accessor(BOX_FACES.reshape(-1)))
    teeth = pygltflib.Primitive(
        attributes=pygltflib.Attributes(POSITION=b.accessor(BOX * 0.1, minmax=True)),
        indices=b.accessor(BOX_FACES.reshape(-1)))
    b.g.meshes = [pygltflib.Mesh(name="body", primitives=[body]),
                  pygltflib.Mesh(name="horns", primitives=[horns]),
                  pygltflib.Mesh(name="teeth", primitives=[teeth])]
    s = float(armature_scale)
    b.g.nodes = [
        pygltflib.Node(name="Armature", translation=[0.3, 0.0, -0.2], rotation=quat_y(np.pi / 6),
                       scale=[s, s, s], children=[1, 5]),
        pygltflib.Node(name="spine", children=[2]),
        pygltflib.Node(name="head", translation=[0.0, 1.0, 0.0], children=[3, 4, 6]),
        pygltflib.Node(name="jaw", mesh=2, translation=[0.0, 0.4, 0.3]),
        pygltflib.Node(name="horns", mesh=1, translation=[0.0, 0.6, 0.1],
                       rotation=quat_x(np.pi / 9), scale=[0.3, 0.5, 0.2]),
        pygltflib.Node(name="body", mesh=0, skin=0),
        pygltflib.Node(name="ear", translation=[0.33, 0.44, 0.0]),
    ]
    # Bind world matrices of the joints (the Armature's TRS, then the joints' translations).
    arma = trs_matrix(np.array([0.3, 0.0, -0.2]), np.array(quat_y(np.pi / 6)), np.full(3, s))
    spine = arma
    head = spine @ trs_matrix(np.array([0.0, 1.0, 0.0]), np.array([0, 0, 0, 1.0]), np.ones(3))
    jaw = head @ trs_matrix(np.array(jaw_bind), np.array([0, 0, 0, 1.0]), np.ones(3))
    ear = head @ trs_matrix(np.array([0.33, 0.44, 0.0]), np.array([0, 0, 0, 1.0]), np.ones(3))
    ibm = np.linalg.inv(np.stack([spine, head, jaw, ear])).astype(np.float32)
    b.g.skins.append(pygltflib.Skin(name="rig", joints=[1, 2, 3, 6],
                                    inverseBindMatrices=b.accessor(ibm, matrix=True)))
    b.g.scenes = [pygltflib.Scene(nodes=[0])]
    b.g.scene = 0
    keys = [0.0, 0.5, 1.0, 1.5]
    b.animation("nod", [
        (1, "rotation", keys, [quat_z(a) for a in (0.0, 0.3, -0.2, 0.0)], "LINEAR"),
        (2, "rotation", keys, [quat_x(a) for a in (0.0, 0.6, -0.4, 0.2)], "LINEAR"),
        (3, "rotation", keys, [quat_x(a) for a in (0.0, 0.3, 0.0, 0.3)], "LINEAR"),
        (0, "translation", keys, [[0.3 + 0.2 * i, 0.0, -0.2] for i in range(4)], "LINEAR"),
        (4, "translation", keys, [[0.0, y, 0.1] for y in (0.6, 0.7, 0.6, 0.65)], "LINEAR"),
    ])
    return b.save(path)
