"""``anim4d``: the command line. Every command prints one clear line on error and exits non-zero.

Client commands accept ``--server ADDR`` (default ``tcp://127.0.0.1:5555``, or ``$ANIM4D_SERVER``).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable

from shared.errors import Anim4DError

DEFAULT_SERVER = "tcp://127.0.0.1:5555"


def _client_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--server", default=os.environ.get("ANIM4D_SERVER", DEFAULT_SERVER),
                   help="backend address (default %(default)s; env ANIM4D_SERVER)")
    p.add_argument("--timeout", type=float, default=10.0,
                   help="seconds without an answer before giving up (default %(default)s)")
    p.add_argument("--server-key", help="CURVE: the server's public key file (server.key)")
    p.add_argument("--client-key", help="CURVE: this client's secret key file (*.key_secret)")


def _lazy(module: str, name: str) -> Callable[[argparse.Namespace], int]:
    """Command ``name`` of ``backend.cli.<module>``, imported only when the command runs: so
    ``anim4d --help`` imports neither numpy, zmq, rich nor torch (see bench/cli_startup.py)."""

    def run(args: argparse.Namespace) -> int:
        return getattr(importlib.import_module(f"backend.cli.{module}"), name)(args)

    run.__name__ = run.__qualname__ = name
    return run


def build_parser() -> argparse.ArgumentParser:
    from backend.cli import local_cmds  # light: its commands import what they need

    parser = argparse.ArgumentParser(
        prog="anim4d", description="Anim4D backend: animated creatures for Blender.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("serve", help="run the backend server")
    local_cmds.add_serve_args(p)
    p.set_defaults(func=local_cmds.cmd_serve)

    p = sub.add_parser("keys", help="create CurveZMQ keys for a server and its clients")
    p.add_argument("dir", help="folder for the keys (server.key*, clients/)")
    p.add_argument("--client", action="append", default=[], metavar="NAME",
                   help="also create a client key pair NAME (repeatable; default: 'client')")
    p.add_argument("--admin", action="append", default=[], metavar="NAME",
                   help="create a client key pair NAME that sees and cancels every client's "
                        "jobs (repeatable); other keys see only their own")
    p.set_defaults(func=local_cmds.cmd_keys)

    for name, helptext, func in [
        ("ping", "check that the backend answers", "cmd_ping"),
        ("kinds", "list the job kinds the backend offers, with their parameters",
         "cmd_kinds"),
        ("jobs", "list jobs", "cmd_jobs"),
    ]:
        p = sub.add_parser(name, help=helptext)
        _client_args(p)
        p.set_defaults(func=_lazy("client_cmds", func))

    p = sub.add_parser("submit", help="submit a job (optionally wait and fetch its result)")
    _client_args(p)
    p.add_argument("kind", help="job kind, e.g. creature.procedural (see `anim4d kinds`)")
    p.add_argument("--input", nargs="+", default=[], metavar="FILE", help="input file(s)")
    p.add_argument("--input-for", nargs="+", action="append", default=[],
                   metavar=("INPUT", "FILE"),
                   help="file(s) for one of the kind's other inputs, e.g. --input-for masks "
                        "m/*.png (repeatable; see `anim4d kinds`)")
    p.add_argument("--param", nargs="+", default=[], metavar="K=V", help="parameters")
    p.add_argument("--wait", action="store_true",
                   help="wait with a progress bar (Ctrl-C cancels the job)")
    p.add_argument("--out", help="with --wait: fetch the result into this folder")
    p.add_argument("--priority", type=int, metavar="N",
                   help="-10 to 10, higher starts first (default 0)")
    p.set_defaults(func=_lazy("client_cmds", "cmd_submit"))

    for name, helptext, func in [
        ("cancel", "cancel a queued or running job", "cmd_cancel"),
        ("delete", "delete a finished job and its result on the server", "cmd_delete"),
        ("wait", "wait for a job with a progress bar", "cmd_wait"),
    ]:
        p = sub.add_parser(name, help=helptext)
        _client_args(p)
        p.add_argument("id", help="job id (a unique prefix is enough)")
        p.set_defaults(func=_lazy("client_cmds", func))

    p = sub.add_parser("fetch", help="download a finished job's result folder")
    _client_args(p)
    p.add_argument("id", help="job id (a unique prefix is enough)")
    p.add_argument("--out", required=True, help="result folder to write (resumes if partial)")
    p.set_defaults(func=_lazy("client_cmds", "cmd_fetch"))

    p = sub.add_parser("resample", help="re-evaluate a finished result exactly at new times "
                       "(slow motion, a new fps)")
    _client_args(p)
    p.add_argument("id", help="the finished job (a unique prefix is enough)")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--times", metavar="T,T,...", help="seconds of the source, increasing")
    how.add_argument("--fps", type=float, help="the source's span sampled at this rate")
    how.add_argument("--speed", type=float,
                     help="play speed at the source's fps (0.25 = quarter speed)")
    p.add_argument("--wait", action="store_true",
                   help="wait with a progress bar (Ctrl-C cancels the job)")
    p.add_argument("--out", help="with --wait: fetch the result into this folder")
    p.set_defaults(func=_lazy("resample_cmds", "cmd_resample"))

    p = sub.add_parser("export", help="convert a result folder to other formats")
    p.add_argument("result", help="result folder (holds manifest.json)")
    p.add_argument("--format", required=True, choices=["pc2", "obj", "ply", "anime", "npz"])
    p.add_argument("--out", required=True,
                   help="output file (pc2, anime, npz) or folder (per-frame obj, ply)")
    p.set_defaults(func=local_cmds.cmd_export)

    from backend.cli.dnf_cmds import add_dnf_commands

    add_dnf_commands(sub)

    from backend.cli.render_cmds import add_render_command, add_render_options

    add_render_command(sub)

    from backend.cli.models_cmds import add_models_commands

    add_models_commands(sub)

    p = sub.add_parser(
        "batch", help="run one job kind over seeds or inputs, render each, index them",
        description="Submit KIND once per seed and/or input file, wait for all under one bar, "
                    "fetch each into DIR/results/<item>, render each into DIR/renders, and write "
                    "DIR/index.json and DIR/index.html (a contact sheet with a still, the video, "
                    "and the command that remakes each). A failed item is recorded; the others "
                    "go on. Exit status 1 when any failed.")
    _client_args(p)
    p.add_argument("kind", help="job kind, e.g. creature.sample (see `anim4d kinds`)")
    p.add_argument("--seeds", metavar="SEEDS", help="seeds: 1..8, 3,7,11 or a mix (1..3,10)")
    p.add_argument("--inputs", nargs="+", metavar="FILE", help="one job per input file")
    p.add_argument("--param", nargs="+", default=[], metavar="K=V",
                   help="parameters shared by every job")
    p.add_argument("--out", required=True, metavar="DIR", help="batch folder")
    p.add_argument("--embedded", action="store_true",
                   help="run the jobs on a backend started for this batch, not on --server")
    p.add_argument("--workers", type=int, default=1,
                   help="with --embedded: jobs run at once (default %(default)s)")
    p.add_argument("--no-render", action="store_true", help="fetch and index only")
    add_render_options(p, grid=False)
    p.set_defaults(func=_lazy("batch_cmds", "cmd_batch"))

    p = sub.add_parser("demo", help="run the demo: embedded backend, one generated creature, "
                                     "rendered to a turntable MP4")
    p.add_argument("--out", default="out/demo",
                   help="where the result, video and .blend go (default %(default)s)")
    p.add_argument("--seed", type=int, default=7, help="creature seed (default %(default)s)")
    p.add_argument("--resolution", type=int, default=256,
                   help="video width and height (default %(default)s)")
    p.add_argument("--samples", type=int, default=8,
                   help="Cycles samples per pixel, denoised (default %(default)s)")
    p.add_argument("--frames", type=int, default=48,
                   help="frames of animation at 24 fps (default %(default)s)")
    p.add_argument("--no-render", action="store_true", help="stop after fetching the result")
    p.set_defaults(func=local_cmds.cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    import logging  # after parsing: `--help` does without it

    quiet = logging.INFO if args.command == "serve" else logging.WARNING
    logging.basicConfig(level=logging.DEBUG if args.verbose else quiet,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except Anim4DError as err:
        print(f"anim4d: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("anim4d: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
