"""Headless render benchmark: Cycles seconds per frame, and the share our scene set-up takes.

Two results are rendered with ``backend.blender_render.run.render_results`` (what ``anim4d
render`` runs: one ``bpy`` subprocess per result, Cycles on the CPU, fixed camera):

- ``mesh``: procedural creature 7 trotting (``make_creature_sequence``), its level of detail
  chosen as the smallest multiple of 0.05 that gives at least ``--vertices`` vertices, with
  its vertex colours;
- ``gaussians``: ``--gaussians`` splats glued to that creature's surface (fixed barycentric
  coordinates on random triangles, area-weighted), so they move with it; opaque, sized to tile
  the surface, coloured by the vertex colours.

Per result: seconds per rendered frame (``render_s / frames``), and the share of the render's
wall time (the anchor: the whole subprocess, Blender's start included) spent on our scene
set-up: import with the add-on's importer, materials, lights, camera (``setup_s``); the target
is under 5 % for a 48-frame render. Loading ``bpy`` and encoding the MP4 are listed apart.

Usage::

    python bench/render.py                     # 2k-vertex creature, 5k splats, 96 px, 12 frames
    python bench/render.py --full              # 20k vertices, 50k splats, 256 px, 48 frames
    python bench/render.py --samples 16 --threads 2 --json out/render.json

Prints a table, then the result as one JSON line (``--json PATH`` also writes it there).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from backend.blender_render.options import RenderOptions  # noqa: E402
from backend.blender_render.run import bpy_missing, render_results  # noqa: E402
from backend.data.procedural import make_creature_sequence  # noqa: E402
from bench.lib.report import Row, bench_parser, report  # noqa: E402
from shared.gaussians import GaussianSequence, write_gaussian_result  # noqa: E402
from shared.gsply import GaussianFrame  # noqa: E402
from shared.manifest import Manifest, write_manifest  # noqa: E402
from shared.meshseq import MeshSequence, save_npz  # noqa: E402

SETUP_TARGET = 0.05


def creature(vertices: int, frames: int, fps: float = 24.0) -> tuple[MeshSequence, float]:
    """The trotting creature with at least ``vertices`` vertices, and the detail used."""
    detail = 0.5
    while True:
        seq = make_creature_sequence(7, "trot", frames, fps, detail=detail)
        if seq.vertex_count >= vertices or detail > 8:
            return seq, detail
        detail = round(detail + 0.05, 2)


def write_mesh(folder: Path, seq: MeshSequence) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    save_npz(seq, folder / "sequence.npz")
    write_manifest(folder, Manifest(
        kind="creature.procedural", representation="mesh_sequence",
        frame_times=[float(t) for t in seq.times], fps=24.0, files={"sequence": "sequence.npz"},
        counts={"frames": seq.frame_count, "vertices": seq.vertex_count,
                "faces": int(seq.faces.shape[0])}))
    return folder


def surface_gaussians(seq: MeshSequence, count: int, seed: int = 0) -> GaussianSequence:
    """``count`` splats on ``seq``'s surface, following it frame by frame."""
    rng = np.random.default_rng(seed)
    v0 = seq.vertices[0].astype(np.float64)
    tri = v0[seq.faces]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    faces = seq.faces[rng.choice(len(area), count, p=area / area.sum())]
    bary = rng.dirichlet(np.ones(3), count)
    radius = np.sqrt(area.sum() / count / np.pi)
    colors = seq.colors[:, :3] if seq.colors is not None else np.full((len(v0), 3), 0.7)
    rgb = np.clip(np.einsum("nk,nkc->nc", bary, colors[faces]), 0.0, 1.0)
    quats = rng.normal(size=(count, 4))
    scales = np.full((count, 3), radius) * np.array([1.0, 1.0, 0.3])
    frames = [GaussianFrame.from_activated(np.einsum("nk,nkc->nc", bary, v[faces]), quats,
                                           scales, np.full(count, 0.9), rgb)
              for v in seq.vertices.astype(np.float64)]
    return GaussianSequence(frames, seq.times)


def measure(folder: Path, out: Path, options: RenderOptions) -> dict:
    t0 = time.perf_counter()
    [outcome] = render_results([folder], out, options)
    wall = time.perf_counter() - t0
    if not outcome.ok:
        raise SystemExit(f"render failed: {outcome.error}")
    return {"frames": len(outcome.frames), "wall_s": wall, **outcome.timings}


def main() -> int:
    ap = bench_parser(__doc__.splitlines()[0])
    ap.add_argument("--vertices", type=int, help="creature vertices (default 2000; full 20000)")
    ap.add_argument("--gaussians", type=int, help="splats (default 5000; full 50000)")
    ap.add_argument("--resolution", type=int, help="pixels (default 96; full 256)")
    ap.add_argument("--frames", type=int, help="frames (default 12; full 48)")
    ap.add_argument("--samples", type=int, default=16, help="Cycles samples (default 16)")
    ap.add_argument("--threads", type=int, default=0, help="render threads (0: all cores)")
    args = ap.parse_args()
    full = args.full
    vertices = args.vertices or (20000 if full else 2000)
    count = args.gaussians or (50000 if full else 5000)
    size = args.resolution or (256 if full else 96)
    frames = args.frames or (48 if full else 12)
    why = bpy_missing()
    if why:
        raise SystemExit(f"bench/render.py needs bpy: {why}")
    options = RenderOptions(resolution=size, samples=args.samples, threads=args.threads)
    with tempfile.TemporaryDirectory(prefix="anim4d-bench-render-") as tmp:
        root = Path(tmp)
        seq, detail = creature(vertices, frames)
        mesh = write_mesh(root / "mesh", seq)
        splats = root / "gaussians"
        write_gaussian_result(splats, surface_gaussians(seq, count), kind="video.to4d", fps=24.0,
                              extra={"gaussians_correspond": True})
        cases = {f"mesh {seq.vertex_count} vertices": measure(mesh, root / "out", options),
                 f"gaussians {count}": measure(splats, root / "out", options)}
    rows = []
    for name, m in cases.items():
        rows.append(Row(f"{name}: render per frame", m["render_s"] / m["frames"], "s"))
        share = m["setup_s"] / m["wall_s"]
        rows.append(Row(f"{name}: scene set-up", m["setup_s"], "s", "whole render",
                        m["wall_s"], share, f"< {SETUP_TARGET}", share < SETUP_TARGET))
        rows.append(Row(f"{name}: bpy load + MP4 encode", m["load_s"] + m["encode_s"], "s"))
    report("render", rows, args.json, details={
        "resolution": size, "samples": args.samples, "frames": frames, "device": "cpu",
        "threads": args.threads or "all", "creature_detail": detail, "cases": cases})
    return 0


if __name__ == "__main__":
    sys.exit(main())
