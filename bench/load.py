"""Load through the gateway: jobs per second and end-to-end latency, local vs Ray executor.

``clients`` artists at once, each its own connection over loopback TCP to an embedded gateway,
each submitting ``jobs`` trivial jobs (``debug.sleep`` with ``seconds=0``: what is measured is
the gateway, the protocol and the executor, not a method) one after another: submit, wait for
``done``, next. *Latency* is one job's submit-to-done at its client (p50, p99 over all jobs);
*jobs/s* is all jobs over the wall time from the first submit to the last done. Both executors
run in the same run with the same job slots (``--workers``): ``local`` (a forked process per job,
the default) is the anchor, ``ray`` runs each job as a task on a Ray cluster started here on
loopback (``--ray-cpus`` CPUs, no dashboard), or on ``--ray-address``. Each gateway first
runs one unmeasured job per slot (start-up). Bounded: ``--clients`` x ``--jobs`` jobs per
executor, and no new job is submitted past ``--max-seconds``.

Run ``python bench/load.py [--full] [--clients 8] [--jobs 5] [--json out.json]`` (needs
``pip install -e '.[ray]'``); prints a table, then one JSON object (``{"bench": "load"}``).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backend.jobs.registry import debug_kinds  # noqa: E402
from backend.server.embedded import EmbeddedServer  # noqa: E402
from bench.lib.report import Row, bench_parser, report  # noqa: E402
from blender_addon.core.client import Client  # noqa: E402

KIND, PARAMS = "debug.sleep", {"seconds": 0.0, "steps": 1}


def percentile(xs: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100)."""
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, int(round(q / 100 * len(s) + 0.5)) - 1))]


def run_executor(executor: str, data: Path, clients: int, jobs: int, workers: int,
                 deadline: float) -> dict:
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    with EmbeddedServer(data, kinds=debug_kinds(), executor=executor, workers=workers) as srv:
        with Client(srv.address, timeout=300) as c:  # unmeasured: start-up, one per slot
            firsts = [c.submit(KIND, PARAMS) for _ in range(workers)]
            assert all(c.wait(j).state == "done" for j in firsts)

        def artist() -> None:
            with Client(srv.address, timeout=300) as c:
                for _ in range(jobs):
                    if time.monotonic() > deadline:
                        return
                    t0 = time.perf_counter()
                    info = c.wait(c.submit(KIND, PARAMS))
                    with lock:
                        if info.state == "done":
                            latencies.append(time.perf_counter() - t0)
                        else:
                            failures.append(f"{info.state}: {info.error}")

        threads = [threading.Thread(target=artist) for _ in range(clients)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
    return {"executor": executor, "jobs_done": len(latencies), "failed": len(failures),
            "failures": failures[:5], "wall_s": wall,
            "jobs_per_s": len(latencies) / wall if wall > 0 else float("nan"),
            "p50_s": percentile(latencies, 50), "p99_s": percentile(latencies, 99),
            "mean_s": statistics.fmean(latencies) if latencies else float("nan")}


def main(argv: list[str] | None = None) -> int:
    ap = bench_parser(__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=None, help="artists at once (8; --full 20)")
    ap.add_argument("--jobs", type=int, default=None, help="jobs per artist (5; --full 10)")
    ap.add_argument("--workers", type=int, default=2, help="job slots of each gateway (2)")
    ap.add_argument("--ray-cpus", type=int, default=2, help="CPUs of the local Ray cluster (2)")
    ap.add_argument("--ray-address", help="use this Ray cluster instead of starting one")
    ap.add_argument("--max-seconds", type=float, default=120.0,
                    help="per executor, no new job after this (default %(default)s)")
    args = ap.parse_args(argv)
    clients = args.clients or (20 if args.full else 8)
    jobs = args.jobs or (10 if args.full else 5)

    import ray

    if args.ray_address:
        ray.init(address=args.ray_address, log_to_driver=False, configure_logging=False)
    else:
        ray.init(num_cpus=args.ray_cpus, include_dashboard=False, address="local",
                 _node_ip_address="127.0.0.1", log_to_driver=False, configure_logging=False)
    results = {}
    try:
        with tempfile.TemporaryDirectory(prefix="anim4d-load-") as tmp:
            for executor in ("local", "ray"):
                deadline = time.monotonic() + args.max_seconds
                results[executor] = run_executor(executor, Path(tmp) / executor, clients, jobs,
                                                 args.workers, deadline)
    finally:
        ray.shutdown()
    local, on_ray = results["local"], results["ray"]
    rows = [Row("local jobs/s", local["jobs_per_s"], "jobs/s"),
            Row("ray jobs/s", on_ray["jobs_per_s"], "jobs/s", "local jobs/s",
                local["jobs_per_s"], on_ray["jobs_per_s"] / local["jobs_per_s"])]
    for q in ("p50", "p99"):
        rows += [Row(f"local latency {q}", local[f"{q}_s"], "s"),
                 Row(f"ray latency {q}", on_ray[f"{q}_s"], "s", f"local latency {q}",
                     local[f"{q}_s"], on_ray[f"{q}_s"] / local[f"{q}_s"])]
    rows += [Row(f"{r['executor']} jobs failed or not run", clients * jobs - r["jobs_done"],
                 "jobs", target="== 0", ok=r["jobs_done"] == clients * jobs)
             for r in (local, on_ray)]
    print(f"load: {clients} clients x {jobs} jobs of {KIND} {PARAMS}, {args.workers} job slots "
          f"per gateway; Ray: {args.ray_address or f'local, {args.ray_cpus} CPUs'}")
    report("load", rows, args.json, {"clients": clients, "jobs": jobs, "workers": args.workers,
                                     "results": results})
    return 0 if all(r.ok is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
