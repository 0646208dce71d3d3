"""The worker process: runs one job's method and reports back over a pipe.

Messages sent to the server (tuples): ``("progress", stage, fraction, message)``,
``("preview", content, arrays)`` (a method's live preview) and ``("finishing",)`` (the method saw
a cancel and is saving its latest state as the result), then exactly one
of ``("done", manifest_json, method_seconds)``, ``("cancelled",)`` or ``("failed", code,
message)``. A worker that dies without sending a final message (a crash, the out-of-memory
killer) is detected by the engine.

The method writes into ``<job>/result.partial/``; the server renames it to ``result/`` once
``done`` arrives (see :mod:`backend.server.store`). A worker whose server is gone (killed, even
with SIGKILL) ends itself at once, so that nothing outlives the server to write into a job folder
that a restarted server has already marked ``interrupted``.

The same :func:`worker_main` runs a job on a Ray cluster (:mod:`backend.server.ray_worker`), in
a task or on a resident actor that runs job after job in one process. A method that loads its
models through :mod:`backend.models.cache` keeps them loaded there; the job's log says how many
loads and cache hits the job made. A local worker is a fresh process forked per job (the fork
server imports the methods' modules, never their models), so each local job loads its models.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import sys
import threading
import time
import traceback
from multiprocessing.connection import Connection, wait
from multiprocessing.synchronize import Event
from pathlib import Path

from backend.jobs.api import JobCancelled, JobContext
from backend.jobs.registry import load_runner
from backend.server.store import PARTIAL
from shared.errors import Anim4DError
from shared.manifest import write_manifest

#: exit status of a worker that ended itself because its server was gone
ORPHANED_EXIT = 75


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


def _die_with_the_server(log: logging.Logger) -> None:
    """End this process as soon as the server process that started it is gone.

    ``parent_process().sentinel`` is a pipe the server holds open while it lives (for a worker
    forked by the fork server too, it is the server's pipe, not the fork server's).
    """
    parent = mp.parent_process()
    if parent is None:
        return

    def watch() -> None:
        wait([parent.sentinel])
        log.error("the server process is gone: ending this worker (pid %d)", os.getpid())
        logging.shutdown()
        os._exit(ORPHANED_EXIT)

    threading.Thread(target=watch, name="anim4d-server-watch", daemon=True).start()


def _cache_counts() -> tuple[int, int, float]:
    """(loads, hits, seconds loading) of this process's model cache so far (zeros before any
    use)."""
    cache = sys.modules.get("backend.models.cache")
    if cache is None:
        return 0, 0, 0.0
    s = cache.stats()
    return s.loads, s.hits, s.load_s


def worker_main(job_id: str, runner: str, params: dict, inputs: list[str], job_dir: str,
                conn: Connection, cancel: Event, models: dict[str, str] | None = None,
                where: str = "") -> None:
    """Run one job; ``where``: how it runs (a Ray task, a resident actor), for its log."""
    folder = Path(job_dir)
    log_path = folder / "worker.log"
    logging.basicConfig(filename=log_path, level=logging.INFO, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("anim4d.worker")
    _die_with_the_server(log)
    module = runner.partition(":")[0]
    log.info("job %s (%s) starting in pid %d; method modules imported ahead: %s", job_id, runner,
             os.getpid(), "yes" if module in sys.modules else "no")
    if where:
        log.info("job %s runs %s", job_id, where)
    cache_before = _cache_counts()

    def sink(stage: str, fraction: float, message: str) -> None:
        conn.send(("progress", stage, fraction, message))

    def preview_sink(content: dict, arrays: dict) -> None:
        conn.send(("preview", content, arrays))

    ctx = JobContext(job_id=job_id, out_dir=folder / PARTIAL, work_dir=folder / "work",
                     sink=sink, cancelled=cancel.is_set, models=dict(models or {}),
                     preview_sink=preview_sink, finishing_sink=lambda: conn.send(("finishing",)))
    try:
        ctx.check_cancel()  # cancelled (or the server shut down) before this process started
        run = load_runner(runner)
        t0 = time.perf_counter()
        manifest = run(ctx, params, [Path(p) for p in inputs])
        method_s = time.perf_counter() - t0
        loads, hits, load_s = (a - b for a, b in zip(_cache_counts(), cache_before,
                                                      strict=True))
        if loads or hits:
            log.info("job %s: model cache: %d load(s), %d hit(s) in pid %d (%.3f s loading)",
                     job_id, loads, hits, os.getpid(), load_s)
        if "cancelled_at_step" not in manifest.extra:  # a method may stop early and keep
            ctx.check_cancel()                         # its latest state (done, not cancelled)
        manifest.job_id = job_id
        write_manifest(ctx.out_dir, manifest)
        conn.send(("done", manifest.to_json(), method_s))
        log.info("job %s done; the method ran %.3f s", job_id, method_s)
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
