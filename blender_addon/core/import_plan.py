"""Import plans: everything about an import that can be computed without Blender.

A result is Y-up and timed in seconds (``shared/PROTOCOL.md``); Blender is Z-up and timed in scene
frames. This module is the one place where the two meet:

- :func:`to_blender_points` / :func:`to_blender_quats`: the axis map (x, y, z) -> (x, -z, y), the
  one glTF importers use (a +90 degree rotation about X);
- :func:`scene_frames`: a sample at ``t`` seconds lands on scene frame ``start + t * fps /
  fps_base``, unrounded;
- :func:`choose_storage`: shape keys or a PC2 point cache, by the shape-key byte size;
- :func:`time_values`: the value the time curve takes at each sample, for each way of storing the
  animation (``eval_time`` of absolute shape keys, Mesh Cache frame, Geometry Nodes Time input).

No ``bpy`` here: the ``bl`` package turns a plan into Blender data.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

#: Bytes of shape-key data above which the automatic choice switches to a PC2 cache (~200 MB).
SHAPE_KEY_LIMIT_BYTES = 200_000_000
#: Blender places absolute shape key ``i`` at ``eval_time`` = 10 * i.
SHAPE_KEY_STEP = 10.0
STORAGE_CHOICES = ("AUTO", "SHAPE_KEYS", "PC2")

#: The time curve's kinds, as stored on an imported object (``anim4d_time_kind``).
TIME_SHAPE_KEYS = "shape_keys"
TIME_MESH_CACHE = "mesh_cache"
TIME_GEOMETRY_NODES = "geometry_nodes"

# +90 degrees about X as a quaternion (w, x, y, z): Y-up -> Z-up.
_Q_AXIS = np.array([math.sqrt(0.5), math.sqrt(0.5), 0.0, 0.0])


def to_blender_points(points: np.ndarray) -> np.ndarray:
    """Y-up ``[..., 3]`` positions (or directions) -> Blender's Z-up, as float32 ``(x, -z, y)``."""
    p = np.asarray(points)
    out = np.empty(p.shape, dtype=np.float32)
    out[..., 0] = p[..., 0]
    out[..., 1] = -p[..., 2]
    out[..., 2] = p[..., 1]
    return out


def to_blender_quats(quats: np.ndarray) -> np.ndarray:
    """Y-up rotations ``[N, 4]`` (w x y z) -> Z-up: ``q_axis * q`` (local axes, so scales, stay).

    A Gaussian's covariance ``R S S R^T`` maps to ``M R S S R^T M^T`` with ``M`` the axis map, so
    its rotation becomes ``M R``, the quaternion product of the axis rotation and ``q``.
    """
    q = np.asarray(quats, dtype=np.float64)
    aw, ax, ay, az = _Q_AXIS
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    out = np.empty(q.shape, dtype=np.float32)
    out[..., 0] = aw * w - ax * x - ay * y - az * z
    out[..., 1] = aw * x + ax * w + ay * z - az * y
    out[..., 2] = aw * y - ax * z + ay * w + az * x
    out[..., 3] = aw * z + ax * y - ay * x + az * w
    return out


def scene_frames(times: np.ndarray, fps: float, fps_base: float = 1.0,
                 start: float = 1.0) -> np.ndarray:
    """Scene frame of each sample: ``start + t * fps / fps_base`` (float64, never rounded)."""
    if fps <= 0 or fps_base <= 0:
        raise ValueError(f"scene fps must be positive, got fps={fps}, fps_base={fps_base}")
    return float(start) + np.asarray(times, dtype=np.float64) * (float(fps) / float(fps_base))


def shape_key_bytes(frames: int, vertices: int) -> int:
    """Bytes of shape-key data for ``frames`` keys of ``vertices`` float32 positions."""
    return int(frames) * int(vertices) * 12


def choose_storage(frames: int, vertices: int, requested: str = "AUTO",
                   limit_bytes: int | None = None) -> tuple[str, str | None]:
    """``("SHAPE_KEYS" | "PC2", notice or None)`` for a mesh sequence of this size.

    ``AUTO`` picks shape keys up to ``limit_bytes`` of key data and a PC2 cache above, with a
    notice for the artist saying why.
    """
    if requested not in STORAGE_CHOICES:
        raise ValueError(f"storage {requested!r} is not one of {STORAGE_CHOICES}")
    if requested != "AUTO":
        return requested, None
    if limit_bytes is None:
        limit_bytes = SHAPE_KEY_LIMIT_BYTES
    size = shape_key_bytes(frames, vertices)
    if size > limit_bytes:
        return "PC2", (
            f"{frames} frames x {vertices} vertices would take {size / 1e6:.0f} MB of shape keys "
            f"(more than {limit_bytes / 1e6:.0f} MB): using a PC2 point cache on disk instead"
        )
    return "SHAPE_KEYS", None


def time_values(time_kind: str, count: int) -> np.ndarray:
    """Value of the time curve at each of ``count`` samples, for each kind of time curve.

    Absolute shape keys sit at ``eval_time`` 0, 10, 20, ...; the Mesh Cache frame and the
    Geometry Nodes Time input count samples from 0.
    """
    idx = np.arange(count, dtype=np.float64)
    if time_kind == TIME_SHAPE_KEYS:
        return idx * SHAPE_KEY_STEP
    if time_kind in (TIME_MESH_CACHE, TIME_GEOMETRY_NODES):
        return idx
    raise ValueError(f"unknown time curve kind {time_kind!r}")


def keyframe_coords(frames: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Interleaved ``[f0, v0, f1, v1, ...]`` float32, as ``keyframe_points.foreach_set('co')``."""
    co = np.empty((len(frames), 2), dtype=np.float32)
    co[:, 0] = frames
    co[:, 1] = values
    return co.ravel()


def loop_uvs(uvs: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Per-vertex UVs ``[V, 2]`` -> per-corner (loop) UVs ``[3F * 2]`` for Blender's UV layer."""
    return np.ascontiguousarray(np.asarray(uvs, dtype=np.float32)[faces.ravel()]).ravel()


@dataclass
class ResultMeta:
    """What an imported object remembers of its result (stored as custom properties)."""

    job_id: str
    kind: str
    representation: str
    params: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    times: list[float] = field(default_factory=list)
    fps: float = 0.0
    source: str = ""
    sequence: int = 0
    sequence_count: int = 1
    #: ``manifest.resample`` (protocol 1.1): how the result can be re-evaluated; {} = it cannot
    resample: dict[str, Any] = field(default_factory=dict)

    def to_props(self) -> dict[str, Any]:
        """Flat ``anim4d_*`` custom properties (params as JSON text, times as a float list)."""
        return {
            "anim4d_job_id": self.job_id,
            "anim4d_kind": self.kind,
            "anim4d_representation": self.representation,
            "anim4d_params": json.dumps(self.params, sort_keys=True),
            "anim4d_seed": -1 if self.seed is None else int(self.seed),
            "anim4d_times": [float(t) for t in self.times],
            "anim4d_source_fps": float(self.fps),
            "anim4d_source": self.source,
            "anim4d_sequence": int(self.sequence),
            "anim4d_resample": json.dumps(self.resample, sort_keys=True) if self.resample else "",
        }


def object_name(meta: ResultMeta) -> str:
    """A readable object name: the kind's last part and the start of the job id (and the
    sequence's index when the result holds several)."""
    short = meta.kind.rsplit(".", 1)[-1] or "result"
    jid = meta.job_id[:8] if meta.job_id else "local"
    suffix = f"_{meta.sequence}" if meta.sequence_count > 1 else ""
    return f"Anim4D_{short}_{jid}{suffix}"


def sequence_metas(meta: ResultMeta, manifest: Any) -> list[ResultMeta]:
    """One :class:`ResultMeta` per mesh sequence of the result (``files.sequences``, protocol
    1.1; a result without it holds one); each becomes its own object."""
    m = manifest if isinstance(manifest, dict) else manifest.to_json()
    files = m.get("files") or {}
    count = len(files.get("sequences") or [files.get("sequence")])
    return [replace(meta, sequence=i, sequence_count=count) for i in range(count)]


def video_notice(manifest: Any, where: str) -> str:
    """What the artist is told about a ``video`` result: nothing goes into the scene."""
    m = manifest if isinstance(manifest, dict) else manifest.to_json()
    video = (m.get("files") or {}).get("video", "")
    return (f"job {m.get('job_id') or '?'} ({m.get('kind', '')}) is a rendered video, not "
            f"geometry: nothing was added to the scene; the video is {where}/{video}")


def manifest_notes(manifest: Any) -> list[str]:
    """The notes a job left for the artist in its result (``extra.notes``: a DS4D side left
    unseen, a creature still near a training instance, ...), prefixed with the job."""
    m = manifest if isinstance(manifest, dict) else manifest.to_json()
    notes = (m.get("extra") or {}).get("notes") or []
    notes = notes if isinstance(notes, list) else [notes]
    job = str(m.get("job_id") or "")[:8]
    return [f"job {job}: {n}" if job else str(n) for n in notes]


def meta_from_manifest(manifest: Any, source: str = "") -> ResultMeta:
    """The :class:`ResultMeta` of a ``shared.manifest.Manifest`` (or its JSON dict)."""
    m = manifest if isinstance(manifest, dict) else manifest.to_json()
    return ResultMeta(
        job_id=str(m.get("job_id", "")), kind=str(m.get("kind", "")),
        representation=str(m.get("representation", "")), params=dict(m.get("params") or {}),
        seed=m.get("seed"), times=[float(t) for t in m.get("frame_times", [])],
        fps=float(m.get("fps", 0.0) or 0.0), source=source,
        resample=dict(m.get("resample") or {}),
    )


def gaussians_correspond(manifest: Any) -> bool:
    """True when the producer says splat ``k`` is the same Gaussian in every frame.

    Read from ``extra.gaussians_correspond`` of the manifest; the counts must also be equal.
    """
    m = manifest if isinstance(manifest, dict) else manifest.to_json()
    counts = (m.get("counts") or {}).get("gaussians")
    same = not isinstance(counts, list) or len(set(counts)) <= 1
    return bool((m.get("extra") or {}).get("gaussians_correspond", False)) and same


@dataclass(frozen=True)
class BlendSlider:
    """A morph imported as absolute shape keys driven by one slider: the object's custom
    property ``prop`` (0 = the first creature, 1 = the second) drives the shape keys'
    ``eval_time`` through ``expression`` (a simple expression, evaluated without Python)."""

    prop: str
    expression: str
    keys: int


def blend_slider(manifest: Any) -> BlendSlider | None:
    """The slider of a ``creature.blend`` morph result (``extra.shape_keys``: the property name
    and the blend weight of each frame, 0 to 1 evenly), else None (a timed import)."""
    m = manifest if isinstance(manifest, dict) else manifest.to_json()
    sk = (m.get("extra") or {}).get("shape_keys")
    if not isinstance(sk, dict):
        return None
    values = np.asarray(sk.get("values") or [], dtype=np.float64)
    prop = str(sk.get("property") or "")
    n = len(values)
    if n < 2 or not prop.isidentifier() or len(m.get("frame_times") or []) != n:
        return None
    if not np.allclose(values, np.linspace(0.0, 1.0, n), atol=1e-6):
        return None  # only an even ramp maps onto eval_time with one linear expression
    return BlendSlider(prop, f"{prop} * {SHAPE_KEY_STEP * (n - 1):g}", n)
