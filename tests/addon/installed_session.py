"""Run in a fresh Python (one bpy per process): install the built zip, drive the real add-on.

Usage: ``python installed_session.py ZIP OUT_JSON``. ``BLENDER_USER_RESOURCES`` must already point
at an empty temporary folder. Every check is recorded in OUT_JSON as ``{name: [ok, detail]}``;
the pytest side asserts on them one by one. Steps:

0. an import hook refuses the ``zmq`` of the Python running this session (the development
   venv's), so the add-on can only work with the pyzmq wheel it bundles;
1. install the zip with ``bpy.ops.extensions.package_install_files`` and enable it; ``zmq`` is
   then loaded from where Blender installed the extension's wheels;
2. operators, panels and preferences registered;
3. start the backend through the add-on's "local backend" (a child ``anim4d serve``), connect;
4. submit ``creature.procedural`` synchronously, import, compare every frame with the result;
5. LINEAR keys; a speed-2 retime shows the shape of start+2k at start+k;
6. errors: backend down, wrong address, malformed folder: reported, nothing lost.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import socket
import sys
import traceback
from pathlib import Path

import numpy as np

ZIP, OUT = Path(sys.argv[1]), Path(sys.argv[2])
checks: dict[str, list] = {}


def check(name: str, ok: bool, detail: str = "") -> bool:
    checks[name] = [bool(ok), str(detail)[:2000]]
    return bool(ok)


class RefuseZmqFrom(importlib.abc.MetaPathFinder):
    """Find top-level ``zmq`` anywhere on ``sys.path`` except ``blocked`` (a site-packages).

    First on ``sys.meta_path``: the normal path finder never gets to offer the blocked copy.
    """

    def __init__(self, blocked: Path):
        self.blocked = blocked.resolve()
        self.refused = 0

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "zmq":
            return None  # zmq.* submodules come from the package found below
        search = [p for p in sys.path if not p or Path(p).resolve() != self.blocked]
        spec = importlib.machinery.PathFinder.find_spec(fullname, search)
        if spec is None:
            self.refused += 1
            raise ModuleNotFoundError(f"zmq is refused from {self.blocked} in this session",
                                      name=fullname)
        return spec


def refuse_session_zmq() -> RefuseZmqFrom | None:
    """Install the hook against the folder that holds this Python's own ``zmq``."""
    spec = importlib.util.find_spec("zmq")
    if spec is None or spec.origin is None:
        return None
    hook = RefuseZmqFrom(Path(spec.origin).parent.parent)
    sys.meta_path.insert(0, hook)
    return hook


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(op, **kw) -> tuple[set, str]:
    """Run an operator; an ERROR report raises RuntimeError in scripts: return it as text."""
    try:
        return op(**kw), ""
    except RuntimeError as err:
        return {"CANCELLED"}, str(err)


def evaluated(bpy, obj) -> np.ndarray:
    dg = bpy.context.evaluated_depsgraph_get()
    ev = obj.evaluated_get(dg)
    me = ev.to_mesh()
    co = np.empty(len(me.vertices) * 3, np.float32)
    me.vertices.foreach_get("co", co)
    ev.to_mesh_clear()
    return co.reshape(-1, 3).astype(np.float64)


def y_up_to_z_up(p: np.ndarray) -> np.ndarray:
    return np.stack([p[..., 0], -p[..., 2], p[..., 1]], axis=-1)


def main() -> None:
    hook = refuse_session_zmq()
    try:
        import zmq  # noqa: F401 - must fail: nothing but the refused copy exists yet

        check("session_zmq_refused", False, f"zmq imported from {sys.modules['zmq'].__file__}")
    except ModuleNotFoundError as err:
        check("session_zmq_refused", hook is not None and hook.refused == 1, str(err))
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    result = bpy.ops.extensions.package_install_files(
        filepath=str(ZIP), repo="user_default", enable_on_install=True)
    pkg = "bl_ext.user_default.anim4d"
    check("installed", result == {"FINISHED"} and pkg in bpy.context.preferences.addons,
          f"{result}, addons: {list(bpy.context.preferences.addons.keys())}")
    ops = ["connect", "submit", "cancel", "refresh", "import_result", "retime", "local_backend"]
    missing = [o for o in ops if not hasattr(bpy.types, "ANIM4D_OT_" + o)]
    check("operators_registered", not missing, f"missing {missing}")
    panels = ["ANIM4D_PT_main", "ANIM4D_PT_kinds", "ANIM4D_PT_jobs", "ANIM4D_PT_retime"]
    check("panels_registered", all(hasattr(bpy.types, p) for p in panels),
          [p for p in panels if not hasattr(bpy.types, p)])
    mod = sys.modules[pkg]
    vendored = sys.modules[pkg + ".core._shared"].errors.__name__
    check("vendored_shared_used", vendored == pkg + "._vendor.shared.errors", vendored)
    wheels_dir = Path(bpy.utils.user_resource("EXTENSIONS")).resolve() / ".local"
    user = Path(os.environ["BLENDER_USER_RESOURCES"]).resolve()
    try:
        client_zmq = Path(importlib.import_module(pkg + ".core.client").zmq.__file__).resolve()
    except ImportError as err:
        client_zmq = Path(f"<not importable: {err}>")
    check("bundled_zmq_used", client_zmq.is_relative_to(wheels_dir)
          and wheels_dir.is_relative_to(user), f"zmq from {client_zmq}; wheels in {wheels_dir}")
    prefs = bpy.context.preferences.addons[pkg].preferences
    work = OUT.parent

    # errors first: nothing listens on this port
    prefs.address = f"tcp://127.0.0.1:{free_port()}"
    prefs.timeout = 2.0
    res, msg = call(bpy.ops.anim4d.connect)
    rt = sys.modules[pkg + ".bl.runtime"].RT
    check("backend_down_reported", res == {"CANCELLED"} and prefs.address in rt.state.last_error
          and "Traceback" not in rt.state.last_error, rt.state.last_error)
    prefs.address = "tcp://no-port-here"
    res, msg = call(bpy.ops.anim4d.connect)
    check("wrong_address_reported", res == {"CANCELLED"} and "tcp://" in rt.state.last_error,
          rt.state.last_error)
    prefs.address = "tcp://192.0.2.1:5555"
    res, msg = call(bpy.ops.anim4d.connect)
    check("online_access_refused", res == {"CANCELLED"}
          and "ANIM4D_ALLOW_NETWORK" in rt.state.last_error, rt.state.last_error)

    # the local backend, started by the add-on
    prefs.address = f"tcp://127.0.0.1:{free_port()}"
    prefs.timeout = 20.0
    prefs.backend_python = sys.executable
    prefs.backend_data_dir = str(work / "backend_data")
    prefs.results_dir = str(work / "results")
    call(bpy.ops.anim4d.local_backend, action="START")
    ready = rt.backend is not None and rt.backend.wait_ready(60)
    check("local_backend_started", ready, rt.backend.describe() if rt.backend else "none")
    if not ready:
        return
    res, msg = call(bpy.ops.anim4d.connect)
    kinds = [k.name for k in rt.state.kinds]
    check("connected", res == {"FINISHED"} and rt.state.connection == "connected",
          f"{res} {rt.state.last_error} kinds={kinds}")
    check("kind_sections", all(hasattr(bpy.context.scene, "anim4d_kind_" + k.replace(".", "_"))
                               for k in kinds), kinds)
    if "creature.procedural" not in kinds:
        check("procedural_offered", False, f"backend offers {kinds}")
        return
    scene = bpy.context.scene
    scene.render.fps, scene.frame_start = 24, 1
    res, msg = call(bpy.ops.anim4d.submit, kind="creature.procedural")
    (job_id,) = list(rt.state.jobs) or [""]
    obj_name = rt.imported.get(job_id, "")
    rows = [(j.id, j.state, j.error) for j in rt.state.ordered()]
    check("submitted_and_imported", res == {"FINISHED"} and obj_name in bpy.data.objects,
          f"{res} {msg} {rt.state.last_error} jobs={rows}")
    if obj_name not in bpy.data.objects:
        return
    obj = bpy.data.objects[obj_name]
    shared_meshseq = sys.modules[pkg + ".core._shared"].meshseq
    seq = shared_meshseq.load_npz(work / "results" / job_id / "sequence.npz")
    tol = 1e-5 * seq.bbox_diagonal()
    worst = 0.0
    frames = 1 + seq.times * 24.0
    for i, f in enumerate(frames):
        scene.frame_set(int(np.floor(f)), subframe=float(f - np.floor(f)))
        worst = max(worst, float(np.abs(evaluated(bpy, obj) - y_up_to_z_up(seq.vertices[i])).max()))
    check("every_frame_matches", worst <= tol, f"worst {worst:.3g} vs tolerance {tol:.3g}, "
                                               f"{seq.frame_count} frames x {seq.vertex_count}")
    fc = obj.data.shape_keys.animation_data.action.layers[0].strips[0].channelbag(
        obj.data.shape_keys.animation_data.action_slot).fcurves.find("eval_time")
    check("linear_keys", fc is not None and {k.interpolation for k in fc.keyframe_points}
          == {"LINEAR"} and len(fc.keyframe_points) == seq.frame_count,
          None if fc is None else len(fc.keyframe_points))
    step = 24.0 / seq.fps if seq.fps else 1.0
    before = {k: None for k in range(min(seq.frame_count, 8))}
    for k in before:
        scene.frame_set(int(1 + 2 * k * step))
        before[k] = evaluated(bpy, obj)
    bpy.context.view_layer.objects.active = obj
    obj.anim4d_retime.speed = 2.0  # the panel property: its update rewrites the curve
    worst = 0.0
    for k, shape in before.items():
        scene.frame_set(int(1 + k * step))
        worst = max(worst, float(np.abs(evaluated(bpy, obj) - shape).max()))
    check("speed_two_retime", worst <= tol, f"worst {worst:.3g}")

    # a malformed folder: clear error, the object imported before stays
    bad = work / "bad_result"
    bad.mkdir()
    (bad / "manifest.json").write_text('{"kind": 1}')
    res, msg = call(bpy.ops.anim4d.import_result, directory=str(bad))
    check("malformed_folder_reported", res == {"CANCELLED"} and str(bad) in rt.state.last_error
          and obj_name in bpy.data.objects, rt.state.last_error)

    # stop the backend: the next connect reports it, nothing imported is lost
    call(bpy.ops.anim4d.local_backend, action="STOP")
    check("local_backend_stopped", rt.backend.state in ("exited", "stopped"), rt.backend.describe())
    prefs.timeout = 2.0
    res, msg = call(bpy.ops.anim4d.connect)
    check("stopped_backend_reported", res == {"CANCELLED"} and obj_name in bpy.data.objects,
          rt.state.last_error)
    bpy.ops.preferences.addon_disable(module=pkg)
    check("disabled_cleanly", pkg not in bpy.context.preferences.addons and not hasattr(
        bpy.types, "ANIM4D_PT_main"), "")
    del mod


if __name__ == "__main__":
    try:
        main()
    except Exception:  # noqa: BLE001 - recorded for the pytest side
        check("no_exception", False, traceback.format_exc())
    finally:
        OUT.write_text(json.dumps(checks, indent=1))
