"""Transfer benchmark: streaming a result from the server against raw pyzmq sends of its bytes.

A real ``debug.sleep`` job on an embedded server (loopback TCP) produces a 100-frame x
100k-vertex float32 mesh sequence (120 MB of vertices). Measured, each as MB/s of array payload:

- ``ours``: ``Client.stream_result(job)``, from the ``fetch`` request to the last chunk, every
  chunk decoded into numpy arrays (the server memory-maps the result and encodes each chunk);
- ``raw``: the anchor. A separate ROUTER/DEALER pair on loopback TCP, the same socket options
  (``ROUTER_MANDATORY``, the server's ``SNDHWM`` and ``MAXMSGSIZE``, the client's ``RCVHWM``), the
  same pyzmq context, the sender in a thread of this process as the server is. It sends the
  identical buffers (a memory map of the same result file, the same header arrays) in the
  identical chunks with ``copy=False``, one multipart message per chunk with no protocol frames;
  the receiver reads with ``copy=False``. Timed from the receiver's request to the last chunk.
- ``fetch``: ``Client.fetch(job, dir)`` to disk (resumable assembly, then the final ``.npz``):
  reported, not the target.

The target is ``ours / raw >= 0.8`` (ratio of the median rates; the median of per-rep ratios,
each rep running both paths back to back in alternating order, is printed too). Run:
``python bench/transfer.py [--frames 100 --vertices 100000 --reps 21 --chunk-mib 8]``; the last
line printed is one JSON object (``{"bench": "transfer", ...}``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import zmq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backend.jobs.registry import debug_kinds  # noqa: E402
from backend.server.config import ServerConfig  # noqa: E402
from backend.server.embedded import EmbeddedServer  # noqa: E402
from blender_addon.core.client import Client  # noqa: E402
from shared.stream import ResultReader  # noqa: E402

MB = 1e6


def run_ours(client: Client, job: str) -> tuple[float, int, int]:
    """(seconds, payload bytes, chunks) of one ``stream_result`` consumed to the end."""
    t0 = time.perf_counter()
    nbytes = chunks = 0
    for chunk in client.stream_result(job):
        nbytes += sum(a.nbytes for a in chunk.arrays.values())
        chunks += 1
    return time.perf_counter() - t0, nbytes, chunks


def run_fetch(client: Client, job: str, out: Path) -> float:
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    client.fetch(job, out)
    return time.perf_counter() - t0


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


def summarise(times: list[float], nbytes: int) -> dict:
    rates = [nbytes / t / MB for t in times]
    return {"median_mb_s": statistics.median(rates), "best_mb_s": max(rates),
            "median_s": statistics.median(times), "runs": len(times)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--vertices", type=int, default=100_000)
    ap.add_argument("--reps", type=int, default=21, help="timed runs per path (after a warm-up)")
    ap.add_argument("--chunk-mib", type=float, default=None,
                    help="server result chunk size in MiB (default: ServerConfig.chunk_bytes)")
    ap.add_argument("--no-fetch", action="store_true", help="skip the fetch-to-disk runs")
    args = ap.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="anim4d_bench_transfer_"))
    ctx = zmq.Context.instance()
    config = {}
    if args.chunk_mib:
        config["chunk_bytes"] = int(args.chunk_mib * 1024 * 1024)
    srv = EmbeddedServer(work / "data", kinds=debug_kinds(), context=ctx, **config)
    cfg = srv.server.config
    try:
        with Client(srv.address, timeout=60, context=ctx) as client:
            t0 = time.perf_counter()
            job = client.submit("debug.sleep", {"seconds": 0.0, "steps": 1,
                                                "frames": args.frames,
                                                "vertices": args.vertices})
            info = client.wait(job, timeout=600)
            if info.state != "done":
                raise SystemExit(f"the job ended {info.state}: {info.error}")
            made_s = time.perf_counter() - t0
            result_dir = srv.server.store.result_dir(job)
            raw = RawPair(ctx, cfg, raw_chunks(result_dir, cfg.chunk_bytes))
            ours_t, raw_t, fetch_t = [], [], []
            ours_bytes = raw_bytes = chunks = 0
            try:
                for rep in range(args.reps + 1):  # rep 0 warms both paths up
                    if rep % 2:  # alternate the order, so neither path always goes first
                        r, raw_bytes, raw_n = raw.run()
                        t, ours_bytes, chunks = run_ours(client, job)
                    else:
                        t, ours_bytes, chunks = run_ours(client, job)
                        r, raw_bytes, raw_n = raw.run()
                    if rep:
                        ours_t.append(t)
                        raw_t.append(r)
            finally:
                raw.close()
            # Last, as its disk writes would disturb the runs above.
            for rep in range(0 if args.no_fetch else 3):
                f = run_fetch(client, job, work / "fetched")
                if rep:
                    fetch_t.append(f)
    finally:
        srv.stop()
        shutil.rmtree(work, ignore_errors=True)

    if ours_bytes != raw_bytes or chunks != raw_n:
        raise SystemExit(f"paths differ: ours {ours_bytes} B in {chunks} chunks, "
                         f"raw {raw_bytes} B in {raw_n}")
    ours, anchor = summarise(ours_t, ours_bytes), summarise(raw_t, raw_bytes)
    fetch = summarise(fetch_t, ours_bytes) if fetch_t else None
    ratio = ours["median_mb_s"] / anchor["median_mb_s"]
    ratio_best = ours["best_mb_s"] / anchor["best_mb_s"]
    # Each rep runs both paths back to back: the median of the per-rep ratios cancels drift.
    ratio_paired = statistics.median(r / t for r, t in zip(raw_t, ours_t, strict=True))

    print(f"payload {ours_bytes / MB:.1f} MB in {chunks} chunks "
          f"({args.frames} frames x {args.vertices} vertices, chunk_bytes {cfg.chunk_bytes}); "
          f"job made it in {made_s:.1f} s")
    print(f"{'path':34s} {'median MB/s':>12s} {'best MB/s':>10s} {'median s':>9s}")
    rows = [("ours: Client.stream_result", ours), ("raw: ROUTER/DEALER copy=False", anchor)]
    if fetch:
        rows.append(("fetch to disk (not the target)", fetch))
    for name, row in rows:
        print(f"{name:34s} {row['median_mb_s']:12.0f} {row['best_mb_s']:10.0f} "
              f"{row['median_s']:9.3f}")
    print(f"ratio ours/raw: {ratio:.2f} (medians), {ratio_paired:.2f} (median of per-rep "
          f"ratios), {ratio_best:.2f} (bests); target >= 0.8")
    print(json.dumps({
        "bench": "transfer", "frames": args.frames, "vertices": args.vertices,
        "payload_mb": round(ours_bytes / MB, 1), "chunks": chunks,
        "chunk_bytes": cfg.chunk_bytes, "reps": args.reps,
        "ours_mb_s": round(ours["median_mb_s"], 1), "ours_best_mb_s": round(ours["best_mb_s"], 1),
        "raw_mb_s": round(anchor["median_mb_s"], 1),
        "raw_best_mb_s": round(anchor["best_mb_s"], 1),
        "fetch_mb_s": round(fetch["median_mb_s"], 1) if fetch else None,
        "ratio": round(ratio, 3), "ratio_paired": round(ratio_paired, 3),
        "ratio_best": round(ratio_best, 3), "target": 0.8,
        "ok": ratio >= 0.8,
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
