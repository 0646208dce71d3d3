"""The worker process: runs one job's method and reports back over a pipe.

Messages sent to the server (tuples): ``("progress", stage, fraction, message)``, then exactly one
of ``("done", manifest_json)``, ``("cancelled",)`` or ``("failed", code, message)``. A worker that
dies without sending a final message (a crash, the out-of-memory killer) is detected by the engine.
"""

from __future__ import annotations

import logging
import os
import traceback
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from pathlib import Path

from backend.jobs.api import JobCancelled, JobContext
from backend.jobs.registry import load_runner
from shared.errors import Anim4DError
from shared.manifest import write_manifest


def _user_paths(message: str, job_dir: Path, models: dict[str, str] | None = None) -> str:
    """Name inputs as the artist knows them (``Horse.glb``) and models by name (``model
    'tiny'``), never by the server's own paths."""
    inputs = job_dir / "inputs"
    for prefix in {str(inputs.resolve()), str(inputs)}:
        message = message.replace(prefix + os.sep, "")
    for name, folder in sorted((models or {}).items(), key=lambda nf: -len(nf[1])):
        for prefix in {str(Path(folder).resolve()), str(folder)}:
            message = message.replace(prefix + os.sep, f"model {name!r}: ")
            message = message.replace(prefix, f"model {name!r}")
    for prefix in {str(job_dir.resolve()), str(job_dir)}:
        message = message.replace(prefix + os.sep, "")
    return message


def worker_main(job_id: str, runner: str, params: dict, inputs: list[str], job_dir: str,
                conn: Connection, cancel: Event, models: dict[str, str] | None = None) -> None:
    folder = Path(job_dir)
    log_path = folder / "worker.log"
    logging.basicConfig(filename=log_path, level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("anim4d.worker")
    log.info("job %s (%s) starting in pid %d", job_id, runner, os.getpid())

    def sink(stage: str, fraction: float, message: str) -> None:
        conn.send(("progress", stage, fraction, message))

    ctx = JobContext(job_id=job_id, out_dir=folder / "result", work_dir=folder / "work",
                     sink=sink, cancelled=cancel.is_set, models=dict(models or {}))
    try:
        manifest = load_runner(runner)(ctx, params, [Path(p) for p in inputs])
        ctx.check_cancel()
        manifest.job_id = job_id
        write_manifest(ctx.out_dir, manifest)
        conn.send(("done", manifest.to_json()))
        log.info("job %s done", job_id)
    except JobCancelled:
        log.info("job %s cancelled", job_id)
        conn.send(("cancelled",))
    except Anim4DError as err:
        log.warning("job %s failed: %s", job_id, err)
        conn.send(("failed", err.code, _user_paths(str(err), folder, models)))
    except MemoryError:
        log.error("job %s ran out of memory\n%s", job_id, traceback.format_exc())
        conn.send(("failed", "out_of_memory",
                   "the job ran out of memory; try a smaller preset or fewer frames"))
    except Exception as err:  # noqa: BLE001 - a method bug must reach the user, not kill the server
        log.error("job %s crashed\n%s", job_id, traceback.format_exc())
        conn.send(("failed", "internal",
                   _user_paths(f"{type(err).__name__}: {err} (details in the job's worker.log "
                               "on the server)", folder, models)))
    finally:
        conn.close()
