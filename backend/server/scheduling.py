"""The job queue: priorities, then fair share between clients (round robin), per-client limits.

Every queued job belongs to a client (its *share*: the client's CURVE public key when the server
uses keys, else the connection that submitted it, see ``Server._client_of``) and has a priority
(``submit``'s optional ``priority``, -10..10, default 0). The next job to start is the head of the
client whose head job has the highest priority; among equal priorities, the client served least
recently (never served first; then the earliest submitted head). So one artist's batch of 100 does
not starve another's single job: the single one starts within the next two slots. Inside one
client's queue, jobs go by priority, then in submission order.

:class:`SubmitRate` limits how often each client may submit (``--max-submits-per-minute``).

``FairQueue`` keeps the interface of the ``deque`` the engine used before (``append``, ``remove``,
``popleft``, ``index``, iteration in start order, ``len``), so queue positions (1-based, sent in
``progress`` events) are the order in which the jobs would start if nothing else arrived.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

#: ``submit``'s ``priority`` range
MIN_PRIORITY, MAX_PRIORITY = -10, 10


@dataclass(order=True)
class _Entry:
    key: tuple[int, int]  # (-priority, sequence): a client's own order
    job_id: str = field(compare=False)


class FairQueue:
    """Queued job ids, served by priority, then round robin over clients."""

    def __init__(self) -> None:
        self._queues: dict[str, list[_Entry]] = {}  # client -> heap of its queued jobs
        self._where: dict[str, tuple[str, _Entry]] = {}  # job id -> (client, entry)
        self._served: dict[str, int] = {}  # client -> tick of its latest start
        self._ticks = itertools.count(1)
        self._seq = itertools.count()
        self._front = itertools.count(-1, -1)  # sequence numbers of re-queued jobs (retries)
        self._order: list[str] | None = None  # cached start order

    # ---- deque-like interface --------------------------------------------------------------
    def append(self, job_id: str, client: str = "local", priority: int = 0,
               front: bool = False) -> None:
        """Queue ``job_id``; ``front``: ahead of the client's other jobs of its priority (a job
        put back to be retried)."""
        if job_id in self._where:
            raise ValueError(f"job {job_id} is already queued")
        seq = next(self._front) if front else next(self._seq)
        entry = _Entry((-int(priority), seq), job_id)
        heapq.heappush(self._queues.setdefault(client, []), entry)
        self._where[job_id] = (client, entry)
        self._order = None

    def remove(self, job_id: str) -> None:
        client, entry = self._where.pop(job_id)
        heap = self._queues[client]
        heap.remove(entry)
        heapq.heapify(heap)
        if not heap:
            del self._queues[client]
        self._order = None

    def popleft(self, blocked: set[str] | frozenset[str] = frozenset()) -> str:
        """The next job to start, skipping clients in ``blocked`` (at their running limit);
        raises IndexError when none may start."""
        client = self._pick({c: h[0] for c, h in self._queues.items() if c not in blocked},
                            self._served)
        if client is None:
            raise IndexError("no queued job may start")
        entry = heapq.heappop(self._queues[client])
        if not self._queues[client]:
            del self._queues[client]
        del self._where[entry.job_id]
        self._served[client] = next(self._ticks)
        self._order = None
        return entry.job_id

    def index(self, job_id: str) -> int:
        """0-based place of ``job_id`` in the start order; ValueError if not queued."""
        if job_id not in self._where:
            raise ValueError(f"job {job_id} is not queued")
        return self._positions()[job_id]

    def client_of(self, job_id: str) -> str:
        return self._where[job_id][0]

    def count(self, client: str) -> int:
        """How many jobs ``client`` has queued."""
        return len(self._queues.get(client, ()))

    def __len__(self) -> int:
        return len(self._where)

    def __bool__(self) -> bool:
        return bool(self._where)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._where

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._start_order()))

    # ---- order -----------------------------------------------------------------------------
    @staticmethod
    def _pick(heads: dict[str, _Entry], served: dict[str, int]) -> str | None:
        best, best_key = None, None
        for client, head in heads.items():
            key = (head.key[0], served.get(client, 0), head.key[1])
            if best_key is None or key < best_key:
                best, best_key = client, key
        return best

    def _start_order(self) -> list[str]:
        """Every queued job in the order it would start: :meth:`popleft` simulated (clients
        ordered in a heap by (head priority, last served, head sequence))."""
        if self._order is not None:
            return self._order
        queues = {c: sorted(h) for c, h in self._queues.items()}
        nexts = dict.fromkeys(queues, 0)
        tick = max(self._served.values(), default=0)
        heap = [(q[0].key[0], self._served.get(c, 0), q[0].key[1], c) for c, q in queues.items()]
        heapq.heapify(heap)
        order = []
        while heap:
            _, _, _, client = heapq.heappop(heap)
            queue, i = queues[client], nexts[client]
            order.append(queue[i].job_id)
            nexts[client] = i = i + 1
            tick += 1
            if i < len(queue):
                heapq.heappush(heap, (queue[i].key[0], tick, queue[i].key[1], client))
        self._order = order
        return order

    def _positions(self) -> dict[str, int]:
        order = self._start_order()
        if getattr(self, "_pos_for", None) is not order:
            self._pos = {job_id: i for i, job_id in enumerate(order)}
            self._pos_for = order
        return self._pos


class SubmitRate:
    """Per-client token buckets: at most ``per_minute`` submits in any minute, bursts included
    (a client starts with a full bucket). ``per_minute`` 0: no limit. ``clock``: seconds."""

    def __init__(self, per_minute: int, clock=time.monotonic):
        self.per_minute = max(0, int(per_minute))
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, at)

    def take(self, client: str) -> float:
        """Take one submit for ``client``: 0.0 if allowed, else the seconds until it would be."""
        if not self.per_minute:
            return 0.0
        now = self.clock()
        tokens, at = self._buckets.get(client, (float(self.per_minute), now))
        tokens = min(float(self.per_minute), tokens + (now - at) * self.per_minute / 60.0)
        if tokens >= 1.0:
            self._buckets[client] = (tokens - 1.0, now)
            return 0.0
        self._buckets[client] = (tokens, now)
        return (1.0 - tokens) * 60.0 / self.per_minute
