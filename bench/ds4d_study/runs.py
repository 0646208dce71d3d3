"""``video.to4d`` jobs of the study on one embedded backend (the wire path an artist's add-on
uses: files uploaded, results fetched), one at a time, each result kept in ``<out>/runs/<name>``
(reused when already there, unless ``fresh``)."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from shared.cameras import read_cameras, write_cameras

KIND = "video.to4d"


@dataclass
class RunSpec:
    """One job: ``video`` files, optional ``views`` files and the cameras to send (names)."""

    name: str
    video: list[Path]
    params: dict
    views: list[Path] = field(default_factory=list)
    cameras_from: Path | None = None  # the full cameras file; only the named ones are sent
    camera_names: tuple[str, ...] = ()


@dataclass
class RunResult:
    name: str
    folder: Path
    seconds: float  # job wall time (submit to done), as measured when it ran
    reused: bool
    extra: dict


def _cameras_subset(src: Path, names: tuple[str, ...], dst: Path) -> Path:
    cams = {c.name: c for c in read_cameras(src)}
    write_cameras(dst, [cams[n].to_json() for n in names])
    return dst


def run_jobs(specs: list[RunSpec], out: Path, fresh: bool = False,
             log=print) -> dict[str, RunResult]:
    """Run each spec (or reuse its folder) and return the results by name."""
    from backend.server.embedded import start_embedded_server
    from blender_addon.core.client import Client

    results: dict[str, RunResult] = {}
    todo = []
    for s in specs:
        folder = out / "runs" / s.name
        info = folder / "study_run.json"
        if info.is_file() and not fresh:
            meta = json.loads(info.read_text())
            results[s.name] = RunResult(s.name, folder, meta["seconds"], True, meta["extra"])
            log(f"[{s.name}] reusing {folder} ({meta['seconds']:.0f} s when it ran)")
        else:
            todo.append(s)
    if not todo:
        return results
    with tempfile.TemporaryDirectory(prefix="anim4d-ds4d-study-") as data_dir, \
            start_embedded_server(data_dir) as server, \
            Client(server.address, timeout=120) as client:
        for s in todo:
            folder = out / "runs" / s.name
            if folder.exists():
                shutil.rmtree(folder)
            folder.parent.mkdir(parents=True, exist_ok=True)
            inputs: dict[str, list[Path]] = {"video": list(s.video)}
            if s.views:
                inputs["views"] = list(s.views)
            if s.cameras_from is not None:
                cams = _cameras_subset(s.cameras_from, s.camera_names,
                                       Path(data_dir) / f"{s.name}_cameras.json")
                inputs["cameras"] = [cams]
            log(f"[{s.name}] submitting {KIND} {s.params}")
            t0 = time.perf_counter()
            job = client.submit(KIND, s.params, inputs)
            last = [0.0]

            def progress(p, name=s.name, last=last):
                now = time.perf_counter()
                if now - last[0] > 15:
                    last[0] = now
                    log(f"[{name}] {p.stage} {100 * (p.fraction or 0):.0f}% {p.message}")

            info = client.wait(job, on_progress=progress)
            seconds = time.perf_counter() - t0
            if info.state != "done":
                raise RuntimeError(f"{s.name}: job {info.state}: {info.error}")
            client.fetch(job, folder)
            manifest = json.loads((folder / "manifest.json").read_text())
            extra = manifest.get("extra", {})
            (folder / "study_run.json").write_text(json.dumps(
                {"seconds": seconds, "params": s.params, "extra": extra}, indent=1))
            results[s.name] = RunResult(s.name, folder, seconds, False, extra)
            log(f"[{s.name}] done in {seconds:.0f} s ({extra.get('features')}, "
                f"TSSF {extra.get('tssf')})")
    return results
