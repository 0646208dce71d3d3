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
    p.add_argument("--workers", type=int, default=1,
                   help="jobs run at once, each in its own process (default 1: one GPU, one job)")
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

    if args.workers < 1:
        raise Anim4DError(f"--workers {args.workers}: need at least 1", "bad_param")
    run_server(ServerConfig(bind=args.bind, data_dir=args.data_dir, workers=args.workers,
                            curve_keys=args.curve_keys, cancel_grace_s=args.cancel_grace,
                            debug_kinds=args.debug_kinds, models_dir=args.models_dir))
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    from zmq.auth import create_certificates

    root = Path(args.dir)
    clients = root / "clients"
    clients.mkdir(parents=True, exist_ok=True)
    if not (root / "server.key_secret").exists():
        create_certificates(str(root), "server")
    names = args.client or ["client"]
    for name in names:
        if not (root / f"{name}.key_secret").exists():
            create_certificates(str(root), name)
        shutil.copy(root / f"{name}.key", clients / f"{name}.key")
    print(f"server keys: {root / 'server.key_secret'} (keep secret), {root / 'server.key'} "
          "(give to clients)")
    for name in names:
        print(f"client {name}: {root / (name + '.key_secret')} (give to that client only); its "
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


def cmd_demo(args: argparse.Namespace) -> int:
    """Start an embedded backend, make one procedural creature, fetch it, say where it is."""
    from backend.cli.progress import ProgressDisplay
    from backend.server.embedded import start_embedded_server
    from blender_addon.core.client import Client

    out = Path(args.out).resolve()
    with tempfile.TemporaryDirectory(prefix="anim4d-demo-") as data_dir:
        t0 = time.perf_counter()
        with start_embedded_server(data_dir) as server:
            print(f"embedded backend on {server.address}")
            with Client(server.address, timeout=30) as client:
                params = {"seed": args.seed, "gait": "trot", "frames": 48, "fps": 24.0}
                job_id = client.submit("creature.procedural", params)
                with ProgressDisplay("creature.procedural") as bar:
                    info = client.wait(job_id, on_progress=bar.update)
                if info.state != "done":
                    raise Anim4DError(f"demo job {info.state}: {info.error}", "job_failed")
                if out.exists():
                    shutil.rmtree(out)
                client.fetch(job_id, out)
        counts = info.result.get("counts", {}) if info.result else {}
    print(f"demo done in {time.perf_counter() - t0:.1f} s: a {counts.get('frames')}-frame, "
          f"{counts.get('vertices')}-vertex procedural creature (seed {args.seed}, trot)")
    print(f"result folder: {out}")
    print("open it in Blender with the Anim4D add-on (Import result), or convert it with "
          f"`anim4d export {out} --format obj --out {out}/obj`")
    return 0
