"""Running a server: in the foreground with signal handling (``anim4d serve``), or embedded in a
thread of the calling process (``make demo``, tests, scripts)."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

import zmq

from backend.jobs.registry import JobKind
from backend.server.config import ServerConfig
from backend.server.server import Server


def run_server(config: ServerConfig) -> None:
    """Serve until SIGINT or SIGTERM; running jobs are marked interrupted, results stay."""
    server = Server(config)
    server.bind()

    def _stop(signum, _frame):
        logging.getLogger("anim4d.server").info("%s received: shutting down",
                                                signal.Signals(signum).name)
        server.stop()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    print(f"anim4d: serving on {server.address} (data in {server.store.root}); Ctrl-C stops",
          flush=True)
    server.serve_forever()


class EmbeddedServer:
    """A server on a background thread of this process; jobs still run in worker processes.

    ``config``: any other :class:`ServerConfig` field, e.g. ``models_dir`` (default
    ``<data_dir>/models``; the shipped models are offered either way)."""

    def __init__(self, data_dir: str | Path, bind: str = "tcp://127.0.0.1:*",
                 debug_kinds: bool = False, kinds: dict[str, JobKind] | None = None,
                 context: zmq.Context | None = None, **config):
        cfg = ServerConfig(bind=bind, data_dir=Path(data_dir), debug_kinds=debug_kinds, **config)
        self.server = Server(cfg, kinds=kinds, context=context)
        self.address = self.server.bind()
        self._thread = threading.Thread(target=self.server.serve_forever, name="anim4d-server",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self.server.stop()
        self._thread.join(timeout)

    def __enter__(self) -> EmbeddedServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_embedded_server(data_dir: str | Path, bind: str = "tcp://127.0.0.1:*",
                          **kwargs) -> EmbeddedServer:
    return EmbeddedServer(data_dir, bind, **kwargs)
