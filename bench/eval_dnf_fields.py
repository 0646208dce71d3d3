"""DNF part 1 results: tables (a)-(d) and shape fitting -> docs/results/dnf_fields.md.

Evaluates a checkpoint (default: the shipped tiny one) on its training instances and on the
held-out clips and unseen shapes of its preset, then writes the Markdown page. The data cache is
reused (``out/dnf/cache``), so after ``anim4d dnf fit-fields`` this takes minutes.

Run: ``python bench/eval_dnf_fields.py [--checkpoint DIR] [--out docs/results/dnf_fields.md]``.
To remake everything from scratch::

    python -m backend.methods.dnf.cli fit-fields --preset tiny \
        --out backend/methods/dnf/checkpoints/tiny
    python bench/eval_dnf_fields.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

COMMAND = ("python -m backend.methods.dnf.cli fit-fields --preset tiny --out "
           "backend/methods/dnf/checkpoints/tiny && python bench/eval_dnf_fields.py")


def main() -> int:
    from backend.cli.dnf_cmds import main as dnf_main

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=str(ROOT / "backend/methods/dnf/checkpoints/tiny"))
    ap.add_argument("--out", default=str(ROOT / "docs/results/dnf_fields.md"))
    ap.add_argument("--cache", default="out/dnf/cache")
    args = ap.parse_args()
    return dnf_main(["evaluate", "--checkpoint", args.checkpoint, "--out", args.out,
                     "--cache", args.cache, "--threads", "1", "--command-line", COMMAND])


if __name__ == "__main__":
    sys.exit(main())
