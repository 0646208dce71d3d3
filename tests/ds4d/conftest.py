"""DS4D foundation tests: one torch thread (small tensors; see tests/render/conftest.py)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """An embedded server offering the video.* kinds, one per test module."""
    from backend.jobs.registry import builtin_kinds
    from backend.server.embedded import EmbeddedServer

    kinds = {k: v for k, v in builtin_kinds().items() if k.startswith("video.")}
    srv = EmbeddedServer(tmp_path_factory.mktemp("srv") / "data", kinds=kinds,
                         cancel_grace_s=60.0, heartbeat_s=0.3)
    yield srv
    srv.stop()
