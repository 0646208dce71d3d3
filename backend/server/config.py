"""Server settings (``anim4d serve`` flags map one to one onto these fields)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from backend.server.defaults import DEFAULT_BIND, default_data_dir
from shared.protocol import MAX_MESSAGE_BYTES
from shared.stream import DEFAULT_CHUNK_BYTES

__all__ = ["DEFAULT_BIND", "ServerConfig", "default_data_dir"]


@dataclass
class ServerConfig:
    bind: str = DEFAULT_BIND
    data_dir: Path = field(default_factory=default_data_dir)
    workers: int = 1
    curve_keys: Path | None = None
    heartbeat_s: float = 2.0
    cancel_grace_s: float = 5.0
    max_message_bytes: int = MAX_MESSAGE_BYTES
    chunk_bytes: int = DEFAULT_CHUNK_BYTES
    sndhwm: int = 32
    debug_kinds: bool = False
    #: fork each job's process from a fork server that imported the methods ahead (False: a
    #: fresh interpreter per job, as before; see backend/server/engine.py)
    warm_workers: bool = True
    models_dir: Path | None = None  # None: <data_dir>/models (see backend/models/registry.py)
    #: where jobs run: "local" (a process per job on this machine) or "ray" (a Ray cluster; see
    #: backend/server/ray_executor.py; there ``workers`` = jobs in flight, 0: the cluster's CPUs)
    executor: str = "local"
    ray_address: str | None = None  # None: a local Ray found or started (ray.init's default)
    #: with executor "ray": an fsspec URL (file:///mnt/shared/anim4d, s3://bucket/prefix) that
    #: the workers read inputs from and put results in, for nodes that do not share the gateway's
    #: disk (see backend/server/result_store.py); None: they use the data dir by path
    result_store: str | None = None
    #: times a job whose worker died (process killed, node lost) runs again (Ray executor only)
    retries: int = 2
    #: Ray executor: long-lived actors for the kinds that keep models loaded (JobKind.resident),
    #: at most this many (0: every job a task), each ended after this long idle
    resident_actors: int = 2
    resident_idle_s: float = 300.0
    #: per client (its CURVE key, else its connection): queued and running jobs; 0: no limit
    max_queued_per_client: int = 0
    max_running_per_client: int = 0
    max_submits_per_minute: int = 0  # per client; 0: no limit
    #: the largest input file of any job, bytes (0: 64 GiB); a kind's input may declare less
    max_input_bytes: int = 0

    @property
    def resolved_models_dir(self) -> Path:
        return Path(self.models_dir) if self.models_dir else Path(self.data_dir) / "models"


def is_loopback(address: str) -> bool:
    """True for ``inproc://``, ``ipc://`` and ``tcp://`` on a loopback host."""
    scheme, _, rest = address.partition("://")
    if scheme in ("inproc", "ipc"):
        return True
    if scheme != "tcp":
        return False
    host = rest.rsplit(":", 1)[0].strip("[]")
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
