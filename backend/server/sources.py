"""Results as inputs (protocol 1.1): resolving ``job`` parameters at submit time.

A kind that works on a finished job (resample a result, blend two creatures, render one) takes
it as a parameter of type ``job``. The client names the job by its id or a unique prefix of it;
the server checks here, at submit time, that the job exists and is done, and stores the full id
in the job's parameters. The runner then reads that job's result folder through
:meth:`backend.jobs.api.JobContext.source`: clients only ever see job ids, never server paths.

Every client that can reach the server sees every job (without CurveZMQ all clients are one
identity; with it, every authorised client shares the same jobs), so any job on the server may
be named.
"""

from __future__ import annotations

from collections.abc import Mapping

from backend.server.store import JobRecord
from shared.errors import ParamError
from shared.params import KindSpec


def resolve_job_id(value: str, records: Mapping[str, JobRecord], where: str) -> str:
    """The full id of the one job whose id is ``value`` or starts with it."""
    if value in records:
        return value
    matches = [j for j in records if j.startswith(value)]
    if not matches:
        raise ParamError(f"{where}: no job {value!r} on this server (see `anim4d jobs`)")
    if len(matches) > 1:
        raise ParamError(f"{where}: {value!r} matches {len(matches)} jobs; give more characters "
                         "of the job id")
    return matches[0]


def resolve_job_params(spec: KindSpec, params: dict, records: Mapping[str, JobRecord]) -> dict:
    """``params`` with every ``job`` parameter replaced by the full id of a finished job.

    Raises :class:`ParamError` (``bad_param``) naming the parameter, the job and its state when
    the job is missing, ambiguous or not done.
    """
    out = dict(params)
    for p in spec.job_params():
        where = f"{spec.name}: parameter {p.name!r}"
        value = out.get(p.name)
        if not value:
            raise ParamError(f"{where} needs a finished job: give its id or a unique prefix "
                             "(see `anim4d jobs`)")
        job_id = resolve_job_id(str(value), records, where)
        rec = records[job_id]
        if rec.state != "done":
            why = f" ({rec.error['message']})" if rec.error else ""
            raise ParamError(f"{where}: job {job_id} is {rec.state}{why}; only a finished "
                             "(done) job can be used")
        out[p.name] = job_id
    return out


def dependents(job_id: str, records: Mapping[str, JobRecord],
               kinds: Mapping[str, object]) -> list[str]:
    """Ids of queued or running jobs that take ``job_id``'s result as a ``job`` parameter."""
    out = []
    for rec in records.values():
        kind = kinds.get(rec.kind)
        if rec.terminal or kind is None:
            continue
        if any(rec.params.get(p.name) == job_id for p in kind.spec.job_params()):
            out.append(rec.id)
    return out
