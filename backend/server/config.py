"""Server settings (``anim4d serve`` flags map one to one onto these fields)."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

from shared.protocol import MAX_MESSAGE_BYTES
from shared.stream import DEFAULT_CHUNK_BYTES

DEFAULT_BIND = "tcp://127.0.0.1:5555"


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local",
                                                            "share")
    return Path(base) / "anim4d"


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
