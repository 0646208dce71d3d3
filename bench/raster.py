"""CPU rasterizer benchmark: forward + backward time, ratios to baselines, where time goes.

Scene: N Gaussians uniformly in a unit ball (an object-like blob: log-normal scales around
1.2 / N^(1/3), opacities U(0.1, 0.9), RGB colours) seen by one camera at distance 3 (49.1 degree
vertical FoV, STAG4D's), rendered at S x S. The loss is a fixed random linear function of colour
and alpha, so the backward pass computes every gradient.

Every contender is timed the same way: one warm-up run, then the best of ``--repeats`` runs of
forward + backward (wall clock and process CPU time). Ours is also split into forward and
backward, and a stage breakdown (projection, tile intersection, compositing forward / backward,
projection backward) is printed. The baseline of a case, run in the same process right after
ours, is the dense float64 reference (every Gaussian at every pixel, chunked backward) for small
cases (N x S^2 up to 10k x 256^2), otherwise a pipeline of gsplat's pure-torch pieces
(``bench/lib/gsplat_torch_pipeline.py``; needs ``pip install -e '.[cuda]'``, skipped without
gsplat). With ``--cuda`` and a GPU: our dispatch vs calling ``gsplat.rasterization`` directly.

Usage::

    python bench/raster.py                        # default case, under a minute
    python bench/raster.py --full                 # the sizes of docs/results/raster.md (long)
    python bench/raster.py --counts 10000 --sizes 256 --threads 1 --json out/raster.json
    python bench/raster.py --profile              # op-level profile of the largest case

Prints a table, then the result as one JSON line (the last line of stdout); ``--json PATH`` also
writes it to PATH. Exit status 0 when every case ran.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "bench" / "lib"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from backend.render import rasterize  # noqa: E402
from backend.render.composite_cpu import composite  # noqa: E402
from backend.render.project import project_gaussians, tile_grid  # noqa: E402
from backend.render.reference import render_dense  # noqa: E402
from backend.render.tiles import intersect_tiles  # noqa: E402
from bench.lib.report import emit_json_line  # noqa: E402


def make_scene(n: int, size: int, seed: int = 0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    d = torch.randn(n, 3, generator=g)
    d = d / d.norm(dim=-1, keepdim=True)
    means = d * torch.rand(n, 1, generator=g) ** (1 / 3)
    quats = torch.randn(n, 4, generator=g)
    scales = 1.2 / n ** (1 / 3) * torch.exp(0.3 * torch.randn(n, 3, generator=g))
    opac = 0.1 + 0.8 * torch.rand(n, generator=g)
    cols = torch.rand(n, 3, generator=g)
    vm = torch.eye(4)[None].clone()
    vm[0, 2, 3] = 3.0
    f = 0.5 * size / math.tan(math.radians(49.1 / 2))
    K = torch.tensor([[f, 0, size / 2], [0, f, size / 2], [0, 0, 1.0]])[None]
    gc = torch.randn(1, size, size, 3, generator=g)
    ga = torch.randn(1, size, size, 1, generator=g)
    params = [t.to(dtype) for t in (means, quats, scales, opac, cols)]
    return params, vm.to(dtype), K.to(dtype), gc.to(dtype), ga.to(dtype)


def _leaves(params):
    return [p.detach().clone().requires_grad_(True) for p in params]


def best_of(run, repeats: int) -> dict:
    """Call ``run()`` once to warm up, then ``repeats`` times; keep the fastest of each timer.

    ``run`` returns a dict of named durations in seconds (at least ``wall`` and ``cpu``) and may
    add other entries (kept from the last call).
    """
    best: dict = {}
    for r in range(repeats + 1):
        res = run()
        if r == 0:
            continue  # warm-up: imports, allocator, caches
        for k, v in res.items():
            best[k] = min(best.get(k, math.inf), v) if isinstance(v, float) else v
    return best


def time_ours(params, vm, K, size, gc, ga, repeats, tile_size=None):
    last = {}

    def run():
        leaves = _leaves(params)
        t0, c0 = time.perf_counter(), time.process_time()
        out, alpha, meta = rasterize(*leaves, vm, K, size, size, tile_size=tile_size)
        t1, c1 = time.perf_counter(), time.process_time()
        ((out * gc).sum() + (alpha * ga).sum()).backward()
        t2, c2 = time.perf_counter(), time.process_time()
        last.update(out=out.detach(), grads=[p.grad for p in leaves])
        return {"wall": t2 - t0, "cpu": c2 - c0, "fwd": t1 - t0, "bwd": t2 - t1,
                "fwd_cpu": c1 - c0, "bwd_cpu": c2 - c1, "n_isects": meta["n_isects"],
                "tile_size": meta["tile_size"]}

    best = best_of(run, repeats)
    return best, last["out"], last["grads"]


def stages_ours(params, vm, K, size, gc, ga, tile_size):
    """Process CPU seconds per stage of one forward + backward."""
    means, quats, scales, opac, cols = _leaves(params)
    c = [time.process_time()]
    pr = project_gaussians(means, quats, scales, opac, vm, K, size, size)
    c.append(time.process_time())
    isect = intersect_tiles(pr.means2d, pr.radii, pr.depths, tile_size,
                            *tile_grid(size, size, tile_size))
    c.append(time.process_time())
    out, alpha = composite(pr.means2d, pr.conics, pr.opacities, cols[None], isect, size, size)
    c.append(time.process_time())
    loss = (out * gc).sum() + (alpha * ga).sum()
    grads = torch.autograd.grad(loss, [pr.means2d, pr.conics, pr.opacities, cols],
                                retain_graph=True)
    c.append(time.process_time())
    torch.autograd.grad([pr.means2d, pr.conics, pr.opacities], [means, quats, scales, opac],
                        list(grads[:3]))
    c.append(time.process_time())
    names = ("projection", "isect", "composite_fwd", "composite_bwd", "projection_bwd")
    return {k: round(b - a, 4) for k, a, b in zip(names, c[:-1], c[1:], strict=True)}


def time_dense(params, vm, K, size, gc, ga, repeats):
    last = {}

    def run():
        leaves = [p.detach().double().requires_grad_(True) for p in params]
        t0, c0 = time.perf_counter(), time.process_time()
        out, _ = render_dense(*leaves, vm.double(), K.double(), size, size, pixel_chunk=1024,
                              grads=(gc.double(), ga.double()))
        last["out"] = out
        return {"wall": time.perf_counter() - t0, "cpu": time.process_time() - c0}

    return best_of(run, repeats), last["out"]


def time_gsplat_torch(params, vm, K, size, gc, repeats):
    from gsplat_torch_pipeline import render_and_backward

    last = {}

    def run():
        leaves = _leaves(params)
        t0, c0 = time.perf_counter(), time.process_time()
        out, stages = render_and_backward(*leaves, vm, K, size, size, grad_color=gc)
        last["out"] = out
        return {"wall": time.perf_counter() - t0, "cpu": time.process_time() - c0,
                **{k: float(v) for k, v in stages.items()}}

    res = best_of(run, repeats)
    return {k: round(v, 3) if k not in ("wall", "cpu") else v for k, v in res.items()}, last["out"]


#: Dense float64 baseline up to this many (Gaussian, pixel) pairs (10k Gaussians at 256^2).
DENSE_MAX_PAIRS = 10_000 * 256 * 256
DEFAULT_CASES = [(2_000, 64)]
FULL_COUNTS, FULL_SIZES = [10_000, 50_000, 200_000], [256, 512]


def time_cuda(n, size, repeats):
    """Our dispatch vs gsplat.rasterization on the GPU (forward + backward, median ms), and our
    pure-torch path on the GPU (what a CUDA machine without gsplat gets) as a ratio to gsplat."""
    import gsplat

    params, vm, K, gc, ga = make_scene(n, size)
    dev = torch.device("cuda")
    params = [p.to(dev) for p in params]
    vm, K, gc, ga = vm.to(dev), K.to(dev), gc.to(dev), ga.to(dev)

    def run(fn):
        times = []
        for _ in range(repeats + 3):
            leaves = _leaves(params)
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            out, alpha, _ = fn(*leaves, vm, K, size, size)
            ((out * gc).sum() + (alpha * ga).sum()).backward()
            torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        times = sorted(times[3:])
        return times[len(times) // 2] * 1e3

    ours, theirs = run(rasterize), run(gsplat.rasterization)
    torch_path = run(functools.partial(rasterize, backend="torch"))
    return {"ours_ms": round(ours, 3), "gsplat_ms": round(theirs, 3),
            "overhead_pct": round(100 * (ours / theirs - 1), 2),
            "torch_path_ms": round(torch_path, 3),
            "torch_path_over_gsplat": round(torch_path / theirs, 2)}


def _rel(a, b):
    return float((a.double() - b.double()).norm() / b.double().norm())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true",
                    help=f"N in {FULL_COUNTS} x S in {FULL_SIZES} (long: baselines take minutes)")
    ap.add_argument("--counts", type=int, nargs="+", default=None, help="N (with --sizes)")
    ap.add_argument("--sizes", type=int, nargs="+", default=None, help="S (with --counts)")
    ap.add_argument("--repeats", type=int, default=3, help="best of this many, after a warm-up")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    ap.add_argument("--tile-size", type=int, default=None, help="default: automatic")
    ap.add_argument("--no-baselines", action="store_true")
    ap.add_argument("--profile", action="store_true", help="op profile of the largest case")
    ap.add_argument("--cuda", action="store_true", help="also compare with gsplat on a GPU")
    ap.add_argument("--json", type=Path, default=None, help="also write the JSON result here")
    args = ap.parse_args(argv)
    if args.counts or args.sizes or args.full:
        counts = args.counts or (FULL_COUNTS if args.full else [DEFAULT_CASES[0][0]])
        sizes = args.sizes or (FULL_SIZES if args.full else [DEFAULT_CASES[0][1]])
        cases = [(n, s) for n in counts for s in sizes]
    else:
        cases = list(DEFAULT_CASES)
    torch.set_num_threads(args.threads)
    rows = []
    hdr = (f"{'N':>7} {'size':>4} {'ts':>2} {'isects':>9} {'fwd s':>7} {'bwd s':>7} {'total':>7} "
           f"{'baseline':>14} {'base s':>8} {'ratio':>6} {'cpu r.':>6} {'rel.err':>8}  "
           "stages (cpu s)")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{platform.processor() or platform.machine()}, load {os.getloadavg()[0]:.2f}; "
          f"every time is the best of {args.repeats} after a warm-up")
    print(hdr)
    for n, size in cases:
        params, vm, K, gc, ga = make_scene(n, size)
        ours, out, grads = time_ours(params, vm, K, size, gc, ga, args.repeats, args.tile_size)
        stages_ours(params, vm, K, size, gc, ga, ours["tile_size"])  # warm-up
        stages = stages_ours(params, vm, K, size, gc, ga, ours["tile_size"])
        total = ours["fwd"] + ours["bwd"]
        row = {"n": n, "size": size, "total": round(total, 4),
               **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in ours.items()},
               "stages": stages}
        base_name, base_s, ratio, ratio_cpu, err = "-", math.nan, math.nan, math.nan, math.nan
        if not args.no_baselines:
            res = None
            if n * size * size <= DENSE_MAX_PAIRS:
                base_name = "dense f64"
                res, bout = time_dense(params, vm, K, size, gc, ga, args.repeats)
            else:
                base_name = "gsplat-torch"
                try:
                    res, bout = time_gsplat_torch(params, vm, K, size, gc, args.repeats)
                except ImportError:
                    base_name = "gsplat missing"
            if res is not None:
                base_s = res["wall"]
                ratio = base_s / total  # wall clock, best of each
                ratio_cpu = res["cpu"] / ours["cpu"]  # process CPU time: robust to a busy host
                err = _rel(out, bout)
                row["baseline"] = {"name": base_name, **res, "ratio": round(ratio, 1),
                                   "ratio_cpu": round(ratio_cpu, 1), "image_rel_err": err}
            else:
                row["baseline"] = {"name": base_name}
        rows.append(row)
        st = " ".join(f"{k}={v:.3f}" for k, v in stages.items())
        print(f"{n:>7} {size:>4} {ours['tile_size']:>2} {ours['n_isects']:>9} "
              f"{ours['fwd']:>7.3f} {ours['bwd']:>7.3f} {total:>7.3f} "
              f"{base_name:>14} {base_s:>8.2f} {ratio:>6.1f} {ratio_cpu:>6.1f} {err:>8.1e}  {st}",
              flush=True)
    result = {"bench": "raster", "torch": torch.__version__, "threads": torch.get_num_threads(),
              "repeats": args.repeats, "timing": "best of repeats after one warm-up, every "
              "contender", "load_avg": round(os.getloadavg()[0], 2), "rows": rows}
    if args.cuda and torch.cuda.is_available():
        result["cuda"] = {f"{n}@{s}": time_cuda(n, s, 20) for n, s in cases}
        for k, v in result["cuda"].items():
            print(f"cuda {k}: ours {v['ours_ms']} ms, gsplat {v['gsplat_ms']} ms, "
                  f"overhead {v['overhead_pct']} %; our torch path on CUDA "
                  f"{v['torch_path_ms']} ms ({v['torch_path_over_gsplat']}x gsplat)", flush=True)
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        n, size = max(cases, key=lambda c: c[0] * c[1] * c[1])
        params, vm, K, gc, ga = make_scene(n, size)
        leaves = _leaves(params)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            out, alpha, _ = rasterize(*leaves, vm, K, size, size, tile_size=args.tile_size)
            ((out * gc).sum() + (alpha * ga).sum()).backward()
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))
    return emit_json_line(result, args.json)


if __name__ == "__main__":
    sys.exit(main())
