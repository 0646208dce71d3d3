"""CLI commands that need no running backend: serve, keys, export, demo."""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from backend.server.defaults import DEFAULT_BIND, default_data_dir
from shared.errors import Anim4DError, FormatError


def add_serve_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bind", default=DEFAULT_BIND,
                   help="ZeroMQ address to listen on (default %(default)s: this machine only)")
    p.add_argument("--data-dir", type=Path, default=default_data_dir(),
                   help="jobs and results live here (default %(default)s)")
    p.add_argument("--workers", type=int, default=None,
                   help="jobs run at once, each in its own process (default 1: one GPU, one "
                        "job); with --executor ray, jobs in flight on the cluster (default: "
                        "the cluster's CPU count)")
    p.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="where jobs run: local processes (default) or a Ray cluster "
                        "(pip install 'anim4d[ray]'; see docs/deploy.md)")
    p.add_argument("--ray-address", metavar="ADDR",
                   help="the Ray cluster to use, e.g. 10.0.0.5:6379 (default: a local one, "
                        "found or started)")
    p.add_argument("--result-store", metavar="URL",
                   help="with --executor ray: an fsspec URL (file:///mnt/shared/anim4d, "
                        "s3://bucket/prefix) through which Ray nodes that do not share this "
                        "machine's disk get inputs and return results (default: none; the "
                        "nodes use --data-dir by path)")
    p.add_argument("--retries", type=int, default=2,
                   help="with --executor ray: times a job whose worker died runs again "
                        "(default %(default)s)")
    p.add_argument("--resident-actors", type=int, default=2, metavar="N",
                   help="with --executor ray: long-lived actors that keep a method's models "
                        "loaded between jobs (the dnf.* and creature.* kinds), at most N "
                        "(each holds its GPU while idle); 0: every job is a task "
                        "(default %(default)s)")
    p.add_argument("--resident-idle", type=float, default=300.0, metavar="S",
                   help="with --executor ray: a resident actor idle for S seconds ends "
                        "(default %(default)s)")
    p.add_argument("--max-queued", type=int, default=0, metavar="N",
                   help="queued jobs per client (CURVE key, else connection); 0: no limit")
    p.add_argument("--max-running", type=int, default=0, metavar="N",
                   help="running jobs per client; 0: no limit")
    p.add_argument("--max-submits-per-minute", type=int, default=0, metavar="N",
                   help="submits per client per minute (bursts included); 0: no limit")
    p.add_argument("--max-input-mb", type=float, default=0.0, metavar="MB",
                   help="the largest input file a job may have; 0: 64 GiB (job kinds may "
                        "declare less for an input)")
    p.add_argument("--curve-keys", type=Path, metavar="DIR",
                   help="require CurveZMQ authentication with the keys in DIR "
                        "(see `anim4d keys`)")
    p.add_argument("--cancel-grace", type=float, default=5.0,
                   help="seconds a cancelled job gets to stop before it is killed")
    p.add_argument("--debug-kinds", action="store_true",
                   help="also offer the debug.* job kinds (engine diagnostics)")
    p.add_argument("--models-dir", type=Path, metavar="DIR",
                   help="models offered to clients by name, one folder per model: "
                        "DIR/<method>/<name>/ (e.g. DIR/dnf/big/); default DATA_DIR/models; "
                        "the shipped models are always offered")


def cmd_serve(args: argparse.Namespace) -> int:
    from backend.server.config import ServerConfig
    from backend.server.embedded import run_server

    if args.workers is not None and args.workers < 1:
        raise Anim4DError(f"--workers {args.workers}: need at least 1", "bad_param")
    for flag in ("retries", "max_queued", "max_running", "max_submits_per_minute",
                 "resident_actors", "resident_idle"):
        if getattr(args, flag) < 0:
            raise Anim4DError(f"--{flag.replace('_', '-')} {getattr(args, flag)}: need 0 or "
                              "more", "bad_param")
    if args.max_input_mb < 0:
        raise Anim4DError(f"--max-input-mb {args.max_input_mb:g}: need 0 or more", "bad_param")
    if args.ray_address and args.executor != "ray":
        raise Anim4DError("--ray-address needs --executor ray", "bad_param")
    if args.result_store and args.executor != "ray":
        raise Anim4DError("--result-store needs --executor ray", "bad_param")
    if args.executor == "ray":
        from importlib.util import find_spec

        if find_spec("ray") is None:
            raise Anim4DError("--executor ray needs Ray: pip install 'anim4d[ray]'",
                              "missing_ray")
    workers = args.workers or (0 if args.executor == "ray" else 1)
    run_server(ServerConfig(bind=args.bind, data_dir=args.data_dir, workers=workers,
                            curve_keys=args.curve_keys, cancel_grace_s=args.cancel_grace,
                            debug_kinds=args.debug_kinds, models_dir=args.models_dir,
                            executor=args.executor, ray_address=args.ray_address,
                            result_store=args.result_store,
                            retries=args.retries, resident_actors=args.resident_actors,
                            resident_idle_s=args.resident_idle,
                            max_queued_per_client=args.max_queued,
                            max_running_per_client=args.max_running,
                            max_submits_per_minute=args.max_submits_per_minute,
                            max_input_bytes=int(args.max_input_mb * 1e6)))
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    from zmq.auth import create_certificates

    root = Path(args.dir)
    clients = root / "clients"
    clients.mkdir(parents=True, exist_ok=True)
    if not (root / "server.key_secret").exists():
        create_certificates(str(root), "server")
    admins = list(getattr(args, "admin", []) or [])
    names = args.client or ([] if admins else ["client"])
    for name in [*names, *admins]:
        if not (root / f"{name}.key_secret").exists():
            create_certificates(str(root), name)
        shutil.copy(root / f"{name}.key", clients / f"{name}.key")
    if admins:
        (root / "admins").mkdir(exist_ok=True)
    for name in admins:
        shutil.copy(root / f"{name}.key", root / "admins" / f"{name}.key")
    print(f"server keys: {root / 'server.key_secret'} (keep secret), {root / 'server.key'} "
          "(give to clients)")
    for name in [*names, *admins]:
        role = "admin (sees every job)" if name in admins else "client"
        print(f"{role} {name}: {root / (name + '.key_secret')} (give to that client only); its "
              f"public key is allowed in {clients}")
    print(f"start the server with: anim4d serve --bind tcp://0.0.0.0:5555 --curve-keys {root}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from backend.data.export import export_sequence
    from shared.results import open_result

    result = open_result(args.result)
    if result.representation != "mesh_sequence":
        if args.format != "ply":
            raise FormatError(f"{args.result}: a {result.representation} exports only as "
                              "--format ply (one 3DGS .ply per frame)")
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        for i in range(result.frame_count):
            src = result.folder / result.manifest.files["frames"][i]
            shutil.copy(src, out / src.name)
        print(f"wrote {result.frame_count} splat frames to {out}")
        return 0
    path = export_sequence(result.mesh, args.format, Path(args.out))
    print(f"wrote {args.format}: {path}")
    return 0


DEMO_FPS = 24.0


def cmd_demo(args: argparse.Namespace) -> int:
    """Embedded backend -> a generated creature -> fetched -> a turntable MP4 rendered by Cycles.

    The creature is DNF's ``creature.sample`` when the shipped model holds a generator (it does),
    else the procedural creature. Prints the MP4, the .blend and the result folder."""
    from backend.blender_render.options import RenderOptions
    from backend.blender_render.run import bpy_missing

    out = Path(args.out).resolve()
    why = None if args.no_render else bpy_missing()
    if why:
        raise Anim4DError(f"the demo renders with Blender's Python module: {why} "
                          "(`make demo` installs it; or pass --no-render)", "missing_bpy")
    options = RenderOptions(resolution=args.resolution, samples=args.samples,
                            camera="turntable", blend=True, denoise=True)
    t0 = time.perf_counter()
    for mine in (out / "creature", out / "render"):  # only what an earlier demo wrote
        if mine.exists():
            shutil.rmtree(mine)
    out.mkdir(parents=True, exist_ok=True)
    if not 1 <= args.frames <= 2000:
        raise Anim4DError(f"--frames {args.frames}: expected 1 to 2000", "bad_param")
    result, kind, counts = _demo_creature(out / "creature", args.seed, args.frames)
    print(f"a {counts.get('frames')}-frame, {counts.get('vertices')}-vertex creature from "
          f"{kind} (seed {args.seed}) in {time.perf_counter() - t0:.1f} s")
    if args.no_render:
        print(f"result folder: {result}")
        return 0
    video, blend = _demo_render(result, out / "render", options)
    print(f"demo done in {time.perf_counter() - t0:.1f} s")
    print(f"video:         {video}")
    print(f"blender scene: {blend}")
    print(f"result folder: {result}  (import it in Blender with the Anim4D add-on, or "
          f"`anim4d export {result} --format obj --out {out}/obj`)")
    return 0


def _demo_creature(folder: Path, seed: int, frames: int) -> tuple[Path, str, dict]:
    """Generate one creature on an embedded backend and fetch it into ``folder``."""
    from backend.cli.progress import ProgressDisplay
    from backend.server.embedded import start_embedded_server
    from blender_addon.core.client import Client

    with tempfile.TemporaryDirectory(prefix="anim4d-demo-") as data_dir, \
            start_embedded_server(data_dir) as server:
        print(f"embedded backend on {server.address}")
        with Client(server.address, timeout=30) as client:
            offered = {k.name for k in client.hello().kinds}
            if "creature.sample" in offered:
                kind = "creature.sample"
                params = {"seed": seed, "frames": frames, "fps": DEMO_FPS}
            else:  # no DNF generator installed: the parametric creature
                kind = "creature.procedural"
                params = {"seed": seed, "gait": "trot", "frames": frames, "fps": DEMO_FPS}
            job_id = client.submit(kind, params)
            with ProgressDisplay(kind) as bar:
                info = client.wait(job_id, on_progress=bar.update)
            if info.state != "done":
                err = info.error or {}
                raise Anim4DError(f"demo job {info.state}: {err.get('message', '')}",
                                  "job_failed")
            client.fetch(job_id, folder)
    return folder, kind, dict((info.result or {}).get("counts", {}))


def _demo_render(result: Path, out: Path, options) -> tuple[Path, Path]:
    from backend.blender_render.run import render_results
    from backend.cli.progress import ProgressDisplay
    from blender_addon.core.client_types import ProgressInfo

    with ProgressDisplay("render (Cycles, CPU)") as bar:
        (outcome,) = render_results(
            [result], out, options,
            on_progress=lambda stage, fraction, message: bar.update(
                ProgressInfo("", "running", stage, fraction, message)))
    if not outcome.ok:
        raise Anim4DError(f"demo render failed: {outcome.error}", "render_failed")
    return outcome.video, outcome.blend
