"""CLI commands that talk to a running backend through the shared client."""

from __future__ import annotations

import argparse
import time
from datetime import datetime
from pathlib import Path

from backend.cli.progress import ProgressDisplay
from blender_addon.core.client import Client
from blender_addon.core.client_types import CurveConfig, JobInfo
from blender_addon.core.import_plan import manifest_notes
from shared.errors import Anim4DError, FormatError, JobError, ParamError
from shared.manifest import read_manifest
from shared.params import parse_cli_params


def connect(args: argparse.Namespace) -> Client:
    curve = None
    if args.server_key or args.client_key:
        if not (args.server_key and args.client_key):
            raise Anim4DError("CURVE needs both --server-key and --client-key", "bad_keys")
        curve = CurveConfig.from_files(args.server_key, args.client_key)
    return Client(args.server, timeout=args.timeout, curve=curve, client_name="anim4d-cli")


def resolve_job(client: Client, prefix: str) -> str:
    """A full job id from a unique prefix (as git and docker accept)."""
    matches = [j.id for j in client.jobs() if j.id.startswith(prefix)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise Anim4DError(f"no job matches {prefix!r} on {client.address} (see `anim4d jobs`)",
                          "unknown_job")
    raise Anim4DError(f"{prefix!r} matches {len(matches)} jobs; give more characters",
                      "ambiguous_job")


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


def cmd_ping(args: argparse.Namespace) -> int:
    with connect(args) as client:
        hello = client.hello()
        rtt = client.ping()
    print(f"{args.server}: anim4d {hello.server_version}, protocol {hello.protocol_version}, "
          f"{len(hello.kinds)} job kinds, round trip {rtt * 1000:.2f} ms")
    return 0


def cmd_kinds(args: argparse.Namespace) -> int:
    with connect(args) as client:
        hello = client.hello()
    for kind in hello.kinds:
        print(f"{kind.name}  ({kind.title}) -> {kind.representation}")
        if kind.description:
            print(f"    {kind.description}")
        for k, spec in enumerate(kind.inputs):
            exts = ", ".join(spec.extensions) or "any file"
            how = "--input" if k == 0 else f"--input-for {spec.name}"
            print(f"    input {spec.name} ({how}): {exts}"
                  f"{'' if spec.required else ' (optional)'}")
        for p in kind.params:
            print(f"    --param {p.name}=...  {p.describe_accepted()}, default {p.default!r}"
                  f"{'  ' + p.help if p.help else ''}")
        if kind.resample_kind:
            print(f"    exact at new times: anim4d resample JOB (through {kind.resample_kind})")
    if hello.models:
        print("models (--param model=NAME):")
        for m in hello.models:
            size = f"{m.get('size', 0) / 1e6:.1f} MB"
            print(f"    {m.get('method')}/{m.get('name')}  {size}  sha256 "
                  f"{str(m.get('sha256'))[:16]}{'  (shipped)' if m.get('shipped') else ''}")
    return 0


def cmd_jobs(args: argparse.Namespace) -> int:
    with connect(args) as client:
        jobs = client.jobs()
    if not jobs:
        print("no jobs")
    for j in jobs:
        status = j.state
        if j.state == "running":
            status += f" {j.fraction * 100:.0f}% {j.stage}"
        elif j.state == "queued" and j.queue_position:
            status += f" #{j.queue_position}"
        elif j.error:
            status += f": {j.error['message']}"
        print(f"{j.id[:12]}  {_when(j.created)}  {j.kind:<22} {status}")
    return 0


def _wait_with_bar(client: Client, job_id: str, title: str) -> JobInfo:
    """Wait for the job with a progress bar; Ctrl-C cancels it on the server."""
    with ProgressDisplay(title) as bar:
        try:
            return client.wait(job_id, on_progress=bar.update)
        except KeyboardInterrupt:
            pass
    print(f"cancelling job {job_id[:12]} ...", flush=True)
    client.cancel(job_id)
    info = client.wait(job_id)
    raise KeyboardInterrupt(f"job {job_id} {info.state}")


def _report(info: JobInfo) -> None:
    if info.state != "done":
        err = info.error or {}
        raise JobError(f"job {info.id[:12]} {info.state}: {err.get('message', 'no reason given')}",
                       err.get("code", "job_failed"))


def _fetch(client: Client, job_id: str, out: str) -> Path:
    t0 = time.perf_counter()
    folder = client.fetch(job_id, out)
    print(f"result: {folder.resolve()} ({time.perf_counter() - t0:.2f} s to fetch)")
    for note in result_notes(folder):
        print(f"note: {note}")
    return folder


def result_notes(folder: Path) -> list[str]:
    """The notes a job left in its result's manifest (``extra.notes``: what the artist should
    know, such as a DS4D side left unseen or a creature still near a training instance)."""
    try:
        return manifest_notes(read_manifest(folder))
    except FormatError:
        return []


def cmd_submit(args: argparse.Namespace) -> int:
    params = parse_cli_params(args.param)
    with connect(args) as client:
        spec = client.hello().kind(args.kind)
        spec.validate_params(params)  # fail early, with the same message the server would give
        inputs: list = list(args.input)
        names = [i.name for i in spec.inputs]
        for group in getattr(args, "input_for", []) or []:
            if group[0] not in names or len(group) < 2:
                raise ParamError(f"--input-for {group[0]}: give an input name and its file(s); "
                                 f"{args.kind}'s inputs: {', '.join(names) or 'none'}",
                                 "bad_input")
            inputs += [(group[0], f) for f in group[1:]]
        job_id = client.submit(args.kind, params, inputs, priority=args.priority)
        print(f"submitted {args.kind} as job {job_id}", flush=True)
        if not args.wait:
            return 0
        info = _wait_with_bar(client, job_id, args.kind)
        _report(info)
        if args.out:
            _fetch(client, job_id, args.out)
    return 0


def cmd_wait(args: argparse.Namespace) -> int:
    with connect(args) as client:
        job_id = resolve_job(client, args.id)
        info = _wait_with_bar(client, job_id, client.job(job_id).kind)
        _report(info)
        print(f"job {job_id} done")
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    with connect(args) as client:
        job_id = resolve_job(client, args.id)
        info = client.cancel(job_id)
    print(f"job {job_id}: {info.state}{' (cancelling)' if info.state == 'running' else ''}")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    with connect(args) as client:
        job_id = resolve_job(client, args.id)
        client.delete(job_id)
    print(f"deleted job {job_id}")
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    with connect(args) as client:
        job_id = resolve_job(client, args.id)
        _fetch(client, job_id, args.out)
    return 0
