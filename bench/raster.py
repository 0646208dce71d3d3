"""CPU rasterizer benchmark: forward + backward time, ratios to baselines, where time goes.

Scene: N Gaussians uniformly in a unit ball (an object-like blob: log-normal scales around
1.2 / N^(1/3), opacities U(0.1, 0.9), RGB colours) seen by one camera at distance 3 (49.1 degree
vertical FoV, STAG4D's), rendered at S x S. The loss is a fixed random linear function of colour
and alpha, so the backward pass computes every gradient.

For each (N, S): our forward and backward times (minimum over ``--repeats`` after a warm-up;
wall clock and process CPU time), a stage breakdown (projection, tile intersection, compositing
forward / backward, projection backward), and a ratio to a baseline: the dense float64 reference
(every Gaussian at every pixel, chunked backward) at N = 10k, S = 256, otherwise a pipeline of
gsplat's pure-torch pieces (``bench/gsplat_torch_pipeline.py``; needs ``pip install gsplat``).
With ``--cuda`` and a GPU: our dispatch vs calling ``gsplat.rasterization`` directly.

Usage::

    python bench/raster.py                        # full table (takes several minutes)
    python bench/raster.py --counts 10000 --sizes 256 --threads 1
    python bench/raster.py --profile              # op-level profile of the largest case
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "bench"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from backend.render import rasterize  # noqa: E402
from backend.render.composite_cpu import composite  # noqa: E402
from backend.render.dispatch import choose_tile_size  # noqa: E402
from backend.render.project import project_gaussians, tile_grid  # noqa: E402
from backend.render.reference import render_dense  # noqa: E402
from backend.render.tiles import intersect_tiles  # noqa: E402


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


def time_ours(params, vm, K, size, gc, ga, repeats, tile_size=None):
    best = {"fwd": math.inf, "bwd": math.inf, "fwd_cpu": math.inf, "bwd_cpu": math.inf}
    for r in range(repeats + 1):
        leaves = _leaves(params)
        t0, c0 = time.perf_counter(), time.process_time()
        out, alpha, meta = rasterize(*leaves, vm, K, size, size, tile_size=tile_size)
        t1, c1 = time.perf_counter(), time.process_time()
        ((out * gc).sum() + (alpha * ga).sum()).backward()
        t2, c2 = time.perf_counter(), time.process_time()
        if r == 0:
            continue  # warm-up
        for k, v in (("fwd", t1 - t0), ("bwd", t2 - t1), ("fwd_cpu", c1 - c0),
                     ("bwd_cpu", c2 - c1)):
            best[k] = min(best[k], v)
    best["n_isects"] = meta["n_isects"]
    best["tile_size"] = meta["tile_size"]
    return best, out.detach(), [p.grad for p in leaves]


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


def time_dense(params, vm, K, size, gc, ga):
    leaves = [p.detach().double().requires_grad_(True) for p in params]
    t0, c0 = time.perf_counter(), time.process_time()
    out, _ = render_dense(*leaves, vm.double(), K.double(), size, size, pixel_chunk=1024,
                          grads=(gc.double(), ga.double()))
    return {"wall": time.perf_counter() - t0, "cpu": time.process_time() - c0}, out, [
        p.grad for p in leaves]


def time_gsplat_torch(params, vm, K, size, gc):
    from gsplat_torch_pipeline import render_and_backward

    leaves = _leaves(params)
    t0, c0 = time.perf_counter(), time.process_time()
    out, stages = render_and_backward(*leaves, vm, K, size, size, grad_color=gc)
    res = {"wall": time.perf_counter() - t0, "cpu": time.process_time() - c0}
    res.update({k: round(v, 3) for k, v in stages.items()})
    return res, out


def time_cuda(n, size, repeats):
    """Our dispatch vs gsplat.rasterization on the GPU (forward + backward, median ms)."""
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
    return {"ours_ms": round(ours, 3), "gsplat_ms": round(theirs, 3),
            "overhead_pct": round(100 * (ours / theirs - 1), 2)}


def _rel(a, b):
    return float((a.double() - b.double()).norm() / b.double().norm())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--counts", type=int, nargs="+", default=[10_000, 50_000, 200_000])
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    ap.add_argument("--tile-size", type=int, default=None, help="default: automatic")
    ap.add_argument("--no-baselines", action="store_true")
    ap.add_argument("--profile", action="store_true", help="op profile of the largest case")
    ap.add_argument("--cuda", action="store_true", help="also compare with gsplat on a GPU")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    hdr = (f"{'N':>7} {'size':>4} {'ts':>2} {'isects':>9} {'fwd s':>7} {'bwd s':>7} {'total':>7} "
           f"{'baseline':>14} {'base s':>8} {'ratio':>6} {'rel.err':>8}  stages (cpu s)")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{platform.processor() or platform.machine()}, load {os.getloadavg()[0]:.2f}")
    print(hdr)
    for n in args.counts:
        for size in args.sizes:
            params, vm, K, gc, ga = make_scene(n, size)
            ours, out, grads = time_ours(params, vm, K, size, gc, ga, args.repeats,
                                         args.tile_size)
            stages_ours(params, vm, K, size, gc, ga, ours["tile_size"])  # warm-up
            stages = stages_ours(params, vm, K, size, gc, ga, ours["tile_size"])
            row = {"n": n, "size": size, **{k: (round(v, 4) if isinstance(v, float) else v)
                                             for k, v in ours.items()}, "stages": stages}
            base_name, base_s, ratio, err = "-", math.nan, math.nan, math.nan
            if not args.no_baselines:
                if n <= 10_000 and size <= 256:
                    base_name = "dense f64"
                    res, bout, _ = time_dense(params, vm, K, size, gc, ga)
                else:
                    base_name = "gsplat-torch"
                    try:
                        res, bout = time_gsplat_torch(params, vm, K, size, gc)
                    except ImportError:
                        res, bout, base_name = None, None, "gsplat missing"
                if res is not None:
                    base_s = res["wall"]
                    ratio = base_s / (ours["fwd"] + ours["bwd"])
                    err = _rel(out, bout)
                    row["baseline"] = {"name": base_name, **res, "ratio": round(ratio, 1),
                                       "image_rel_err": err}
            rows.append(row)
            st = " ".join(f"{k}={v:.3f}" for k, v in stages.items())
            print(f"{n:>7} {size:>4} {ours['tile_size']:>2} {ours['n_isects']:>9} "
                  f"{ours['fwd']:>7.3f} {ours['bwd']:>7.3f} {ours['fwd'] + ours['bwd']:>7.3f} "
                  f"{base_name:>14} {base_s:>8.2f} {ratio:>6.1f} {err:>8.1e}  {st}", flush=True)
    result = {"bench": "raster", "torch": torch.__version__, "threads": torch.get_num_threads(),
              "rows": rows}
    if args.cuda and torch.cuda.is_available():
        result["cuda"] = {f"{n}@{s}": time_cuda(n, s, 20) for n in args.counts for s in args.sizes}
        for k, v in result["cuda"].items():
            print(f"cuda {k}: ours {v['ours_ms']} ms, gsplat {v['gsplat_ms']} ms, "
                  f"overhead {v['overhead_pct']} %")
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        params, vm, K, gc, ga = make_scene(max(args.counts), max(args.sizes))
        leaves = _leaves(params)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            out, alpha, _ = rasterize(*leaves, vm, K, max(args.sizes), max(args.sizes),
                                      tile_size=args.tile_size)
            ((out * gc).sum() + (alpha * ga).sum()).backward()
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))
    print(json.dumps(result))
    _ = choose_tile_size  # re-exported for readers of this script
    return 0


if __name__ == "__main__":
    sys.exit(main())
