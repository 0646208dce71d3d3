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
    models_dir: Path | None = None  # None: <data_dir>/models (see backend/models/registry.py)

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
