"""A process-level cache of loaded models, for worker processes that run many jobs.

A method's job loads its model (weights read, hashes checked, networks built) through
:func:`cached`: in a process that already loaded the same files, the loaded objects come back at
once. That pays off where a process outlives a job: the resident Ray actors of
``anim4d serve --executor ray`` (see :mod:`backend.server.ray_worker`), which run job after job
of their method, and Ray's own reuse of worker processes for tasks. A local worker
(:mod:`backend.server.worker`) is one process per job, forked from the fork server, which loads
no model: there every job misses, as before.

An entry is keyed by what was loaded (a name and the folder) and stamped with the identity of
the files it was read from: for each file its path, size, modification time (ns) and inode. A
file retrained, replaced (even by a rename onto it) or removed changes the stamp, and the next
job loads it again; a stale model is never served. The cache is bounded: the
:data:`CAPACITY` entries used last (``ANIM4D_MODEL_CACHE``, 0 turns it off), least recently
used out first.

Cached objects are shared between the jobs of a process: the loaders' callers must not change
them (the DNF creature jobs only read their model and generators).

``stats()`` counts loads and hits in this process; a worker logs how many of each a job made,
so that what the cache saves is measured, not assumed.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: entries kept per process (a DNF model and its generators are two: two such models)
CAPACITY = int(os.environ.get("ANIM4D_MODEL_CACHE", "4"))

Stamp = tuple[tuple[str, int, int, int], ...]


@dataclass
class CacheStats:
    loads: int = 0  # loaders run (a miss, or a stale entry)
    hits: int = 0
    stale: int = 0  # of the loads: an entry whose files had changed
    evicted: int = 0
    load_s: float = 0.0  # seconds spent in loaders


class ModelCache:
    """An LRU of ``key -> (stamp, value)``; see the module docstring."""

    def __init__(self, capacity: int = CAPACITY):
        self.capacity = max(0, capacity)
        self._entries: OrderedDict[tuple, tuple[Stamp, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self.stats = CacheStats()

    def get(self, key: tuple, files: Iterable[str | Path], load: Callable[[], Any]) -> Any:
        """``load()``'s value, from the cache while ``files`` are unchanged since it ran.

        ``files``: every file ``load`` reads (a file that does not exist is stamped as absent,
        so its appearing invalidates too). ``load``'s errors pass through; nothing is kept."""
        files = [str(f) for f in files]
        with self._lock:
            stamp = file_stamp(files)
            entry = self._entries.get(key)
            if entry is not None and entry[0] == stamp:
                self._entries.move_to_end(key)
                self.stats.hits += 1
                return entry[1]
            if entry is not None:
                self.stats.stale += 1
                del self._entries[key]
            t0 = time.perf_counter()
            value = load()
            self.stats.loads += 1
            self.stats.load_s += time.perf_counter() - t0
            if file_stamp(files) != stamp:  # changed while it loaded: do not keep
                return value
            if self.capacity:
                self._entries[key] = (stamp, value)
                while len(self._entries) > self.capacity:
                    self._entries.popitem(last=False)
                    self.stats.evicted += 1
            return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


def file_stamp(files: Iterable[str]) -> Stamp:
    """Each file's (path, size, mtime in ns, inode); (path, -1, -1, -1) for a missing one."""
    out = []
    for f in files:
        try:
            st = os.stat(f)
        except OSError:
            out.append((f, -1, -1, -1))
        else:
            out.append((f, st.st_size, st.st_mtime_ns, st.st_ino))
    return tuple(out)


def folder_files(folder: str | Path, pattern: str = "*") -> list[Path]:
    """The files under ``folder`` matching ``pattern`` (recursive), sorted: what a loader of
    the whole folder reads."""
    return sorted(p for p in Path(folder).rglob(pattern) if p.is_file())


#: this process's cache
CACHE = ModelCache()


def cached(key: tuple, files: Iterable[str | Path], load: Callable[[], Any]) -> Any:
    """:meth:`ModelCache.get` on this process's cache."""
    return CACHE.get(key, files, load)


def stats() -> CacheStats:
    """A copy of this process's counts."""
    s = CACHE.stats
    return CacheStats(s.loads, s.hits, s.stale, s.evicted, s.load_s)
