"""Bake an animated glTF/GLB clip into a :class:`shared.meshseq.MeshSequence`.

What is evaluated, per the glTF 2.0 specification:

- every mesh instanced by a node of the default scene (``scene``, else scene 0, else all root
  nodes); all their triangle primitives are merged into one mesh (faces offset, primitive order
  kept; points and lines are skipped; strips and fans become triangles);
- morph targets (``POSITION`` deltas) weighted by the node's animated ``weights`` (else the node's
  or mesh's default weights), applied before skinning;
- skinned primitives: linear blend skinning with joint world matrices times inverse bind
  matrices, every ``JOINTS_n``/``WEIGHTS_n`` set, weights normalised per vertex (a vertex with
  no weight follows its first joint, as in Blender); the skinned node's own transform is ignored;
- other primitives follow their node's animated world transform (plain node animation), except
  that a rigid mesh parented to a joint is placed where Blender's default glTF import puts it
  (``bone_parenting="blender"``, the default; see :mod:`backend.data.gltf_bone_parent` for why
  that differs from the node hierarchy when the armature node is scaled); ``"gltf"`` follows
  the node hierarchy exactly.

Attributes and conventions:

- coordinates stay glTF's: right-handed, Y-up, source units;
- ``uvs`` from ``TEXCOORD_0`` with V flipped to a bottom-left origin (``v' = 1 - v``), as Blender
  and OBJ use; present when any primitive has them (zeros for the others);
- ``colors``: linear RGBA from ``COLOR_0`` when a primitive has it, else that primitive's
  material ``baseColorFactor`` (white without a material); textures are not sampled;
- times: see :mod:`backend.data.gltf_anim` (uniform grid from 0 at the clip's first key).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from shared.errors import FormatError
from shared.meshseq import MeshSequence

from .gltf_anim import (
    ClipInfo,
    frame_times,
    list_clips,
    parents_of,
    sample_tracks,
    world_matrices,
)
from .gltf_bone_parent import BoneParentOffsets, blender_bone_offsets
from .gltf_buffers import GltfDocument, load_document
from .skinning import lbs
from .transforms import QuatInterp, transform_points

Progress = Callable[[float], None]
BoneParenting = Literal["blender", "gltf"]


@dataclass
class Primitive:
    """One triangle primitive of one mesh instance (arrays in the mesh's local space).

    positions ``[V, 3]``, faces ``[F, 3]``, targets ``[M, V, 3]`` or None, default_weights
    ``[M]``, joints/weights ``[V, K]`` or None, uvs ``[V, 2]`` or None, colors ``[V, 4]``.
    """

    node: int
    mesh: int
    index: int
    positions: np.ndarray
    faces: np.ndarray
    targets: np.ndarray | None
    default_weights: np.ndarray
    skin: int | None
    joints: np.ndarray | None
    weights: np.ndarray | None
    uvs: np.ndarray | None
    colors: np.ndarray


def _triangles(doc: GltfDocument, where: str, mode: int, idx: np.ndarray) -> np.ndarray | None:
    """Triangles ``[F, 3]`` from an index list for draw ``mode``; None for points/lines."""
    if mode == 4:
        n = idx.shape[0] // 3 * 3
        return idx[:n].reshape(-1, 3)
    if mode in (5, 6):
        if idx.shape[0] < 3:
            return np.zeros((0, 3), dtype=np.int64)
        i = np.arange(idx.shape[0] - 2)
        if mode == 5:  # strip: alternate winding
            odd = i % 2
            tri = np.stack([idx[i], idx[i + 1 + odd], idx[i + 2 - odd]], axis=1)
        else:  # fan
            tri = np.stack([idx[i + 1], idx[i + 2], np.full_like(i, idx[0])], axis=1)
        keep = (tri[:, 0] != tri[:, 1]) & (tri[:, 1] != tri[:, 2]) & (tri[:, 0] != tri[:, 2])
        return tri[keep]
    if mode in (0, 1, 2, 3):
        return None
    raise doc.fail(f"{where}: unknown primitive mode {mode}")


def _load_primitive(doc: GltfDocument, node: int, mesh: int, pi: int) -> Primitive | None:
    g = doc.gltf
    prim = g.meshes[mesh].primitives[pi]
    where = f"mesh {mesh} ({g.meshes[mesh].name}) primitive {pi}"
    attrs = prim.attributes
    if getattr(attrs, "POSITION", None) is None:
        raise doc.fail(f"{where} has no POSITION attribute")
    pos = doc.accessor(attrs.POSITION).astype(np.float64)
    v = pos.shape[0]
    if prim.indices is not None:
        idx = doc.accessor(prim.indices).reshape(-1).astype(np.int64)
    else:
        idx = np.arange(v, dtype=np.int64)
    mode = 4 if prim.mode is None else prim.mode
    faces = _triangles(doc, where, mode, idx)
    if faces is None:
        return None
    if faces.size and (faces.min() < 0 or faces.max() >= v):
        raise doc.fail(f"{where}: index {int(faces.max())} out of range for {v} vertices")

    targets = None
    if prim.targets:
        deltas = []
        for ti, tgt in enumerate(prim.targets):
            acc = tgt.get("POSITION") if isinstance(tgt, dict) else getattr(tgt, "POSITION", None)
            d = np.zeros((v, 3)) if acc is None else doc.accessor(acc).astype(np.float64)
            if d.shape != (v, 3):
                raise doc.fail(f"{where}: morph target {ti} has {d.shape[0]} positions, not {v}")
            deltas.append(d)
        targets = np.stack(deltas)
    m = 0 if targets is None else targets.shape[0]
    dw = doc.node_weights(node) or g.meshes[mesh].weights or [0.0] * m
    default_weights = np.zeros(m)
    default_weights[: min(m, len(dw))] = np.asarray(dw[:m], dtype=np.float64)

    skin = doc.gltf.nodes[node].skin
    joints = weights = None
    if skin is not None:
        js, ws, n = [], [], 0
        while getattr(attrs, f"JOINTS_{n}", None) is not None:
            wacc = getattr(attrs, f"WEIGHTS_{n}", None)
            if wacc is None:
                raise doc.fail(f"{where}: JOINTS_{n} without WEIGHTS_{n}")
            js.append(doc.accessor(getattr(attrs, f"JOINTS_{n}")).astype(np.int64))
            ws.append(doc.accessor(wacc).astype(np.float64))
            n += 1
        if not js:
            raise doc.fail(f"{where}: node {node} has a skin but the primitive has no JOINTS_0")
        joints, weights = np.concatenate(js, axis=1), np.concatenate(ws, axis=1)
        if joints.shape != weights.shape or joints.shape[0] != v:
            raise doc.fail(f"{where}: JOINTS/WEIGHTS shapes {joints.shape} {weights.shape} differ")
        skin_joints = g.skins[skin].joints or []
        if joints.size and joints.max() >= len(skin_joints):
            raise doc.fail(f"{where}: joint index {int(joints.max())} out of range for skin "
                           f"{skin} with {len(skin_joints)} joints")
        if any(not 0 <= j < len(g.nodes) for j in skin_joints):
            raise doc.fail(f"skin {skin} lists a joint that is not a node")
        # Invalid but common: vertices with no weight. Bind them fully to their first joint slot,
        # as Blender's importer does, rather than leaving them behind in mesh space.
        loose = weights.sum(axis=1) <= 0
        weights[loose, 0] = 1.0

    uvs = None
    if getattr(attrs, "TEXCOORD_0", None) is not None:
        uv = doc.accessor(attrs.TEXCOORD_0).astype(np.float64)[:, :2]
        uvs = np.stack([uv[:, 0], 1.0 - uv[:, 1]], axis=1)

    if getattr(attrs, "COLOR_0", None) is not None:
        c = doc.accessor(attrs.COLOR_0).astype(np.float64)
        colors = np.concatenate([c[:, :3], c[:, 3:4] if c.shape[1] == 4 else np.ones((v, 1))], 1)
    else:
        factor = [1.0, 1.0, 1.0, 1.0]
        if prim.material is not None and 0 <= prim.material < len(g.materials or []):
            pbr = g.materials[prim.material].pbrMetallicRoughness
            if pbr is not None and pbr.baseColorFactor is not None:
                factor = list(pbr.baseColorFactor)
        colors = np.tile(np.asarray(factor, dtype=np.float64), (v, 1))
    return Primitive(node, mesh, pi, pos, faces, targets, default_weights, skin, joints, weights,
                     uvs, colors)


def _scene_nodes(doc: GltfDocument, parent: np.ndarray) -> list[int]:
    """Nodes of the default scene in depth-first order."""
    g = doc.gltf
    if g.scenes:
        si = g.scene if g.scene is not None and 0 <= g.scene < len(g.scenes) else 0
        roots = list(g.scenes[si].nodes or [])
    else:
        roots = [i for i in range(len(g.nodes or [])) if parent[i] == -1]
    out, stack = [], roots[::-1]
    while stack:
        i = stack.pop()
        out.append(i)
        stack.extend((g.nodes[i].children or [])[::-1])
    return out


class GltfAnimation:
    """A loaded glTF ready to sample.

    ``clips``: its animations; ``faces`` ``[F, 3]``, ``uvs`` ``[V, 2]`` or None and ``colors``
    ``[V, 4]`` of the merged mesh; ``offsets`` ``[P + 1]``: first vertex of each primitive.
    ``bone_parenting``: ``"blender"`` places joint-parented rigid meshes as Blender's default
    import does, ``"gltf"`` as the node hierarchy does (they differ only under a scaled armature
    node; see :mod:`backend.data.gltf_bone_parent`).
    """

    def __init__(self, path: str | Path, bone_parenting: BoneParenting = "blender"):
        if bone_parenting not in ("blender", "gltf"):
            raise ValueError(f"bone_parenting {bone_parenting!r}: expected 'blender' or 'gltf'")
        self.path = Path(path)
        self.doc = load_document(self.path)
        g = self.doc.gltf
        self.parent = parents_of(self.doc)
        if not g.meshes:
            raise self.doc.fail("the glTF contains no mesh")
        nodes = [i for i in _scene_nodes(self.doc, self.parent) if g.nodes[i].mesh is not None]
        if not nodes:
            raise self.doc.fail("the glTF's scene instances no mesh")
        self.prims: list[Primitive] = []
        for n in nodes:
            mesh = g.nodes[n].mesh
            if not 0 <= mesh < len(g.meshes):
                raise self.doc.fail(f"node {n} refers to missing mesh {mesh}")
            skin = g.nodes[n].skin
            if skin is not None and not 0 <= skin < len(g.skins or []):
                raise self.doc.fail(f"node {n} refers to missing skin {skin}")
            for pi in range(len(g.meshes[mesh].primitives or [])):
                p = _load_primitive(self.doc, n, mesh, pi)
                if p is not None and p.faces.shape[0]:
                    self.prims.append(p)
        if not self.prims:
            raise self.doc.fail("the mesh has no faces (no triangle primitives)")
        self.clips: list[ClipInfo] = list_clips(self.doc)
        if not self.clips:
            raise self.doc.fail(
                "nothing to bake: the glTF has no animation (no skin, morph-target or node "
                "animation clip)"
            )
        self.offsets = np.cumsum([0] + [p.positions.shape[0] for p in self.prims])
        self.faces = np.concatenate(
            [p.faces + o for p, o in zip(self.prims, self.offsets[:-1], strict=True)]
        )
        self.colors = np.concatenate([p.colors for p in self.prims]).astype(np.float32)
        self.uvs = None
        if any(p.uvs is not None for p in self.prims):
            self.uvs = np.concatenate(
                [p.uvs if p.uvs is not None else np.zeros((p.positions.shape[0], 2))
                 for p in self.prims]
            ).astype(np.float32)
        self._ibm: dict[int, np.ndarray] = {}
        self.bone_offsets = (
            blender_bone_offsets(self.doc, self.parent, self.inverse_bind)
            if bone_parenting == "blender" else BoneParentOffsets()
        )

    @property
    def vertex_count(self) -> int:
        return int(self.offsets[-1])

    def clip(self, name: str | None = None) -> ClipInfo:
        """The clip called ``name`` (None or "" = the first); FormatError lists the clips."""
        if not name:
            return self.clips[0]
        for c in self.clips:
            if c.name == name:
                return c
        names = ", ".join(repr(c.name) for c in self.clips)
        raise FormatError(f"{self.path}: no clip named {name!r}; clips: {names}")

    def inverse_bind(self, skin: int) -> np.ndarray:
        """Inverse bind matrices ``[J, 4, 4]`` of ``skin`` (identity when absent)."""
        if skin not in self._ibm:
            s = self.doc.gltf.skins[skin]
            j = len(s.joints or [])
            if s.inverseBindMatrices is None:
                ibm = np.tile(np.eye(4), (j, 1, 1))
            else:
                ibm = self.doc.accessor(s.inverseBindMatrices).astype(np.float64)
                if ibm.shape != (j, 4, 4):
                    raise self.doc.fail(
                        f"skin {skin}: inverseBindMatrices has shape {list(ibm.shape)}, "
                        f"expected [{j}, 4, 4]"
                    )
            self._ibm[skin] = ibm
        return self._ibm[skin]

    def sample(
        self, clip: ClipInfo, times: np.ndarray, quat: QuatInterp = "nlerp",
        progress: Progress | None = None, chunk: int = 32,
    ) -> np.ndarray:
        """World positions float32 ``[T, V, 3]`` at ``times`` ``[T]`` (seconds from clip start)."""
        times = np.asarray(times, dtype=np.float64)
        out = np.empty((times.shape[0], self.vertex_count, 3), dtype=np.float32)
        for a in range(0, times.shape[0], chunk):
            b = min(times.shape[0], a + chunk)
            out[a:b] = self._sample_chunk(clip, times[a:b], quat)
            if progress is not None:
                progress(b / times.shape[0])
        return out

    def _sample_chunk(self, clip: ClipInfo, times: np.ndarray, quat: QuatInterp) -> np.ndarray:
        tracks = sample_tracks(self.doc, clip, times, quat)
        local = tracks.local
        for node, d in self.bone_offsets.child.items():
            local[:, node, 1, 3] += d  # translate(0, d, 0) @ local: in the parent joint's frame
        world = world_matrices(local, self.parent)
        parts = []
        for p in self.prims:
            pos = p.positions
            if p.targets is not None:
                w = tracks.weights.get(p.node)
                if w is None:
                    w = np.broadcast_to(p.default_weights, (times.shape[0], p.targets.shape[0]))
                m = p.targets.shape[0]
                if w.shape[1] < m:
                    w = np.pad(w, ((0, 0), (0, m - w.shape[1])))
                pos = pos[None] + np.einsum("tm,mvc->tvc", w[:, :m], p.targets)
            if p.skin is None:
                m = world[:, p.node]
                if p.node in self.bone_offsets.own:  # world @ translate(0, d, 0)
                    m = m.copy()
                    m[:, :3, 3] += self.bone_offsets.own[p.node] * m[:, :3, 1]
                parts.append(transform_points(m, np.broadcast_to(
                    pos, (times.shape[0],) + pos.shape[-2:])))
                continue
            joints = self.doc.gltf.skins[p.skin].joints
            mats = world[:, joints] @ self.inverse_bind(p.skin)[None]
            parts.append(lbs(pos, p.joints, p.weights, mats))
        return np.concatenate(parts, axis=1)

    def animates_mesh(self, clip: ClipInfo) -> bool:
        """Whether ``clip`` has a channel that can move some merged vertex."""
        anim = self.doc.gltf.animations[clip.index]
        trs_nodes = {c.target.node for c in anim.channels or [] if c.target.path != "weights"}
        weight_nodes = {c.target.node for c in anim.channels or [] if c.target.path == "weights"}

        def chain_moves(n: int) -> bool:
            while n != -1:
                if n in trs_nodes:
                    return True
                n = int(self.parent[n])
            return False

        for p in self.prims:
            if p.targets is not None and p.node in weight_nodes:
                return True
            if p.skin is None and chain_moves(p.node):
                return True
            if p.skin is not None and any(
                chain_moves(j) for j in self.doc.gltf.skins[p.skin].joints
            ):
                return True
        return False

    def sequence(
        self, clip: str | None = None, fps: float = 30.0, quat: QuatInterp = "nlerp",
        progress: Progress | None = None,
    ) -> MeshSequence:
        """Bake ``clip`` on the uniform grid of :func:`frame_times` (times from 0)."""
        info = self.clip(clip)
        if not self.animates_mesh(info):
            raise FormatError(
                f"{self.path}: clip {info.name!r} animates no mesh (no skin joint, morph weight "
                "or mesh node is keyed)"
            )
        times = frame_times(info.duration, fps)
        verts = self.sample(info, times, quat, progress)
        return MeshSequence(
            vertices=verts, faces=self.faces, times=times, uvs=self.uvs, colors=self.colors,
            name=f"{self.path.stem}|{info.name}",
            meta={"source": self.path.name, "clip": info.name, "clip_start": info.start,
                  "duration": info.duration, "clips": [c.name for c in self.clips],
                  "uv_origin": "bottom-left"},
        )


def read_gltf(
    path: str | Path, clip: str | None = None, fps: float = 30.0, quat: QuatInterp = "nlerp",
    progress: Progress | None = None, bone_parenting: BoneParenting = "blender",
) -> MeshSequence:
    """Bake ``clip`` (default: the first animation) of a ``.glb``/``.gltf`` at ``fps``."""
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    return GltfAnimation(path, bone_parenting).sequence(clip, fps, quat, progress)


def list_gltf_clips(path: str | Path) -> list[tuple[str, float]]:
    """``[(name, duration_seconds), ...]`` of the animations of a glTF, in file order."""
    return [(c.name, c.duration) for c in list_clips(load_document(path))]
