"""Transfer benchmark: a result streamed and fetched to disk, against raw pyzmq of its bytes.

A real ``debug.sleep`` job on an embedded server (loopback TCP) produces a mesh sequence of
``frames`` x ``vertices`` float32 (default 40 x 100k, 48 MB; ``--full``: 100 x 100k, 120 MB).
Measured, each as MB/s of vertex and header array payload, one rep running every path back to
back in rotating order:

- ``raw``: the anchor. A separate ROUTER/DEALER pair on loopback TCP, the same socket options
  (``ROUTER_MANDATORY``, the server's ``SNDHWM`` and ``MAXMSGSIZE``, the client's ``RCVHWM``), the
  same pyzmq context, the sender in a thread of this process as the server is. It sends the
  identical buffers (a memory map of the same result file, the same header arrays) in the
  identical chunks with ``copy=False``, one multipart message per chunk with no protocol frames;
  the receiver reads with ``copy=False`` into memory. Timed from the receiver's request to the
  last chunk.
- ``stream``: ``Client.stream_result(job)``, from the ``fetch`` request to the last chunk, every
  chunk decoded into numpy arrays. Target ``stream / raw >= 0.8``.
- ``fetch``: ``Client.fetch(job, dir)`` to disk, the path artists use (``anim4d fetch``, ``submit
  --out``, the add-on): the complete result folder, ``manifest.json`` written. The client is
  already connected (its start-up is excluded; ``bench/cli_startup.py`` measures that). Target
  ``fetch / raw >= 0.5``.
- ``np.save``: the same vertex array written with ``np.save`` into the same folder (informative:
  what the disk takes).

Ratios are the median of per-rep ratios (each rep runs the paths back to back, which cancels the
drift of a shared machine); the ratio of the median rates is printed too. Run:
``python bench/transfer.py [--full] [--json PATH] [--reps N] [--chunk-mib 8]``.
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import zmq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backend.jobs.registry import debug_kinds  # noqa: E402
from backend.server.config import ServerConfig  # noqa: E402
from backend.server.embedded import EmbeddedServer  # noqa: E402
from bench.lib.report import Row, bench_parser, report  # noqa: E402
from blender_addon.core.client import Client  # noqa: E402
from shared.npzmap import npz_memmap  # noqa: E402
from shared.stream import ResultReader  # noqa: E402

MB = 1e6
STREAM_TARGET, FETCH_TARGET = 0.8, 0.5


def run_stream(client: Client, job: str) -> tuple[float, int, int]:
    """(seconds, payload bytes, chunks) of one ``stream_result`` consumed to the end."""
    t0 = time.perf_counter()
    nbytes = chunks = 0
    for chunk in client.stream_result(job):
        nbytes += sum(a.nbytes for a in chunk.arrays.values())
        chunks += 1
    return time.perf_counter() - t0, nbytes, chunks


def run_fetch(client: Client, job: str, out: Path) -> float:
    """Seconds of one ``Client.fetch`` into a fresh ``out`` (removed afterwards, untimed)."""
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    client.fetch(job, out)
    elapsed = time.perf_counter() - t0
    shutil.rmtree(out, ignore_errors=True)
    return elapsed


def run_np_save(vertices: np.ndarray, folder: Path) -> float:
    path = folder / "np_save.npy"
    t0 = time.perf_counter()
    np.save(path, vertices)
    elapsed = time.perf_counter() - t0
    path.unlink()
    return elapsed


class RawPair:
    """The anchor: a ROUTER/DEALER pair on loopback TCP; the ROUTER's thread answers each b"go"
    with every chunk, ``copy=False``, blocking sends (the ideal sender)."""

    def __init__(self, ctx: zmq.Context, cfg: ServerConfig, chunks: list[list]):
        self.chunks = chunks
        self.router = ctx.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 0)
        self.router.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.router.setsockopt(zmq.SNDHWM, cfg.sndhwm)
        self.router.setsockopt(zmq.RCVHWM, 256)
        self.router.setsockopt(zmq.MAXMSGSIZE, cfg.max_message_bytes + 1024 * 1024)
        port = self.router.bind_to_random_port("tcp://127.0.0.1")
        self.dealer = ctx.socket(zmq.DEALER)
        self.dealer.setsockopt(zmq.LINGER, 0)
        self.dealer.setsockopt(zmq.RCVHWM, 64)
        self.dealer.setsockopt(zmq.MAXMSGSIZE, 1 << 30)
        self.dealer.connect(f"tcp://127.0.0.1:{port}")
        self.thread = threading.Thread(target=self._serve, daemon=True, name="raw-sender")
        self.thread.start()

    def _serve(self) -> None:
        while True:
            identity, request = self.router.recv_multipart()
            if request == b"stop":
                return
            for buffers in self.chunks:
                self.router.send_multipart([identity, *buffers], copy=False)

    def run(self) -> tuple[float, int, int]:
        t0 = time.perf_counter()
        self.dealer.send(b"go")
        nbytes = 0
        for _ in self.chunks:
            frames = self.dealer.recv_multipart(copy=False)
            nbytes += sum(len(f.buffer) for f in frames)
        return time.perf_counter() - t0, nbytes, len(self.chunks)

    def close(self) -> None:
        self.dealer.send(b"stop")
        self.thread.join(5)
        self.dealer.close(linger=0)
        self.router.close(linger=0)


def raw_chunks(result_dir: Path, chunk_bytes: int) -> list[list]:
    """The buffers of every chunk the server sends for this result, in the same order and sizes:
    the same memory map of the same file and the same header arrays."""
    reader = ResultReader(result_dir, chunk_bytes)
    out = []
    for chunk in reader:
        out.append([memoryview(a).cast("B") for a in chunk.arrays.values() if a.nbytes])
    return out


def rate(times: list[float], nbytes: int) -> float:
    """Median MB/s."""
    return nbytes / statistics.median(times) / MB


def main(argv: list[str] | None = None) -> int:
    ap = bench_parser(__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=None, help="default 40; --full 100")
    ap.add_argument("--vertices", type=int, default=100_000)
    ap.add_argument("--reps", type=int, default=None,
                    help="timed reps (after a warm-up); default 15, --full 21")
    ap.add_argument("--chunk-mib", type=float, default=None,
                    help="server result chunk size in MiB (default: ServerConfig.chunk_bytes)")
    args = ap.parse_args(argv)
    frames = args.frames or (100 if args.full else 40)
    reps = args.reps or (21 if args.full else 15)

    work = Path(tempfile.mkdtemp(prefix="anim4d_bench_transfer_"))
    ctx = zmq.Context.instance()
    config = {}
    if args.chunk_mib:
        config["chunk_bytes"] = int(args.chunk_mib * 1024 * 1024)
    srv = EmbeddedServer(work / "data", kinds=debug_kinds(), context=ctx, **config)
    cfg = srv.server.config
    times: dict[str, list[float]] = {"raw": [], "stream": [], "fetch": [], "np.save": []}
    nbytes: dict[str, int] = {}
    try:
        with Client(srv.address, timeout=60, context=ctx) as client:
            t0 = time.perf_counter()
            job = client.submit("debug.sleep", {"seconds": 0.0, "steps": 1, "frames": frames,
                                                "vertices": args.vertices})
            info = client.wait(job, timeout=600)
            if info.state != "done":
                raise SystemExit(f"the job ended {info.state}: {info.error}")
            made_s = time.perf_counter() - t0
            result_dir = srv.server.store.result_dir(job)
            vertices = np.array(npz_memmap(result_dir / "sequence.npz", "vertices"))
            raw = RawPair(ctx, cfg, raw_chunks(result_dir, cfg.chunk_bytes))
            paths = {
                "raw": lambda: raw.run(),
                "stream": lambda: run_stream(client, job),
                "fetch": lambda: (run_fetch(client, job, work / "fetched"), None, None),
                "np.save": lambda: (run_np_save(vertices, work), vertices.nbytes, 1),
            }
            names = list(paths)
            try:
                for rep in range(reps + 1):  # rep 0 warms every path up
                    for name in names[rep % len(names):] + names[:rep % len(names)]:
                        t, n, _ = paths[name]()
                        if n is not None:
                            nbytes[name] = n
                        if rep:
                            times[name].append(t)
            finally:
                raw.close()
    finally:
        srv.stop()
        shutil.rmtree(work, ignore_errors=True)

    if nbytes["stream"] != nbytes["raw"]:
        raise SystemExit(f"paths differ: stream {nbytes['stream']} B, raw {nbytes['raw']} B")
    nbytes["fetch"] = nbytes["raw"]
    rates = {name: rate(times[name], nbytes[name]) for name in times}

    def paired(name: str) -> float:
        return statistics.median(r / t for r, t in zip(times["raw"], times[name], strict=True))

    anchor = "raw pyzmq copy=False"
    rows = [
        Row("raw: ROUTER/DEALER copy=False, into memory", rates["raw"], "MB/s"),
        Row("stream: Client.stream_result", rates["stream"], "MB/s", anchor, rates["raw"],
            paired("stream"), f">= {STREAM_TARGET}", paired("stream") >= STREAM_TARGET),
        Row("fetch: Client.fetch to disk", rates["fetch"], "MB/s", anchor, rates["raw"],
            paired("fetch"), f">= {FETCH_TARGET}", paired("fetch") >= FETCH_TARGET),
        Row("np.save of the vertices, same folder", rates["np.save"], "MB/s"),
    ]
    print(f"payload {nbytes['raw'] / MB:.1f} MB ({frames} frames x {args.vertices} vertices, "
          f"chunk_bytes {cfg.chunk_bytes}), {reps} reps; job made it in {made_s:.1f} s; ratios: "
          f"median of per-rep ratios")
    print(f"ratio of median rates: stream/raw {rates['stream'] / rates['raw']:.2f}, "
          f"fetch/raw {rates['fetch'] / rates['raw']:.2f}")
    details = {"frames": frames, "vertices": args.vertices, "reps": reps,
               "payload_mb": round(nbytes["raw"] / MB, 1), "chunk_bytes": cfg.chunk_bytes,
               "times_s": {k: [round(t, 4) for t in v] for k, v in times.items()}}
    report("transfer", rows, args.json, details)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
