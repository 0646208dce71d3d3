"""``anim4d --help`` starts light: building the parser (and printing help) imports neither numpy,
zmq, rich nor torch; each command imports what it needs when it runs. Checked on ``sys.modules``
in a fresh interpreter (deterministic; how long start-up takes is bench/cli_startup.py's job)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("numpy", "zmq", "rich", "torch", "asyncio")

PROBE = """
import contextlib, io, json, sys
from backend.cli.main import main
argv = json.loads(sys.argv[1])
with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.redirect_stderr(io.StringIO()):
    try:
        main(argv)
    except SystemExit:
        pass
heavy = sorted(m for m in json.loads(sys.argv[2]) if m in sys.modules)
print(json.dumps({"heavy": heavy, "help": out.getvalue()}))
"""


def probe(argv: list[str]) -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(argv), json.dumps(HEAVY)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("argv", [["--help"], ["submit", "--help"], ["serve", "--help"],
                                  ["fetch", "--help"], ["resample", "--help"],
                                  ["render", "--help"], ["batch", "--help"],
                                  ["models", "--help"], ["models", "fetch", "--help"]])
def test_help_imports_nothing_heavy(argv):
    got = probe(argv)
    assert "usage: anim4d" in got["help"]
    assert got["heavy"] == []


def test_a_command_still_imports_what_it_needs():
    """The probe can see heavy imports: a client command (refused: nothing listens on port 9)
    loads numpy and zmq."""
    got = probe(["ping", "--server", "tcp://127.0.0.1:9", "--timeout", "0.5"])
    assert {"numpy", "zmq"} <= set(got["heavy"])
