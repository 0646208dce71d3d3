"""``anim4d dnf ...``: prepare data, train the fields, evaluate, decode, fit a shape.

Wire into ``backend/cli/main.py`` with one line after the other sub-parsers::

    from backend.cli.dnf_cmds import add_dnf_commands; add_dnf_commands(sub)

Torch and the method are imported only when a ``dnf`` command runs. Without that wiring,
``python -m backend.methods.dnf.cli ...`` runs the same commands.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

DEFAULT_OUT = Path("out") / "dnf"
SHIPPED = Path(__file__).resolve().parents[1] / "methods" / "dnf" / "checkpoints" / "tiny"


class LineProgress:
    """``report(stage, fraction, message)``: a rich bar on a terminal, else a line per second."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self._last = ("", 0.0)
        self._bar = None
        self._task = None

    def __call__(self, stage: str, fraction: float, message: str) -> None:
        if self.tty:
            if self._bar is None:
                from rich.console import Console
                from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

                self._bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                                     TextColumn("{task.percentage:>5.1f}%"), TimeElapsedColumn(),
                                     TextColumn("{task.fields[detail]}"),
                                     console=Console(file=self.stream))
                self._bar.start()
                self._task = self._bar.add_task(stage, total=1.0, detail="")
            self._bar.update(self._task, completed=fraction, description=stage, detail=message)
            return
        now = time.monotonic()
        if stage != self._last[0] or now - self._last[1] >= 2.0 or fraction >= 1.0:
            print(f"[{stage} {fraction * 100:5.1f}%] {message}", file=self.stream, flush=True)
            self._last = (stage, now)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def _setup(args: argparse.Namespace):
    import torch

    from backend.methods.dnf.config import get_preset

    preset = get_preset(args.preset)
    extra = {}
    if getattr(args, "animals_dir", None):
        extra["animals_dir"] = args.animals_dir
    if getattr(args, "anime_dir", None):
        extra["anime_dirs"] = tuple(args.anime_dir)
    if extra:
        from dataclasses import replace

        preset = replace(preset, data=replace(preset.data, **extra))
    if args.threads or preset.threads:
        torch.set_num_threads(args.threads or preset.threads)
    return preset


def _prepare(args: argparse.Namespace, preset, progress: LineProgress):
    from backend.methods.dnf.pipeline import run_prepare

    t0 = time.monotonic()
    instances = run_prepare(preset, Path(args.cache), progress)
    progress.close()
    dt = time.monotonic() - t0
    counts: dict[str, int] = {}
    for i in instances:
        counts[i.spec.split] = counts.get(i.spec.split, 0) + 1
    print(f"stage prepare: {dt:.1f} s ({len(instances)} instances: "
          + ", ".join(f"{v} {k}" for k, v in counts.items()) + f"; cache {args.cache})",
          flush=True)
    return instances, dt


def cmd_prepare(args: argparse.Namespace) -> int:
    preset = _setup(args)
    _prepare(args, preset, LineProgress())
    return 0


def cmd_fit_fields(args: argparse.Namespace) -> int:
    from backend.methods.dnf.checkpoint import save_checkpoint
    from backend.methods.dnf.pipeline import fit_fields

    preset = _setup(args)
    if preset.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            from shared.errors import ParamError

            raise ParamError(f"preset {preset.name!r} needs a CUDA GPU and torch finds none; "
                             "use --preset tiny on a CPU")
    t0 = time.monotonic()
    progress = LineProgress()
    instances, t_prep = _prepare(args, preset, progress)
    start = None
    if args.resume:
        from backend.methods.dnf.checkpoint import load_checkpoint

        start = load_checkpoint(args.resume, stages=("a",))
    model = fit_fields(preset, instances, progress, start=start,
                       log=lambda s: (progress.close(), print(s, flush=True)))
    progress.close()
    model.info["timings_s"]["prepare"] = round(t_prep, 1)
    out = Path(args.out) if args.out else DEFAULT_OUT / preset.name
    save_checkpoint(model, out)
    total = time.monotonic() - t0
    model.info["timings_s"]["total"] = round(total, 1)
    save_checkpoint(model, out)
    print(f"total: {total:.1f} s; checkpoint written to {out}", flush=True)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    import torch

    from backend.methods.dnf.evaluate import evaluate_to_markdown

    if args.threads:
        torch.set_num_threads(args.threads)
    text = evaluate_to_markdown(Path(args.checkpoint), Path(args.cache), LineProgress(),
                                command=" ".join(["anim4d", "dnf"] + sys.argv[2:])
                                if args.command_line is None else args.command_line)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
        print(f"results written to {args.out}")
    else:
        print(text)
    return 0


def cmd_decode(args: argparse.Namespace) -> int:
    import numpy as np

    from backend.methods.dnf.checkpoint import load_checkpoint
    from backend.methods.dnf.decode import decode_instance
    from shared.meshseq import save_npz

    model = load_checkpoint(args.checkpoint)
    idx = model.index(args.instance)
    times = None
    if args.fps:
        span = model.instances[idx]["times"][-1]
        times = np.arange(0.0, span + 1e-9, 1.0 / args.fps)
    seq = decode_instance(model, idx, args.stage, times, args.resolution,
                          source_units=not args.normalised)
    save_npz(seq, args.out)
    print(f"wrote {seq.frame_count} frames, {seq.vertex_count} vertices to {args.out}")
    return 0


def cmd_fit_shape(args: argparse.Namespace) -> int:
    from backend.methods.dnf.checkpoint import load_checkpoint
    from backend.methods.dnf.fit_shape import fit_shape_file

    model = load_checkpoint(args.checkpoint)
    result = fit_shape_file(model, Path(args.mesh), iters=args.iters, report=LineProgress())
    print(f"fitted {args.mesh}: loss {result.loss_before:.5f} -> {result.loss_after:.5f}")
    if args.out:
        result.save(Path(args.out))
        print(f"shape vector written to {args.out}")
    return 0


def cmd_fit_generator(args: argparse.Namespace) -> int:
    import torch

    from backend.methods.dnf.checkpoint import load_checkpoint
    from backend.methods.dnf.gen.store import fit_generator

    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    elif device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda, but this torch sees no CUDA device (install a CUDA build "
              "of torch, see the README, or use --device cpu)", file=sys.stderr)
        return 2
    model = load_checkpoint(args.model_dir)
    t0 = time.monotonic()
    progress = LineProgress()
    try:
        folder = fit_generator(model, Path(args.model_dir), args.preset, progress=progress,
                               iters_scale=args.iters_scale, device=device)
    finally:
        progress.close()
    print(f"generator for dictionary {model.sha256[:12]}... written to {folder} in "
          f"{time.monotonic() - t0:.0f} s")
    return 0


def add_dnf_commands(subparsers) -> argparse.ArgumentParser:
    """Add ``dnf`` with its sub-commands to an ``argparse`` sub-parser collection."""
    dnf = subparsers.add_parser("dnf", help="DNF: shape/motion neural fields and dictionary")
    sub = dnf.add_subparsers(dest="dnf_command", required=True, metavar="DNF_COMMAND")

    def common(p: argparse.ArgumentParser, preset: bool = True) -> None:
        if preset:
            p.add_argument("--preset", default="tiny", choices=["tiny", "paper"],
                           help="sizes and schedules (default %(default)s)")
        p.add_argument("--cache", default=str(DEFAULT_OUT / "cache"),
                       help="sampled-data cache folder (default %(default)s)")
        p.add_argument("--threads", type=int, default=0,
                       help="torch CPU threads (default: the preset's)")
        if preset:
            p.add_argument("--animals-dir", help="folder of animated .glb animals (default: "
                           "$ANIM4D_SHARED_DATA/animals or ../shared/data/animals)")
            p.add_argument("--anime-dir", action="append", default=[], metavar="DIR",
                           help="add a DeformingThings4D folder of .anime files (repeatable)")

    p = sub.add_parser("prepare", help="sample SDF points and correspondences (cached)")
    common(p)
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("fit-fields", help="prepare, then train the MLPs and the dictionary")
    common(p)
    p.add_argument("--out", help="checkpoint folder (default out/dnf/<preset>)")
    p.add_argument("--resume", metavar="DIR",
                   help="reuse stage (a) (the MLPs) of this checkpoint; redo the dictionary")
    p.set_defaults(func=cmd_fit_fields)

    p = sub.add_parser("evaluate", help="results tables (a)-(d) and shape fitting as Markdown")
    common(p, preset=False)
    p.add_argument("--checkpoint", default=str(SHIPPED), help="checkpoint folder")
    p.add_argument("--out", help="Markdown file to write (default: print)")
    p.add_argument("--command-line", default=None, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("decode", help="decode a training instance to a mesh sequence .npz")
    p.add_argument("--checkpoint", default=str(SHIPPED), help="checkpoint folder")
    p.add_argument("--instance", required=True, help="instance name, e.g. 'Horse|...|Walk'")
    p.add_argument("--stage", default="d", choices=["a", "b", "c", "d"])
    p.add_argument("--fps", type=float, default=0.0,
                   help="sample this many frames per second (default: the training frames)")
    p.add_argument("--resolution", type=int, default=128, help="marching-cubes grid")
    p.add_argument("--normalised", action="store_true", help="keep the canonical unit box")
    p.add_argument("--out", required=True, help="output .npz (Anim4D mesh sequence)")
    p.set_defaults(func=cmd_decode)

    p = sub.add_parser("fit-shape", help="fit the shape coefficients of a new mesh")
    p.add_argument("mesh", help=".glb/.gltf/.obj/.ply/.stl/.off (rest pose) or .anime/.npz "
                   "(frame 0)")
    p.add_argument("--checkpoint", default=str(SHIPPED), help="checkpoint folder")
    p.add_argument("--iters", type=int, default=0, help="steps (default: the preset's)")
    p.add_argument("--out", help="write the fitted shape vector (.safetensors + .json)")
    p.set_defaults(func=cmd_fit_shape)

    p = sub.add_parser("fit-generator", help="train the shape and motion diffusion of a model "
                       "(saved into its folder, under generator/)")
    p.add_argument("--model-dir", default=str(SHIPPED), help="DNF model folder (default: the "
                   "shipped tiny model)")
    p.add_argument("--preset", default="tiny", choices=["tiny", "default", "paper"],
                   help="generator sizes (default %(default)s: CPU-sized; paper: the public "
                   "code's 1280 x 32 denoiser, for a GPU)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="where the denoisers train (auto: CUDA when torch sees a GPU)")
    p.add_argument("--iters-scale", type=float, default=1.0,
                   help="multiply the preset's training steps (e.g. 0.01 for a smoke run)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads")
    p.set_defaults(func=cmd_fit_generator)
    return dnf


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry: ``python -m backend.methods.dnf.cli <command> ...``."""
    from shared.errors import Anim4DError

    parser = argparse.ArgumentParser(prog="anim4d")
    sub = parser.add_subparsers(dest="command", required=True)
    add_dnf_commands(sub)
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] != "dnf":
        argv = ["dnf"] + argv
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except Anim4DError as err:
        print(f"anim4d: error: {err}", file=sys.stderr)
        return 1
