"""The benchmark convention: common arguments, result rows, the table, the JSON.

Every ``bench/<name>.py`` (not ``eval_*``, which write ``docs/results/``) is a benchmark that

- runs at a default size in under a minute; ``--full`` runs the sizes its issue names;
- prints a table, and with ``--json PATH`` writes ``{"bench", "rows", "details"}`` there;
- compares against a named anchor measured in the same run, as a ratio.

A row is one figure: ``metric``, ``value`` and ``unit``; the ``anchor`` it is compared with and
that anchor's value, the ``ratio`` and the ``target`` it must meet (``ok``). ``bench/lib/
run_all.py`` (``make bench``) runs every benchmark and merges their rows into one table.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass
class Row:
    """One measured figure of a benchmark, optionally against an anchor."""

    metric: str
    value: float
    unit: str = ""
    anchor: str = ""
    anchor_value: float | None = None
    ratio: float | None = None
    target: str = ""  # e.g. ">= 0.5" (on the ratio), empty when the row is informative only
    ok: bool | None = None


def bench_parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the convention's ``--full`` and ``--json PATH``."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--full", action="store_true",
                    help="the sizes the issue names (slower); default: a size that runs < 1 min")
    ap.add_argument("--json", type=Path, metavar="PATH", help="write the results as JSON here")
    return ap


def fmt(x: float | None, digits: int = 3) -> str:
    if x is None:
        return "-"
    if x != x:  # NaN
        return "nan"
    return f"{x:.{digits}g}" if abs(x) < 1000 else f"{x:.0f}"


def table(rows: list[Row], bench: str | None = None) -> str:
    """Rows as an aligned text table (``bench`` adds a first column)."""
    head = (["bench"] if bench is not None else []) + ["metric", "value", "unit", "anchor",
                                                      "anchor value", "ratio", "target", "ok"]
    body = [([bench] if bench is not None else [])
            + [r.metric, fmt(r.value), r.unit, r.anchor or "-", fmt(r.anchor_value),
               fmt(r.ratio), r.target or "-", "-" if r.ok is None else ("yes" if r.ok else "NO")]
            for r in rows]
    widths = [max(len(str(c)) for c in col) for col in zip(head, *body, strict=True)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
             for line in [head, *body]]
    return "\n".join(lines)


def machine() -> dict:
    """What the figures depend on beyond the code: CPUs and the load when measured."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {"cpus": os.cpu_count(), "load_1min": round(load[0], 2)}


def report(bench: str, rows: list[Row], json_path: Path | None, details: dict | None = None
           ) -> dict:
    """Print the table and the JSON line; write the JSON to ``json_path`` when given."""
    result = {"bench": bench, "rows": [asdict(r) for r in rows],
              "details": {**(details or {}), "machine": machine()}}
    print(table(rows))
    print(json.dumps(result))
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(result, indent=2) + "\n")
    return result


def emit_json_line(result: dict, json_path: Path | None) -> int:
    """For benches whose result is one dict (not rows): print it as the last line (``run_all``
    reads that line) and write it to ``json_path`` when given. Returns exit status 0."""
    line = json.dumps(result)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(line + "\n")
    print(line)
    return 0
