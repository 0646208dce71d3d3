"""Fixtures: a real server on loopback TCP offering the debug kinds, and clients for it.

Hypothesis profiles: ``anim4d-ci`` (the default, what ``make test`` runs) is derandomised, with a
fixed number of examples and no example database, so two runs try the same examples.
``anim4d-fuzz`` draws fresh random examples, many more of them; it is selected by setting the
environment variable ``ANIM4D_FUZZ`` (``make fuzz``; unset, empty or ``0`` means off), whose value,
when a number above 1, is the example count.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

from backend.jobs.registry import debug_kinds
from backend.server.embedded import EmbeddedServer
from blender_addon.core.client import Client

settings.register_profile("anim4d-ci", derandomize=True, database=None, max_examples=150,
                          deadline=None, print_blob=True)
_fuzz = os.environ.get("ANIM4D_FUZZ", "")
settings.register_profile("anim4d-fuzz", derandomize=False, database=None, deadline=None,
                          max_examples=int(_fuzz) if _fuzz.isdigit() and int(_fuzz) > 1 else 1500,
                          print_blob=True)
settings.load_profile("anim4d-fuzz" if _fuzz not in ("", "0") else "anim4d-ci")


@pytest.fixture
def server(tmp_path):
    srv = EmbeddedServer(tmp_path / "data", kinds=debug_kinds(), cancel_grace_s=1.0,
                         heartbeat_s=0.3)
    yield srv
    srv.stop()


@pytest.fixture
def client(server):
    c = Client(server.address, timeout=60)
    yield c
    c.close()
