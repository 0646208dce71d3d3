"""Key acceptance test: baked Horse.glb clips match Blender's own glTF importer.

For every clip, at its first, middle and last keys and halfway between the middle key and the
next one, our positions (Y-up) mapped to Blender's Z-up as ``(x, -z, y)`` must match the mesh
that ``bpy.ops.import_scene.gltf`` evaluates (depsgraph, world coordinates), as point sets
(nearest neighbour both ways: Blender may reorder vertices), within 1e-4 of the bbox diagonal.

How Blender is driven: the importer puts a key at ``t`` seconds on frame ``t * scene fps`` (24
here), imports each clip as an action (the first assigned, the others stashed on muted NLA
tracks); the probe assigns each action in turn and calls ``frame_set(frame, subframe=...)``.

One semantic difference is bridged on the input side: a glTF clip leaves the channels it does
not key at the node's rest TRS, whereas Blender keeps whatever pose the bones last had, and the
importer's own rest pose (with its default ``guess_original_bind_pose``) is not the glTF rest
for some bones of these files. The file handed to Blender therefore gets one constant key per
channel a clip leaves out (its rest TRS); our reader is checked to give the same result on both
files, so the comparison still tests the original file.
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

pytestmark = pytest.mark.blender
PROBE = Path(__file__).with_name("blender_probe.py")
TOLERANCE = 1e-4


def with_rest_keys(src: Path, dst: Path) -> Path:
    """Copy ``src`` adding, per animation, a one-key channel holding the rest TRS for every
    (joint or animated node, path) the animation does not key."""
    g = pygltflib.GLTF2().load(str(src))
    blob = bytearray(g.binary_blob())
    nodes = {j for s in g.skins or [] for j in s.joints}
    nodes |= {c.target.node for a in g.animations for c in a.channels}
    rest = {"translation": [0.0, 0.0, 0.0], "rotation": [0.0, 0.0, 0.0, 1.0],
            "scale": [1.0, 1.0, 1.0]}
    types = {"translation": "VEC3", "rotation": "VEC4", "scale": "VEC3"}

    cache: dict[tuple, int] = {}

    def add(values: list[float], type_: str) -> int:
        """An accessor holding ``values`` (shared by every channel that needs the same one)."""
        key = (type_, *values)
        if key in cache:
            return cache[key]
        blob.extend(b"\0" * (-len(blob) % 4))
        data = np.asarray(values, dtype="<f4").tobytes()
        g.bufferViews.append(pygltflib.BufferView(buffer=0, byteOffset=len(blob),
                                                  byteLength=len(data)))
        blob.extend(data)
        acc = pygltflib.Accessor(bufferView=len(g.bufferViews) - 1, componentType=5126,
                                 count=1, type=type_)
        if type_ == "SCALAR":
            acc.min, acc.max = list(values), list(values)
        g.accessors.append(acc)
        cache[key] = len(g.accessors) - 1
        return cache[key]

    for anim in g.animations:
        keyed = {(c.target.node, c.target.path) for c in anim.channels}
        start = min(g.accessors[s.input].min[0] for s in anim.samplers)
        for node in sorted(nodes):
            if g.nodes[node].matrix is not None:
                continue
            for path in ("translation", "rotation", "scale"):
                if (node, path) in keyed:
                    continue
                value = getattr(g.nodes[node], path) or rest[path]
                anim.samplers.append(pygltflib.AnimationSampler(
                    input=add([start], "SCALAR"), output=add(value, types[path]),
                    interpolation="LINEAR"))
                anim.channels.append(pygltflib.AnimationChannel(
                    sampler=len(anim.samplers) - 1,
                    target=pygltflib.AnimationChannelTarget(node=node, path=path)))
    g.buffers[0].byteLength = len(blob)
    g.set_binary_blob(bytes(blob))
    g.save_binary(str(dst))
    return dst


def key_times(anim: GltfAnimation, clip) -> list[float]:
    """First, middle and last key of the clip, and halfway after the middle key (seconds)."""
    doc = anim.doc
    keys = np.unique(np.concatenate([
        doc.accessor(doc.gltf.animations[clip.index].samplers[c.sampler].input).reshape(-1)
        for c in doc.gltf.animations[clip.index].channels]))
    mid = len(keys) // 2
    return [float(keys[0]), float(keys[mid]), float(keys[-1]),
            float(0.5 * (keys[mid] + keys[min(mid + 1, len(keys) - 1)]))]


def test_horse_matches_blender_importer(horse_glb, tmp_path):
    pytest.importorskip("bpy", reason="needs the bpy module (pip install bpy==5.0.1)")
    ours = GltfAnimation(horse_glb)
    requests = [{"clip": c.name, "times": key_times(ours, c)} for c in ours.clips]
    for_blender = with_rest_keys(horse_glb, tmp_path / "horse_rest_keys.glb")
    (tmp_path / "requests.json").write_text(json.dumps(requests))
    out = tmp_path / "blender.npz"
    proc = subprocess.run(
        [sys.executable, str(PROBE), str(for_blender), str(out), str(tmp_path / "requests.json")],
        capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    blender = np.load(out)
    augmented = GltfAnimation(for_blender)
    worst = 0.0
    for ri, (clip, req) in enumerate(zip(ours.clips, requests, strict=True)):
        times = np.asarray(req["times"]) - clip.start
        mine = ours.sample(clip, times).astype(np.float64)
        np.testing.assert_allclose(augmented.sample(augmented.clip(clip.name), times), mine,
                                   atol=1e-6, err_msg="rest keys changed our result")
        for ti in range(len(times)):
            p = mine[ti]
            diag = float(np.linalg.norm(p.max(0) - p.min(0)))
            ours_z_up = np.stack([p[:, 0], -p[:, 2], p[:, 1]], axis=1)
            theirs = blender[f"{ri}_{ti}"]
            d1 = cKDTree(theirs).query(ours_z_up)[0].max() / diag
            d2 = cKDTree(ours_z_up).query(theirs)[0].max() / diag
            worst = max(worst, d1, d2)
            assert max(d1, d2) < TOLERANCE, (
                f"{clip.name} at t={req['times'][ti]:.4f}s: {max(d1, d2):.2e} of the diagonal"
            )
    print(f"worst deviation from Blender: {worst:.2e} of the bbox diagonal")
    assert worst < TOLERANCE
