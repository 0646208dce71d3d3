"""Server defaults that the CLI's ``--help`` shows: standard library only, so building the
argument parser imports neither numpy nor zmq (``backend/server/config.py`` re-exports them)."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_BIND = "tcp://127.0.0.1:5555"


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local",
                                                            "share")
    return Path(base) / "anim4d"
