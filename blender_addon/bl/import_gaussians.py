"""Import a Gaussian sequence as one object: all frames' splats plus a Geometry Nodes player.

:class:`GaussianImport` takes frames in order (one at a time while streaming, or all from a
folder); after each one the object plays the frames received so far. Attributes are computed in
numpy (axis map, activations) and written in bulk.
"""

from __future__ import annotations

import bpy
import numpy as np

from ..core import import_plan as plan
from . import gn_gaussians, meshdata, timecurve

SH_C0 = 0.28209479177387814


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=np.float64)))


def splat_attributes(means: np.ndarray, quats: np.ndarray, log_scales: np.ndarray,
                     opacity_logits: np.ndarray, sh_dc: np.ndarray) -> dict[str, np.ndarray]:
    """Blender-space point attributes of one frame: position, g_rot, g_scale, g_color, g_alpha."""
    q = np.asarray(quats, dtype=np.float64)
    norm = np.linalg.norm(q, axis=1, keepdims=True)
    q = np.where(norm > 0, q / np.where(norm > 0, norm, 1.0), np.array([1.0, 0, 0, 0]))
    rgb = np.clip(0.5 + SH_C0 * np.asarray(sh_dc, dtype=np.float64), 0.0, 1.0)
    color = np.ones((len(rgb), 4), dtype=np.float32)
    color[:, :3] = rgb
    return {
        "position": plan.to_blender_points(means),
        "g_rot": plan.to_blender_quats(q),
        "g_scale": np.exp(np.asarray(log_scales, dtype=np.float64)).astype(np.float32),
        "g_color": color,
        "g_alpha": _sigmoid(opacity_logits).astype(np.float32).reshape(-1),
    }


class GaussianImport:
    """Build one object from a Gaussian sequence whose frames arrive in order.

    ``correspond``: the producer says splat ``k`` of every frame is the same Gaussian (then, with
    equal counts, the player interpolates between frames; otherwise it steps).
    """

    def __init__(self, meta: plan.ResultMeta, times: np.ndarray, *, correspond: bool = False,
                 start: float | None = None, scene: bpy.types.Scene | None = None,
                 collection: bpy.types.Collection | None = None, size: float = 1.0):
        self.meta = meta
        self.scene = scene or bpy.context.scene
        self.start = float(self.scene.frame_start if start is None else start)
        render = self.scene.render
        self.frames = plan.scene_frames(times, render.fps, render.fps_base, self.start)
        self.correspond = bool(correspond)
        self.collection = collection
        self.size = float(size)
        self.parts: list[dict[str, np.ndarray]] = []
        self.obj: bpy.types.Object | None = None

    @property
    def received(self) -> int:
        return len(self.parts)

    def add_frame(self, index: int, means: np.ndarray, quats: np.ndarray,
                  log_scales: np.ndarray, opacity_logits: np.ndarray, sh_dc: np.ndarray,
                  rebuild: bool = True, **_ignored) -> None:
        """Add frame ``index`` (Y-up arrays as in a 3DGS file); earlier indices are skipped.

        ``rebuild`` False defers rewriting the object (bulk imports rebuild once at the end).
        """
        if index < self.received:
            return
        if index > self.received:
            raise ValueError(f"Gaussian frame {index} arrived before frame {self.received}")
        attrs = splat_attributes(means, quats, log_scales, opacity_logits, sh_dc)
        if self.parts and self.correspond and len(self.parts[-1]["g_rot"]) == len(attrs["g_rot"]):
            # q and -q are one rotation: keep neighbours in one hemisphere so the mix is short
            flip = np.sum(self.parts[-1]["g_rot"] * attrs["g_rot"], axis=1) < 0
            attrs["g_rot"][flip] *= -1.0
        self.parts.append(attrs)
        if rebuild:
            self._rebuild()

    def add_gaussian_frame(self, index: int, frame, rebuild: bool = True) -> None:
        """Add a ``shared.gsply.GaussianFrame``."""
        self.add_frame(index, frame.means, frame.quats, frame.log_scales, frame.opacity_logits,
                       frame.sh_dc, rebuild=rebuild)

    def finish(self) -> bpy.types.Object:
        if self.obj is None or self.received < len(self.frames):
            raise ValueError(f"only {self.received} of {len(self.frames)} frames arrived")
        self.obj["anim4d_complete"] = True
        return self.obj

    # -- internals ----------------------------------------------------------------------------

    def _counts(self) -> list[int]:
        return [len(p["g_alpha"]) for p in self.parts]

    def _rebuild(self) -> None:
        counts = self._counts()
        joined = {k: np.concatenate([p[k] for p in self.parts]) for k in self.parts[0]}
        frame_ids = np.repeat(np.arange(len(counts), dtype=np.int32), counts)
        if self.obj is None:
            self._create(joined["position"])
            mesh = self.obj.data
        else:
            mesh = self.obj.data
            mesh.clear_geometry()
            mesh.vertices.add(len(frame_ids))
            mesh.vertices.foreach_set("co", joined["position"].ravel())
        meshdata.set_point_attribute(mesh, "frame", frame_ids, "INT")
        meshdata.set_point_attribute(mesh, "g_scale", joined["g_scale"], "FLOAT_VECTOR")
        meshdata.set_point_attribute(mesh, "g_rot", joined["g_rot"], "QUATERNION")
        meshdata.set_point_attribute(mesh, "g_color", joined["g_color"], "FLOAT_COLOR")
        meshdata.set_point_attribute(mesh, "g_alpha", joined["g_alpha"], "FLOAT")
        mesh.update()
        same = len(set(counts)) == 1
        self._set_inputs(frames=len(counts), per_frame=counts[0] if same else 0,
                         interpolate=self.correspond and same)
        n = self.received
        timecurve.write_time_curve(self.obj, self.frames[:n],
                                   plan.time_values(plan.TIME_GEOMETRY_NODES, n))
        self.obj.update_tag()

    def _create(self, positions: np.ndarray) -> None:
        name = plan.object_name(self.meta)
        mesh = meshdata.build_mesh(name, positions)
        obj = meshdata.link_object(name, mesh, self.collection)
        meshdata.store_meta(obj, self.meta, plan.TIME_GEOMETRY_NODES, self.frames, self.start)
        obj["anim4d_complete"] = False
        obj["anim4d_correspond"] = self.correspond
        material = gn_gaussians.build_material()
        tree = gn_gaussians.build_tree(material)
        mod = obj.modifiers.new(timecurve.GN_MODIFIER, "NODES")
        mod.node_group = tree
        obj.data.materials.append(material)
        self.obj = obj
        self._set_input("Size", self.size)

    def _set_input(self, name: str, value) -> None:
        mod = self.obj.modifiers[timecurve.GN_MODIFIER]
        mod[gn_gaussians.input_identifier(mod.node_group, name)] = value

    def _set_inputs(self, frames: int, per_frame: int, interpolate: bool) -> None:
        self._set_input("Frames", int(frames))
        self._set_input("Points per Frame", int(per_frame))
        self._set_input("Interpolate", bool(interpolate))


def import_gaussian_sequence(seq, meta: plan.ResultMeta, *, correspond: bool = False,
                             start: float | None = None, scene: bpy.types.Scene | None = None,
                             collection: bpy.types.Collection | None = None
                             ) -> bpy.types.Object:
    """Import a whole ``shared.gaussians.GaussianSequence``."""
    job = GaussianImport(meta, seq.times, correspond=correspond, start=start, scene=scene,
                         collection=collection)
    last = len(seq.frames) - 1
    for i, frame in enumerate(seq.frames):
        job.add_gaussian_frame(i, frame, rebuild=i == last)
    return job.finish()
