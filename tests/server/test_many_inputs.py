"""More input files than a message may carry arrays (``protocol.MAX_ARRAYS``): the client
inlines what fits and uploads the rest, so a 16-frame clip with three 16-frame views (65 files)
is accepted (it was refused with "content 'arrays' must be a list of at most 64 entries")."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from backend.jobs.registry import builtin_kinds
from backend.server.embedded import EmbeddedServer
from blender_addon.core.client import Client
from shared.protocol import MAX_ARRAYS


@pytest.fixture
def served(tmp_path):
    kinds = {k: v for k, v in builtin_kinds().items() if k == "video.to4d"}
    srv = EmbeddedServer(tmp_path / "data", kinds=kinds, heartbeat_s=0.3)
    yield srv
    srv.stop()


def test_more_files_than_message_arrays_are_uploaded(served, tmp_path):
    yy, xx = np.mgrid[:32, :32]
    frames = []
    for i in range(MAX_ARRAYS + 6):
        img = np.zeros((32, 32, 4), np.uint8)
        disc = (yy - 16) ** 2 + (xx - 12 - i % 8) ** 2 < 64
        img[disc] = (200, 120, 40, 255)
        frames.append(tmp_path / f"f_{i:03d}.png")
        Image.fromarray(img).save(frames[-1])
    stages = []
    with Client(served.address, timeout=60) as c:
        job = c.submit("video.to4d", {"preset": "tiny"}, frames, on_progress=stages.append)
        info = c.wait(job)
    assert info.state == "done", info.error
    assert sum(p.state == "uploading" for p in stages) >= 6  # the ones past the array limit
