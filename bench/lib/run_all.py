"""Run every benchmark in ``bench/`` and print one combined table (``make bench``).

A benchmark is ``bench/<name>.py`` with a ``__main__`` block, not ``eval_*`` (evaluations write
``docs/results/`` and take long) and not in ``bench/lib/`` (helpers). Each runs as a subprocess
with ``--json FILE`` (and ``--full`` when given here), its output passed through as it comes; one
that fails, times out or writes no JSON is reported and the others still run. The table has one
line per figure: bench, metric, value, anchor, ratio, target. Benchmarks that write rows (see
``bench/lib/report.py``) give their own; one that writes other JSON has its numbers listed under
their keys, and one that does not accept ``--json`` yet runs again without it and its last
printed JSON line is read.

Run: ``python bench/lib/run_all.py [--full] [--only NAME ...] [--json PATH] [--timeout S]``.
Exit status 1 when a benchmark failed or a figure missed its target.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.lib.report import Row, bench_parser, fmt, machine  # noqa: E402

BENCH_DIR = ROOT / "bench"
MAX_FLAT_ROWS = 40


def discover(only: list[str] | None = None) -> tuple[list[Path], list[tuple[Path, str]]]:
    """(benchmarks, [(file, why it is skipped)])."""
    benches, skipped = [], []
    for path in sorted(BENCH_DIR.glob("*.py")):
        if path.name.startswith("eval_") or path.name.startswith("_"):
            continue
        if only and path.stem not in only:
            continue
        if "__main__" not in path.read_text():
            skipped.append((path, "no __main__ block: a helper, it belongs in bench/lib/"))
            continue
        benches.append(path)
    return benches, skipped


def flatten(obj, prefix: str = "", depth: int = 0) -> list[tuple[str, float]]:
    """Numeric leaves of a JSON value as (dotted key, number)."""
    if isinstance(obj, bool) or depth > 4:
        return []
    if isinstance(obj, int | float):
        return [(prefix, float(obj))]
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) \
        else []
    out = []
    for key, value in items:
        if key in ("bench", "machine", "times_s"):
            continue
        out += flatten(value, f"{prefix}.{key}" if prefix else str(key), depth + 1)
    return out


def rows_of(result: dict) -> list[Row]:
    if isinstance(result.get("rows"), list):
        rows = []
        for r in result["rows"]:
            if isinstance(r, dict) and "metric" in r and "value" in r:
                known = {k: r[k] for k in Row.__dataclass_fields__ if k in r}
                rows.append(Row(**known))
        return rows
    flat = flatten(result)
    rows = [Row(key, value, ratio=value if "ratio" in key.lower() else None)
            for key, value in flat[:MAX_FLAT_ROWS]]
    if len(flat) > MAX_FLAT_ROWS:
        rows.append(Row(f"(+{len(flat) - MAX_FLAT_ROWS} more numbers in the JSON)", float("nan")))
    return rows


def last_json_line(text: str) -> dict | None:
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                found = json.loads(line)
            except ValueError:
                continue
            if isinstance(found, dict):
                return found
    return None


def run_process(cmd: list[str], timeout: float) -> tuple[int, str, bool]:
    """(exit status, output, timed out) of ``cmd``, its output passed through as it comes."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, errors="replace",
                            start_new_session=True)
    timed_out = threading.Event()

    def kill() -> None:  # the benchmark and what it started (a server, say)
        timed_out.set()
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (AttributeError, ProcessLookupError):
            proc.kill()

    timer = threading.Timer(timeout, kill)
    timer.start()
    lines = []
    try:
        for line in proc.stdout:
            print(f"  {line}", end="", flush=True)
            lines.append(line)
        rc = proc.wait()
    finally:
        timer.cancel()
    return rc, "".join(lines), timed_out.is_set()


def run_one(path: Path, extra: list[str], timeout: float, json_path: Path) -> dict:
    """Run one benchmark; returns its record (status, rows, its JSON)."""
    t0 = time.monotonic()
    rc, output, timed_out = run_process([sys.executable, str(path), "--json", str(json_path),
                                         *extra], timeout)
    note = ""
    if rc != 0 and "unrecognized arguments: --json" in output:
        note = " (no --json yet: its last JSON line)"
        print("  (it does not accept --json yet: run again without, reading its JSON line)")
        rc, output, timed_out = run_process([sys.executable, str(path), *extra], timeout)
    seconds = time.monotonic() - t0
    result = None
    if json_path.is_file():
        try:
            result = json.loads(json_path.read_text())
        except ValueError:
            result = None
    if result is None:
        result = last_json_line(output)
    if timed_out:
        status = f"TIMEOUT after {timeout:.0f} s"
    elif rc != 0:
        status = f"exit {rc}" + (" (figures kept)" if result else ": FAILED")
    elif result is None:
        status = "FAILED: wrote no JSON"
    else:
        status = "ok"
    return {"bench": path.stem, "file": str(path.relative_to(ROOT)), "status": status + note,
            "rc": rc, "seconds": round(seconds, 1), "tail": output.splitlines()[-5:],
            "rows": [r.__dict__ for r in rows_of(result)] if isinstance(result, dict) else [],
            "result": result}


def combined_table(records: list[dict]) -> str:
    head = ["bench", "metric", "value", "unit", "anchor", "ratio", "target", "ok"]
    body = []
    for rec in records:
        if not rec["status"].startswith("ok"):
            body.append([rec["bench"], rec["status"], "", "", "", "", "", "NO"])
        for r in rec["rows"]:
            ok = "-" if r.get("ok") is None else ("yes" if r["ok"] else "NO")
            anchor = r.get("anchor") or "-"
            if r.get("anchor_value") is not None:
                anchor += f" ({fmt(r['anchor_value'])})"
            body.append([rec["bench"], r["metric"], fmt(r["value"]), r.get("unit") or "",
                         anchor, fmt(r.get("ratio")), r.get("target") or "-", ok])
    widths = [max(len(str(c)) for c in col) for col in zip(head, *body, strict=True)]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True))
                     .rstrip() for line in [head, *body])


def main(argv: list[str] | None = None) -> int:
    ap = bench_parser(__doc__.split("\n")[0])
    ap.set_defaults(json=ROOT / "out" / "bench" / "all.json")
    ap.add_argument("--only", nargs="+", metavar="NAME", help="run only these (file stems)")
    ap.add_argument("--timeout", type=float, default=None,
                    help="seconds per benchmark before it is stopped (default 300; --full 3600)")
    args = ap.parse_args(argv)
    timeout = args.timeout or (3600.0 if args.full else 300.0)
    benches, skipped = discover(args.only)
    for path, why in skipped:
        print(f"skipped bench/{path.name}: {why}")
    records = []
    with tempfile.TemporaryDirectory(prefix="anim4d_bench_") as tmp:
        for path in benches:
            print(f"== bench/{path.name}{' --full' if args.full else ''}", flush=True)
            rec = run_one(path, ["--full"] if args.full else [], timeout,
                          Path(tmp) / f"{path.stem}.json")
            print(f"== bench/{path.name}: {rec['status']} in {rec['seconds']} s", flush=True)
            records.append(rec)
    failed = [r["bench"] for r in records if not r["status"].startswith("ok")]
    missed = [f"{r['bench']}: {row['metric']}" for r in records for row in r["rows"]
              if row.get("ok") is False]
    print()
    print(combined_table(records))
    summary = (f"{len(records)} benchmarks, {len(records) - len(failed)} ok"
               + (f", failed: {', '.join(failed)}" if failed else "")
               + (f"; below target: {'; '.join(missed)}" if missed else ""))
    print(summary)
    combined = {"benches": records, "skipped": [str(p.relative_to(ROOT)) for p, _ in skipped],
                "full": args.full, "machine": machine(), "summary": summary}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(combined, indent=2) + "\n")
    print(f"combined JSON: {args.json}")
    return 1 if failed or missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
