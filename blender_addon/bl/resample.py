"""Resample from backend: replace an object's frames by exact ones at the current retime.

:func:`make_plan` reads the object's time curve and asks ``core.resample_plan`` which source
second each scene frame shows; the backend re-evaluates the source at those seconds; then
:func:`apply_result` builds the new frames with the importers' own classes (``MeshImport`` with
the object's storage, shape keys or a PC2 cache, or ``GaussianImport``), moves them onto the
object (its name, materials, modifiers and transform stay), and resets its retime to identity
(keys on the whole scene frames; loop and ping-pong kept). The previous state is kept
(``anim4d_resample_prev``: the old mesh with a fake user, or the old PC2 file, and the old
curve and properties): :func:`restore_previous` brings it back, as Blender's undo does.
"""

from __future__ import annotations

import json

import bpy
import numpy as np

from ..core import import_plan as plan
from ..core import resample_plan
from ..core._shared import errors
from ..core.retime_plan import RetimeSettings
from . import gn_gaussians, importer, retime, timecurve
from .import_gaussians import GaussianImport
from .import_mesh import MeshImport

PREV = "anim4d_resample_prev"
PROPS = ("anim4d_job_id", "anim4d_base_frames", "anim4d_start", "anim4d_times",
         "anim4d_resample", "anim4d_retime", "anim4d_cache_file")
GN_INPUTS = ("Frames", "Points per Frame", "Interpolate")
UI_FIELDS = ("speed", "use_start", "start", "offset", "repeat", "reverse", "ease")


def info(obj: bpy.types.Object | None):
    """The object's ``ResampleInfo`` (None: not an import whose result can be resampled)."""
    if not retime.is_imported(obj):
        return None
    return resample_plan.resample_info({k: obj.get(k) for k in ("anim4d_resample",
                                                                "anim4d_job_id")})


def make_plan(obj: bpy.types.Object) -> resample_plan.ResamplePlan:
    """The scene frames of ``obj``'s retimed range and the source second each needs."""
    ri = info(obj)
    if ri is None:
        raise errors.Anim4DError(f"{obj.name}: its result cannot be re-evaluated at new times "
                                 "(its kind does not say how)", "not_resamplable")
    fc = timecurve.find_fcurve(obj)
    if fc is None or not len(fc.keyframe_points):
        raise errors.Anim4DError(f"{obj.name}: no time curve to follow", "not_resamplable")
    frames, values = timecurve.read_keys(fc)
    _, _, step = timecurve.time_target(obj)
    samples = ri.source_times(list(obj.get("anim4d_times", [])))
    return resample_plan.plan_resample(frames, values, step,
                                       retime.current_settings(obj).repeat, samples, ri.end)


def _meta(obj: bpy.types.Object, job_id: str) -> plan.ResultMeta:
    return plan.ResultMeta(job_id=job_id, kind=str(obj.get("anim4d_kind", "")),
                           representation=str(obj.get("anim4d_representation", "")))


def _build(obj, res, rp: resample_plan.ResamplePlan, job_id: str, scene) -> bpy.types.Object:
    """A temporary object holding the new frames, built by the importers' classes."""
    meta, start = _meta(obj, job_id), float(rp.scene_frames[0])
    if res.representation == "mesh_sequence":
        seq = res.mesh_sequence(int(obj.get("anim4d_sequence", 0)))
        if seq.vertex_count != len(obj.data.vertices):
            raise errors.FormatError(f"the resampled result has {seq.vertex_count} vertices, "
                                     f"{obj.name} {len(obj.data.vertices)}")
        job = MeshImport(meta, seq.faces, seq.times[rp.index], seq.vertex_count, seq.uvs,
                         seq.colors, storage=str(obj.get("anim4d_storage", "SHAPE_KEYS")),
                         start=start, scene=scene)
        job.frames = rp.scene_frames.copy()
        job.add_frames(0, seq.vertices[rp.index])
        return job.finish()
    gjob = GaussianImport(meta, np.zeros(len(rp.index)), start=start, scene=scene,
                          correspond=bool(obj.get("anim4d_correspond", False)))
    gjob.frames = rp.scene_frames.copy()
    cache: dict[int, object] = {}
    for i, k in enumerate(rp.index):
        if int(k) not in cache:
            cache[int(k)] = res.gaussian_frame(int(k))
        gjob.add_gaussian_frame(i, cache[int(k)], rebuild=i == len(rp.index) - 1)
    return gjob.finish()


def _snapshot(obj: bpy.types.Object) -> dict:
    fc = timecurve.find_fcurve(obj)
    frames, values = timecurve.read_keys(fc) if fc is not None else (np.zeros(0), np.zeros(0))
    snap = {"props": {k: _plain(obj.get(k)) for k in PROPS if k in obj},
            "curve": [frames.tolist(), values.tolist()],
            "ui": {k: getattr(obj.anim4d_retime, k) for k in UI_FIELDS}, "data": "",
            "cache": "", "gn": {}}
    mod = obj.modifiers.get(timecurve.CACHE_MODIFIER)
    if mod is not None:
        snap["cache"] = mod.filepath
    gn = obj.modifiers.get(timecurve.GN_MODIFIER)
    if gn is not None:
        snap["gn"] = {n: _plain(gn[gn_gaussians.input_identifier(gn.node_group, n)])
                      for n in GN_INPUTS}
    return snap


def _plain(value):
    return value.to_list() if hasattr(value, "to_list") else value


def _set_ui(obj, values: dict) -> None:
    for k, v in values.items():
        if getattr(obj.anim4d_retime, k) != v:
            setattr(obj.anim4d_retime, k, v)  # its update rewrites the curve: set props first


def _drop_prev(obj) -> None:
    prev = json.loads(obj.get(PREV) or "{}")
    old = bpy.data.meshes.get(prev.get("data") or "")
    if old is not None and old is not obj.data:
        old.use_fake_user = False
        if old.users == 0:
            bpy.data.meshes.remove(old)
    if PREV in obj:
        del obj[PREV]


def _swap_in(obj: bpy.types.Object, tmp: bpy.types.Object, snap: dict) -> None:
    """Move the new frames of ``tmp`` onto ``obj`` (its PC2 file, or its mesh data with the
    shape keys or splats, keeping ``obj``'s materials), note what to restore in ``snap`` and
    delete ``tmp`` with what it made that nothing uses now."""
    made: list = []
    garbage = None
    if obj.get("anim4d_time_kind") == plan.TIME_MESH_CACHE:
        path = tmp.modifiers[timecurve.CACHE_MODIFIER].filepath
        obj.modifiers[timecurve.CACHE_MODIFIER].filepath = path
        obj["anim4d_cache_file"] = path
        garbage = tmp.data
    else:
        old, new = obj.data, tmp.data
        made = [m for m in new.materials if m is not None]  # the importer's own, unused now
        new.materials.clear()
        for m in old.materials:
            new.materials.append(m)
        name = old.name
        old.name, old.use_fake_user = f"{name}.pre_resample", True
        snap["data"] = old.name
        obj.data, new.name = new, name
    gn, tgn = obj.modifiers.get(timecurve.GN_MODIFIER), tmp.modifiers.get(timecurve.GN_MODIFIER)
    tree = None
    if gn is not None and tgn is not None:
        for n in GN_INPUTS:
            gn[gn_gaussians.input_identifier(gn.node_group, n)] = tgn[
                gn_gaussians.input_identifier(tgn.node_group, n)]
        tree = tgn.node_group
    bpy.data.objects.remove(tmp)
    if tree is not None and tree.users == 0:
        bpy.data.node_groups.remove(tree)
    if garbage is not None and garbage.users == 0:
        bpy.data.meshes.remove(garbage)
    for m in made:
        if m.users == 0:
            bpy.data.materials.remove(m)


def apply_result(obj: bpy.types.Object, folder, rp: resample_plan.ResamplePlan, job_id: str,
                 scene: bpy.types.Scene | None = None) -> None:
    """Put the resampled result in ``folder`` (frames at ``rp.request``) on ``obj`` at
    ``rp.scene_frames`` and reset its retime to identity; the old state stays recoverable."""
    ri = info(obj)
    if ri is None:
        raise errors.Anim4DError(f"{obj.name}: not resamplable", "not_resamplable")
    res = importer.open_result(folder)
    if res.frame_count != len(rp.request):
        raise errors.FormatError(f"{folder}: {res.frame_count} frames for "
                                 f"{len(rp.request)} requested times")
    repeat = retime.current_settings(obj).repeat
    tmp = _build(obj, res, rp, job_id, scene or bpy.context.scene)
    _drop_prev(obj)
    snap = _snapshot(obj)
    _swap_in(obj, tmp, snap)
    obj[PREV] = json.dumps(snap)
    render = (scene or bpy.context.scene).render
    start = float(rp.scene_frames[0])
    obj["anim4d_job_id"] = job_id
    obj["anim4d_base_frames"] = rp.scene_frames.tolist()
    obj["anim4d_start"] = start
    obj["anim4d_times"] = ((rp.scene_frames - start) * render.fps_base / render.fps).tolist()
    obj["anim4d_resample"] = json.dumps(resample_plan.resampled_field(ri, rp), sort_keys=True)
    identity = RetimeSettings(repeat=repeat)
    _set_ui(obj, {**{k: getattr(RetimeSettings(), k) for k in ("speed", "offset", "reverse",
                                                               "ease")},
                  "use_start": False, "repeat": repeat})
    retime.apply_retime(obj, identity)


def restore_previous(obj: bpy.types.Object) -> None:
    """Bring back the state before the last :func:`apply_result` (one level)."""
    raw = obj.get(PREV)
    if not raw:
        raise errors.Anim4DError(f"{obj.name}: no resample to undo", "nothing_to_undo")
    snap = json.loads(raw)
    current = obj.data
    if snap["data"]:
        old = bpy.data.meshes.get(snap["data"])
        if old is None:
            raise errors.Anim4DError(f"{obj.name}: its previous mesh {snap['data']!r} is gone")
        name = current.name
        obj.data = old
        old.use_fake_user = False
        if current.users == 0:
            bpy.data.meshes.remove(current)
        old.name = name
    if snap["cache"]:
        obj.modifiers[timecurve.CACHE_MODIFIER].filepath = snap["cache"]
    gn = obj.modifiers.get(timecurve.GN_MODIFIER)
    for n, v in snap["gn"].items():
        gn[gn_gaussians.input_identifier(gn.node_group, n)] = v
    for k in PROPS:
        if k in snap["props"]:
            obj[k] = snap["props"][k]
        elif k in obj:
            del obj[k]
    del obj[PREV]
    _set_ui(obj, snap["ui"])
    settings = retime.current_settings(obj)
    frames, values = snap["curve"]
    if frames:
        timecurve.write_time_curve(obj, np.asarray(frames), np.asarray(values), settings.repeat)

