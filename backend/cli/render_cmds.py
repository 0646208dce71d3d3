"""``anim4d render RESULT... --out DIR``: render result folders headless with Blender's Cycles.

The parser is built without importing anything heavy; the render itself runs in a ``bpy``
subprocess per result (:mod:`backend.blender_render.run`).
"""

from __future__ import annotations

import argparse
import sys


def add_render_command(sub) -> None:
    p = sub.add_parser(
        "render", help="render result folders to PNG frames and an MP4 (headless Blender)",
        description="Render each RESULT folder with Cycles: DIR/<name>/frame_0001.png ..., "
                    "DIR/<name>.mp4 and, with --blend, DIR/<name>.blend (--grid: one scene "
                    "named 'grid'). A broken result is reported and skipped; the exit status "
                    "is 1 when any failed.")
    p.add_argument("results", nargs="+", metavar="RESULT", help="result folders")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    add_render_options(p, grid=True)
    p.set_defaults(func=cmd_render)


def add_render_options(p: argparse.ArgumentParser, grid: bool = True) -> None:
    """The render options, shared by ``render`` and ``batch`` (``grid``: offer ``--grid``)."""
    p.add_argument("--resolution", type=int, default=256,
                   help="width and height in pixels (default %(default)s)")
    p.add_argument("--samples", type=int, default=32,
                   help="Cycles samples per pixel (default %(default)s)")
    p.add_argument("--frames", metavar="START:END",
                   help="scene frames to render, inclusive; frame 1 is the result's first "
                        "(default: all)")
    p.add_argument("--fps", type=float, default=0.0,
                   help="frame rate (default: the result's own, one frame per result frame)")
    p.add_argument("--camera", choices=["fixed", "turntable"], default="fixed",
                   help="fixed 3/4 view or one turn around the object (default %(default)s)")
    p.add_argument("--transparent", action="store_true",
                   help="transparent background in the PNGs (the MP4 shows grey)")
    if grid:
        p.add_argument("--grid", action="store_true",
                       help="all results side by side in one scene and one video "
                            "(DIR/grid.mp4)")
    p.add_argument("--blend", action="store_true", help="also save the scene as DIR/<name>.blend")
    p.add_argument("--device", choices=["cpu", "gpu", "auto"], default="cpu",
                   help="Cycles device; gpu/auto use a GPU when Cycles finds one "
                        "(default %(default)s)")
    p.add_argument("--threads", type=int, default=0, help="render threads (default: all cores)")
    p.add_argument("--denoise", action="store_true", help="denoise the frames (OpenImageDenoise)")


def options_from_args(args: argparse.Namespace):
    """The :class:`RenderOptions` of parsed ``add_render_options`` arguments."""
    from backend.blender_render.options import RenderOptions, parse_frames

    return RenderOptions(resolution=args.resolution, samples=args.samples,
                         frames=parse_frames(args.frames), fps=args.fps, camera=args.camera,
                         transparent=args.transparent, blend=args.blend,
                         grid=getattr(args, "grid", False), device=args.device,
                         threads=args.threads, denoise=args.denoise)


def cmd_render(args: argparse.Namespace) -> int:
    from pathlib import Path

    from backend.blender_render.run import bpy_missing, render_results
    from backend.cli.progress import ProgressDisplay
    from blender_addon.core.client_types import ProgressInfo
    from shared.errors import Anim4DError

    options = options_from_args(args)
    why = bpy_missing()
    if why:
        raise Anim4DError(f"render needs Blender's Python module: {why}", "missing_bpy")
    with ProgressDisplay("render") as bar:
        outcomes = render_results(
            [Path(r) for r in args.results], Path(args.out), options,
            on_progress=lambda stage, fraction, message: bar.update(
                ProgressInfo("", "running", stage, fraction, message)))
    for o in outcomes:
        for notice in o.notices:
            print(f"{o.name}: {notice}")
        if o.ok:
            blend = f", {o.blend}" if o.blend else ""
            print(f"{o.name}: {len(o.frames)} frames in {o.frames[0].parent}, {o.video}{blend}")
        else:
            print(f"anim4d render: {o.error} (skipped)", file=sys.stderr)
    failed = sum(not o.ok for o in outcomes)
    if failed:
        print(f"anim4d render: {failed} of {len(outcomes)} failed", file=sys.stderr)
    return 1 if failed else 0
