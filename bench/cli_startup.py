"""CLI start-up benchmark: ``anim4d --help`` and ``anim4d ping`` against a bare interpreter.

Each command runs as a fresh subprocess, as an artist or a pipeline runs it: the ``anim4d``
console script next to this interpreter (or ``python -c 'from backend.cli.main import main'``
where there is none), with this checkout first on ``PYTHONPATH``. ``ping`` talks to a real
``anim4d serve`` started here on a free loopback port (its start-up is not timed). The anchor is
``python -c pass`` on the same interpreter, measured in the same run; the commands run
interleaved, ``--runs`` times each (default 10; ``--full`` 30), and the table gives medians, the
ratio to the anchor and the start-up beyond the bare interpreter. Also reported: which of numpy,
zmq, rich, torch ``anim4d --help`` imports (none is the goal).
Run: ``python bench/cli_startup.py [--full] [--json PATH] [--runs N]``.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.lib.report import Row, bench_parser, report  # noqa: E402

HELP_TARGET = 2.5  # anim4d --help within 2.5x a bare interpreter (it was 5x: 0.5 s)
HEAVY = ("numpy", "zmq", "rich", "torch")


def anim4d_command() -> list[str]:
    script = Path(sys.executable).parent / "anim4d"
    if script.is_file():
        return [sys.executable, str(script)]
    return [sys.executable, "-c", "import sys; from backend.cli.main import main; "
            "sys.exit(main())"]


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          timeout=120)
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {done.stderr.decode(errors='replace')}")
    return elapsed


def help_imports(env: dict[str, str]) -> list[str]:
    probe = ("import contextlib, io, sys\nfrom backend.cli.main import main\n"
             "with contextlib.redirect_stdout(io.StringIO()):\n"
             "    try:\n        main(['--help'])\n    except SystemExit:\n        pass\n"
             f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], env=env, cwd=ROOT, capture_output=True,
                         text=True, timeout=120, check=True).stdout.strip()
    return [m for m in out.split(",") if m]


def start_server(anim4d: list[str], env: dict[str, str], data: Path) -> tuple[subprocess.Popen,
                                                                               str]:
    address = f"tcp://127.0.0.1:{free_port()}"
    proc = subprocess.Popen([*anim4d, "serve", "--bind", address, "--data-dir", str(data)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    end = time.monotonic() + 120  # a ceiling that only catches a server that never comes up
    while time.monotonic() < end:
        ping = subprocess.run([*anim4d, "ping", "--server", address, "--timeout", "2"], env=env,
                              capture_output=True, timeout=120)
        if ping.returncode == 0:
            return proc, address
        if proc.poll() is not None:
            raise SystemExit(f"anim4d serve exited with {proc.returncode}")
    proc.kill()
    raise SystemExit(f"anim4d serve did not answer on {address}")


def main(argv: list[str] | None = None) -> int:
    ap = bench_parser(__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=None, help="runs per command (default 10)")
    args = ap.parse_args(argv)
    runs = args.runs or (30 if args.full else 10)
    env, anim4d = environment(), anim4d_command()
    heavy = help_imports(env)
    with tempfile.TemporaryDirectory(prefix="anim4d_bench_cli_") as tmp:
        server, address = start_server(anim4d, env, Path(tmp) / "data")
        try:
            commands = {
                "python -c pass": [sys.executable, "-c", "pass"],
                "anim4d --help": [*anim4d, "--help"],
                "anim4d ping": [*anim4d, "ping", "--server", address],
            }
            times: dict[str, list[float]] = {name: [] for name in commands}
            for i in range(runs + 1):  # run 0 warms the file cache
                for name, cmd in commands.items():
                    t = timed(cmd, env)
                    if i:
                        times[name].append(t)
        finally:
            server.terminate()
            server.wait(30)
    med = {name: statistics.median(ts) for name, ts in times.items()}
    anchor = "python -c pass"
    ratio_help = med["anim4d --help"] / med[anchor]
    rows = [
        Row(anchor, med[anchor], "s"),
        Row("anim4d --help", med["anim4d --help"], "s", anchor, med[anchor], ratio_help,
            f"<= {HELP_TARGET}", ratio_help <= HELP_TARGET),
        Row("anim4d ping (to a running server)", med["anim4d ping"], "s", anchor, med[anchor],
            med["anim4d ping"] / med[anchor]),
        Row("anim4d --help beyond python -c pass", med["anim4d --help"] - med[anchor], "s"),
        Row("anim4d ping beyond python -c pass", med["anim4d ping"] - med[anchor], "s"),
    ]
    print(f"{runs} runs per command, medians; `anim4d --help` imports: "
          f"{', '.join(heavy) or 'none of ' + ', '.join(HEAVY)}")
    report("cli_startup", rows, args.json,
           {"runs": runs, "command": anim4d, "help_imports": heavy,
            "times_s": {k: [round(t, 4) for t in v] for k, v in times.items()}})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
