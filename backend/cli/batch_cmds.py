"""``anim4d batch``: run one job kind over seeds or inputs, render each, write an index.

Jobs are submitted as fast as the server takes them (it queues them and runs ``--workers`` at a
time; at a per-client limit the batch waits instead of failing), then waited for in order under
one bar for the whole batch; a failed job is recorded and the batch goes on. Ctrl-C cancels
every job not yet finished; what finished stays on disk and indexed.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import tempfile
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path

from backend.batch.index import BatchEntry, relative, write_index
from backend.batch.plan import BatchItem, parse_seeds, plan_batch
from backend.cli.client_cmds import connect
from backend.cli.progress import ProgressDisplay
from blender_addon.core.client import Client
from blender_addon.core.client_types import JobInfo, ProgressInfo, ServerError
from shared.errors import Anim4DError
from shared.params import parse_cli_params


@contextlib.contextmanager
def _client(args: argparse.Namespace) -> Iterator[Client]:
    """A client of ``--server``, or of a backend embedded for this batch (``--embedded``)."""
    if not args.embedded:
        with connect(args) as client:
            yield client
        return
    from backend.server.embedded import start_embedded_server

    with tempfile.TemporaryDirectory(prefix="anim4d-batch-") as data_dir, \
            start_embedded_server(data_dir, workers=args.workers) as server, \
            Client(server.address, timeout=max(args.timeout, 30.0),
                   client_name="anim4d-batch") as client:
        yield client


class _BatchBar:
    """One bar for the batch: ``done`` whole items plus the current one's fraction."""

    def __init__(self, bar: ProgressDisplay, total: int, phase: str):
        self.bar, self.total, self.phase, self.done = bar, total, phase, 0

    def item(self, name: str, fraction: float = 0.0, stage: str = "", message: str = "") -> None:
        frac = (self.done + min(max(fraction, 0.0), 1.0)) / max(self.total, 1)
        detail = f"{self.done + 1}/{self.total} {name}" + (f": {message}" if message else "")
        self.bar.update(ProgressInfo("", "running", f"{self.phase} {stage}".strip(), frac,
                                     detail))


LIMIT_CODES = ("limit_reached", "rate_limited")  # the server's per-client limits: wait, retry
RATE_RETRY_S = 2.0


def run_jobs(client: Client, items: list[BatchItem], entries: list[BatchEntry],
             root: Path, bar: ProgressDisplay, sleep=time.sleep) -> None:
    """Submit the items in order and wait for each, fetching what finished into
    ``root/results``. Everything the server takes is submitted at once; when it answers with one
    of its per-client limits (queued jobs, submits per minute) the batch waits for its earliest
    job, or a moment, and goes on: a limit slows a batch down, it never fails it."""
    pending = deque(zip(items, entries, strict=True))
    active: deque[tuple[BatchItem, BatchEntry]] = deque()
    prog = _BatchBar(bar, len(items), "jobs")
    told = False
    try:
        while pending or active:
            while pending:
                item, entry = pending[0]
                try:
                    entry.job_id = client.submit(item.kind, item.params, list(item.inputs))
                except ServerError as err:
                    if err.code not in LIMIT_CODES:
                        raise
                    if not told:
                        print(f"\nthe server limits this client ({err}); the batch waits",
                              flush=True)
                        told = True
                    break
                entry.state = "queued"
                active.append(pending.popleft())
            if not active:  # limited with nothing of ours running: a submit rate; wait a moment
                prog.item(pending[0][0].name, 0.0, "waiting", "the server's submit limit")
                sleep(RATE_RETRY_S)
                continue
            item, entry = active.popleft()
            prog.item(item.name)

            def show(p: ProgressInfo, name=item.name) -> None:
                msg = p.message or (f"queued, position {p.queue_position}"
                                    if p.queue_position else "")
                prog.item(name, p.fraction, p.stage or p.state, msg)

            info = client.wait(entry.job_id, on_progress=show)
            _record(client, info, entry, root)
            prog.done += 1
    except KeyboardInterrupt:
        left = [e for _, e in active]
        print(f"\ncancelling {len(left)} unfinished job(s) ...", flush=True)
        for e in left:
            with contextlib.suppress(Anim4DError):
                client.cancel(e.job_id)
                e.state = "cancelled"
        raise


def _record(client: Client, info: JobInfo, entry: BatchEntry, root: Path) -> None:
    entry.state = info.state
    if info.state != "done":
        err = info.error or {}
        entry.error = f"{err.get('code', info.state)}: {err.get('message', 'no reason given')}"
        return
    folder = root / "results" / entry.name
    if folder.exists():
        shutil.rmtree(folder)
    client.fetch(info.id, folder)
    entry.result = relative(folder, root)
    entry.counts = dict((info.result or {}).get("counts", {}))


def cmd_batch(args: argparse.Namespace) -> int:
    params = parse_cli_params(args.param)
    seeds = parse_seeds(args.seeds) if args.seeds else None
    if not seeds and not args.inputs:
        raise Anim4DError("a batch needs --seeds (e.g. 1..8) or --inputs FILE...", "bad_param")
    root = Path(args.out).resolve()
    root.mkdir(parents=True, exist_ok=True)
    render_opts = None if args.no_render else render_options(args)
    with _client(args) as client:
        spec = client.hello().kind(args.kind)
        items = plan_batch(spec, params, seeds, args.inputs)
        for item in items:  # every item's parameters are checked before the first submit
            spec.validate_params(item.params)
        entries = [BatchEntry.for_item(i) for i in items]
        print(f"batch: {len(items)} {args.kind} job(s) -> {root}", flush=True)
        try:
            with ProgressDisplay(f"batch {args.kind}") as bar:
                run_jobs(client, items, entries, root, bar)
        finally:
            write_index(root, args.kind, entries, None)
    if render_opts is not None:
        render_entries(entries, root, render_opts)
    json_path, html_path = write_index(root, args.kind, entries,
                                       render_opts.to_dict() if render_opts else None)
    failed = [e for e in entries if e.state != "done" or e.error]
    print(f"batch done: {len(entries) - len(failed)} of {len(entries)} made")
    for e in failed:
        print(f"  {e.name}: {e.error or e.state}")
    print(f"index: {json_path}\ncontact sheet: {html_path}")
    return 1 if failed else 0


def render_options(args: argparse.Namespace):
    """The render options given on the command line (checked before any job is submitted)."""
    from backend.blender_render.run import bpy_missing
    from backend.cli.render_cmds import options_from_args

    why = bpy_missing()
    if why:
        raise Anim4DError(f"batch renders each result with Blender's Python module: {why}; "
                          "or pass --no-render", "missing_bpy")
    return options_from_args(args)


def render_entries(entries: list[BatchEntry], root: Path, options) -> None:
    """Render every fetched result into ``root/renders`` under one bar; a failed render is
    recorded on its entry (the others still render)."""
    from backend.blender_render.run import render_results

    done = [e for e in entries if e.result]
    if not done:
        return
    with ProgressDisplay("batch render") as bar:
        outcomes = render_results(
            [root / e.result for e in done], root / "renders", options,
            on_progress=lambda stage, fraction, message: bar.update(
                ProgressInfo("", "running", stage, fraction, message)))
    by_name = {o.name: o for o in outcomes}
    for e in done:
        o = by_name.get(e.name)
        if o is None or not o.ok:
            e.error = f"render failed: {o.error if o else 'no render made'}"
            continue
        e.frames = [relative(f, root) for f in o.frames]
        e.still = e.frames[len(e.frames) // 2] if e.frames else None
        e.video = relative(o.video, root)
