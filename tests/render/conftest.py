"""Shared setup of the rasterizer, camera and fitting tests: helpers importable, a fresh seed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

from render_helpers import fresh_seed  # noqa: E402


@pytest.fixture
def seed() -> int:
    """A new random seed per test, printed (pytest shows it for failures)."""
    s = fresh_seed()
    print(f"seed = {s}  (replay with ANIM4D_SEED={s})")
    return s


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Run the rendering tests on one intra-op thread.

    These tensors are small, and with two threads every op waits at a barrier for both: when
    another process competes for the cores, that makes the tests 5 to 20 times slower.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
