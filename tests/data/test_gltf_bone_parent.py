"""A rigid mesh parented to a joint (horns on a head bone) lands where Blender's glTF import
puts it, on every frame of the clip.

The creature (:func:`tests.data.builders.horned_creature`) has a scaled armature node, a head
bone of non-zero length, horns as a plain mesh child of the head joint, teeth as a mesh on the
jaw joint itself, and a bind pose that differs from the node pose. Why Blender differs from the
plain node hierarchy there is explained in :mod:`backend.data.gltf_bone_parent`. Comparison: per
object (Blender names its objects after our nodes' meshes), positions mapped from glTF's Y-up to
Blender's Z-up as ``(x, -z, y)``, as point sets (nearest neighbour both ways: Blender may reorder
vertices), worst vertex over every frame within 1e-4 of the frame's bounding-box diagonal
(measured: about 2e-7, float32 round-off).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pygltflib
import pytest
from scipy.spatial import cKDTree

from backend.data.gltf_reader import GltfAnimation
from shared.errors import FormatError

from .builders import horned_creature

PROBE = Path(__file__).with_name("blender_probe.py")
PROBE_TIMEOUT = 240
TOLERANCE = 1e-4
FPS = 24.0  # Blender's default scene rate: every baked frame is a whole Blender frame


def parts(anim: GltfAnimation) -> dict[str, slice]:
    """Vertex range of each mesh node's part in the merged mesh, by mesh name."""
    g = anim.doc.gltf
    return {g.meshes[p.mesh].name: slice(int(a), int(b))
            for p, a, b in zip(anim.prims, anim.offsets[:-1], anim.offsets[1:], strict=True)}


def deviation(ours: np.ndarray, theirs: np.ndarray) -> float:
    """Largest nearest-neighbour distance between two point sets ``[V, 3]``, both ways."""
    return max(cKDTree(theirs).query(ours)[0].max(), cKDTree(ours).query(theirs)[0].max())


def worst_by_part(anim: GltfAnimation, frames: np.ndarray, blender) -> dict[str, float]:
    """Worst deviation of each part from Blender over all frames, relative to the diagonal."""
    worst = dict.fromkeys(parts(anim), 0.0)
    for ti in range(frames.shape[0]):
        p = frames[ti]
        diag = float(np.linalg.norm(p.max(0) - p.min(0)))
        z_up = np.stack([p[:, 0], -p[:, 2], p[:, 1]], axis=1)
        for name, sl in parts(anim).items():
            worst[name] = max(worst[name], deviation(z_up[sl], blender[f"0_{ti}|{name}"]) / diag)
    return worst


@pytest.mark.blender
@pytest.mark.parametrize("armature_scale", [0.5, 2.0])
def test_joint_parented_mesh_matches_blender_importer(tmp_path, armature_scale):
    pytest.importorskip("bpy", reason="needs the bpy module (pip install bpy==5.0.1)")
    src = horned_creature(tmp_path / "horned.glb", armature_scale=armature_scale)
    seq = GltfAnimation(src).sequence("nod", fps=FPS)
    assert seq.vertices.shape[0] == 37  # 1.5 s at 24 fps: every frame, both ends included
    (tmp_path / "requests.json").write_text(json.dumps([{"clip": "nod",
                                                         "times": seq.times.tolist()}]))
    out = tmp_path / "blender.npz"
    proc = subprocess.run(
        [sys.executable, str(PROBE), str(src), str(out), str(tmp_path / "requests.json")],
        capture_output=True, text=True, timeout=PROBE_TIMEOUT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    blender = np.load(out)

    worst = worst_by_part(GltfAnimation(src), seq.vertices.astype(np.float64), blender)
    print(f"armature scale {armature_scale}: worst deviation from Blender by part "
          + ", ".join(f"{k} {v:.1e}" for k, v in worst.items()))
    assert set(worst) == {"horns", "teeth", "body"}
    for name, w in worst.items():
        assert w < TOLERANCE, f"{name}: {w:.2e} of the bbox diagonal from Blender's import"

    # The case really exercises the difference: the plain node hierarchy is far from Blender's.
    spec = GltfAnimation(src, bone_parenting="gltf")
    plain = worst_by_part(spec, spec.sample(spec.clip("nod"), seq.times), blender)
    print("plain node hierarchy: " + ", ".join(f"{k} {v:.1e}" for k, v in plain.items()))
    assert plain["horns"] > 0.05 and plain["teeth"] > 0.05, plain
    assert plain["body"] < TOLERANCE, plain


@pytest.mark.parametrize(("armature_scale", "offset"), [(0.5, 0.55), (2.0, -0.275), (1.0, None)])
def test_offsets_follow_the_importers_bone_length(tmp_path, armature_scale, offset):
    """Without Blender: the head bone is 0.55 long (its shortest child in the bind pose, the
    ear), the jaw inherits it; the offset is ``0.55 * (1 / scale - 1)`` along +Y, for the horns
    (node 4, a child of the head) and for the teeth on the jaw (node 3) itself; none at scale 1;
    none in ``"gltf"`` mode."""
    src = horned_creature(tmp_path / "horned.glb", armature_scale=armature_scale)
    got = GltfAnimation(src).bone_offsets
    if offset is None:
        assert got.child == {} and got.own == {}
    else:
        assert got.child.keys() == {4} and got.own.keys() == {3}
        assert got.child[4] == pytest.approx(offset, abs=1e-6)
        assert got.own[3] == pytest.approx(offset, abs=1e-6)
    plain = GltfAnimation(src, bone_parenting="gltf").bone_offsets
    assert plain.child == {} and plain.own == {}


def test_unknown_bone_parenting_is_refused(tmp_path):
    with pytest.raises(ValueError, match="bone_parenting 'blend'"):
        GltfAnimation(horned_creature(tmp_path / "h.glb"), bone_parenting="blend")


def test_unused_skin_with_a_missing_joint_is_a_clear_error(tmp_path):
    src = horned_creature(tmp_path / "h.glb")
    g = pygltflib.GLTF2().load(str(src))
    g.skins.append(pygltflib.Skin(name="broken", joints=[1, 99]))
    g.save_binary(str(tmp_path / "broken.glb"))
    with pytest.raises(FormatError, match="skin 1 names node 99 as a joint"):
        GltfAnimation(tmp_path / "broken.glb")
