"""Fixtures: a real server on loopback TCP offering the debug kinds, and clients for it."""

from __future__ import annotations

import pytest

from backend.jobs.registry import debug_kinds
from backend.server.embedded import EmbeddedServer
from blender_addon.core.client import Client


@pytest.fixture
def server(tmp_path):
    srv = EmbeddedServer(tmp_path / "data", kinds=debug_kinds(), cancel_grace_s=1.0,
                         heartbeat_s=0.3)
    yield srv
    srv.stop()


@pytest.fixture
def client(server):
    c = Client(server.address, timeout=10)
    yield c
    c.close()
