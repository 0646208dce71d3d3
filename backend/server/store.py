"""Jobs on disk: one folder per job under ``<data-dir>/jobs/<id>/``.

Layout: ``job.json`` (the :class:`JobRecord`), ``inputs/`` (uploaded files), ``result/`` (the
finished result), ``result.partial/`` (where a running method writes), ``work/`` (scratch, removed
when the job ends) and ``worker.log``.

A result is never half-written where it is served: the method writes into ``result.partial/``
(``manifest.json`` last) and the server renames that folder to ``result/`` when the worker reports
success, before ``job.json`` says ``done``. A server killed at any moment therefore leaves either a
complete ``result/`` of a job recorded ``done``, or an empty one. A restarted server reads every
``job.json`` back: finished results are served again, jobs that were running are marked
``interrupted`` (their partial results removed), queued jobs queue again.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from shared.protocol import TERMINAL_STATES

JOB_ID_RE = re.compile(r"^[0-9a-f]{8,64}\Z")
PARTIAL = "result.partial"


@dataclass
class JobRecord:
    id: str
    kind: str
    params: dict[str, Any]
    inputs: list[str] = field(default_factory=list)
    state: str = "queued"
    stage: str = ""
    fraction: float = 0.0
    message: str = ""
    error: dict[str, str] | None = None
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    result: dict[str, Any] | None = None
    #: seconds the method itself ran (measured in the worker); kept on disk, not sent to clients
    method_s: float | None = None
    #: who submitted it: the fair-share key (see backend/server/scheduling.py)
    client: str = "local"
    priority: int = 0
    #: times it was run again after its worker died (the Ray executor's ``--retries``)
    attempts: int = 0
    #: the Ray executor's name for the running attempt (a restarted server re-attaches by it);
    #: kept on disk, not sent to clients
    run_key: str | None = None

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    def info(self, queue_position: int | None = None) -> dict[str, Any]:
        """The JSON form sent to clients."""
        d = asdict(self)
        del d["method_s"], d["run_key"]
        d["queue_position"] = queue_position
        return d


class JobStore:
    def __init__(self, data_dir: str | os.PathLike):
        self.root = Path(data_dir).expanduser()
        self.jobs_dir = self.root / "jobs"
        self.uploads_dir = self.root / "uploads"
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        self.uploads_dir.mkdir(parents=True, exist_ok=True)

    def job_dir(self, job_id: str) -> Path:
        if not JOB_ID_RE.match(job_id):
            raise ValueError(f"malformed job id {job_id!r}")
        return self.jobs_dir / job_id

    def inputs_dir(self, job_id: str) -> Path:
        return self.job_dir(job_id) / "inputs"

    def result_dir(self, job_id: str) -> Path:
        return self.job_dir(job_id) / "result"

    def partial_dir(self, job_id: str) -> Path:
        return self.job_dir(job_id) / PARTIAL

    def work_dir(self, job_id: str) -> Path:
        return self.job_dir(job_id) / "work"

    def create(self, record: JobRecord) -> Path:
        folder = self.job_dir(record.id)
        for sub in ("inputs", "result", "work"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        self.save(record)
        return folder

    def save(self, record: JobRecord) -> None:
        path = self.job_dir(record.id) / "job.json"
        tmp = path.with_name("job.json.tmp")
        tmp.write_text(json.dumps(asdict(record), indent=1))
        os.replace(tmp, path)

    def load_all(self) -> tuple[list[JobRecord], list[str]]:
        """Every readable job, oldest first, and a line for each folder that could not be read."""
        records, problems = [], []
        for folder in sorted(self.jobs_dir.iterdir()):
            path = folder / "job.json"
            if not folder.is_dir() or not JOB_ID_RE.match(folder.name):
                continue
            try:
                data = json.loads(path.read_text())
                records.append(JobRecord(**data))
            except (OSError, ValueError, TypeError) as err:
                problems.append(f"{folder}: unreadable job record ({err}); left as is")
        records.sort(key=lambda r: r.created)
        return records, problems

    def prepare_run(self, job_id: str) -> None:
        """Fresh, empty ``result.partial/`` and ``work/`` folders for a job about to start."""
        shutil.rmtree(self.partial_dir(job_id), ignore_errors=True)
        self.partial_dir(job_id).mkdir(parents=True)
        self.work_dir(job_id).mkdir(parents=True, exist_ok=True)

    def commit_result(self, job_id: str) -> None:
        """Make the finished ``result.partial/`` the job's ``result/`` in one rename."""
        result = self.result_dir(job_id)
        if result.exists():  # the empty placeholder (anything else is stale: a job runs once)
            shutil.rmtree(result)
        os.rename(self.partial_dir(job_id), result)

    def clear_result(self, job_id: str) -> None:
        """Remove whatever result (finished or partial) the job has; leaves ``result/`` empty."""
        shutil.rmtree(self.partial_dir(job_id), ignore_errors=True)
        shutil.rmtree(self.result_dir(job_id), ignore_errors=True)
        self.result_dir(job_id).mkdir(parents=True, exist_ok=True)

    def clear_work(self, job_id: str) -> None:
        shutil.rmtree(self.work_dir(job_id), ignore_errors=True)

    def delete(self, job_id: str) -> None:
        shutil.rmtree(self.job_dir(job_id), ignore_errors=True)
