"""Job overhead: how long a small job waits for anything other than its method.

``overhead = submit-to-done - method``, per job: *submit-to-done* is timed at the client, from
``Client.submit`` to the job's ``done`` event (``Client.wait``), over loopback TCP against an
embedded server; *method* is the runner's own time, measured in the worker around the runner call
(``JobRecord.method_s``, kept by the server). What remains is the server, the protocol, starting
the job's process and importing the method. Two modes, each with its own server, measured in the
same run:

- ``warm`` (the default server): each job's process is forked from a fork server that imported
  the worker and every kind's modules before the first job arrived;
- ``cold`` (``warm_workers=False``, the way jobs started before): a fresh interpreter per job,
  which imports the method's modules itself.

The anchor is a ``ping`` round trip on the same connection (the least a job can cost). Each mode
runs one unmeasured job first (the fork server's own start-up, the page cache). With ``--cli``
(on in ``--full``) it also times the command line end to end against a real ``anim4d serve``:
``anim4d submit KIND --param ... --wait`` beside ``anim4d ping``.

Target: the median warm overhead under 0.2 s. Run ``python bench/job_overhead.py [--jobs 15]
[--full] [--json out.json]``; prints a table, then one JSON object (``{"bench": "job_overhead"}``).
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backend.jobs.registry import builtin_kinds  # noqa: E402
from backend.server.embedded import EmbeddedServer  # noqa: E402
from blender_addon.core.client import Client  # noqa: E402

TARGET_S = 0.2
KIND, PARAMS = "creature.procedural", {"frames": 2}


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def p90(xs: list[float]) -> float:
    return sorted(xs)[min(len(xs) - 1, int(0.9 * len(xs)))] if xs else float("nan")


def run_mode(warm: bool, jobs: int, data: Path) -> dict:
    with EmbeddedServer(data, kinds=builtin_kinds(), warm_workers=warm) as srv, \
            Client(srv.address, timeout=300) as c:
        first = c.submit(KIND, PARAMS)  # unmeasured: start-up, page cache
        assert c.wait(first).state == "done"
        pings = [c.ping() for _ in range(jobs)]
        total, method = [], []
        for _ in range(jobs):
            t0 = time.perf_counter()
            job = c.submit(KIND, PARAMS)
            info = c.wait(job)
            total.append(time.perf_counter() - t0)
            assert info.state == "done", info.error
            method.append(srv.server.engine.records[job].method_s)
    overhead = [t - m for t, m in zip(total, method, strict=True)]
    return {"mode": "warm" if warm else "cold", "jobs": jobs,
            "submit_to_done_s": median(total), "method_s": median(method),
            "overhead_s": median(overhead), "overhead_p90_s": p90(overhead),
            "overhead_min_s": min(overhead), "ping_s": median(pings)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_cli(reps: int, data: Path) -> dict:
    """The command line end to end (interpreter start-up included) against ``anim4d serve``."""
    anim4d = [sys.executable, "-m", "backend.cli.main"]
    address = f"tcp://127.0.0.1:{free_port()}"
    server = subprocess.Popen([*anim4d, "serve", "--bind", address, "--data-dir", str(data)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        ping = [*anim4d, "ping", "--server", address, "--timeout", "300"]
        submit = [*anim4d, "submit", KIND, "--server", address, "--timeout", "300", "--wait",
                  "--param", *[f"{k}={v}" for k, v in PARAMS.items()]]
        end = time.monotonic() + 300
        while subprocess.run(ping, capture_output=True).returncode != 0:
            assert time.monotonic() < end, "anim4d serve did not come up"
        subprocess.run(submit, capture_output=True, check=True)  # unmeasured
        times = {"ping": [], "submit": []}
        for _ in range(reps):
            for name, cmd in (("ping", ping), ("submit", submit)):
                t0 = time.perf_counter()
                subprocess.run(cmd, capture_output=True, check=True)
                times[name].append(time.perf_counter() - t0)
    finally:
        server.terminate()
        server.wait(60)
    return {"reps": reps, "cli_ping_s": median(times["ping"]),
            "cli_submit_wait_s": median(times["submit"])}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=None, help="jobs per mode (default 15; --full 50)")
    ap.add_argument("--full", action="store_true", help="more jobs, and the command line timing")
    ap.add_argument("--cli", action="store_true", help="also time the command line end to end")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)
    jobs = args.jobs or (50 if args.full else 15)
    rows = []
    with tempfile.TemporaryDirectory(prefix="anim4d-bench-") as tmp:
        for warm in (True, False):
            rows.append(run_mode(warm, jobs, Path(tmp) / f"data-{warm}"))
        cli = run_cli(10 if args.full else 3, Path(tmp) / "cli") if (args.cli or args.full) \
            else None
    warm, cold = rows
    print(f"job overhead: {KIND} {PARAMS}, {jobs} jobs per mode, medians (seconds)")
    print(f"{'mode':6} {'submit->done':>12} {'method':>8} {'overhead':>9} {'p90':>7} "
          f"{'min':>7} {'ping':>7} {'overhead/ping':>14}")
    for r in rows:
        print(f"{r['mode']:6} {r['submit_to_done_s']:12.3f} {r['method_s']:8.3f} "
              f"{r['overhead_s']:9.3f} {r['overhead_p90_s']:7.3f} {r['overhead_min_s']:7.3f} "
              f"{r['ping_s']:7.4f} {r['overhead_s'] / r['ping_s']:14.0f}")
    ratio = cold["overhead_s"] / warm["overhead_s"]
    ok = warm["overhead_s"] < TARGET_S
    print(f"cold/warm overhead: {ratio:.1f}x; target warm overhead < {TARGET_S} s: "
          f"{'met' if ok else 'NOT met'} ({warm['overhead_s']:.3f} s)")
    if cli:
        print(f"command line (interpreter start-up included), {cli['reps']} runs: "
              f"`anim4d ping` {cli['cli_ping_s']:.2f} s, `anim4d submit {KIND} --wait` "
              f"{cli['cli_submit_wait_s']:.2f} s")
    out = {"bench": "job_overhead", "kind": KIND, "params": PARAMS, "modes": rows,
           "cold_over_warm": ratio, "target_s": TARGET_S, "target_met": ok, "cli": cli}
    print(json.dumps(out))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
