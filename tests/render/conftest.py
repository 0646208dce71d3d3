"""Shared setup of the rasterizer, camera and fitting tests: helpers importable, seeds.

Tests that take a ``seed`` argument run once per seed of
:func:`render_helpers.seeds_for_this_run`: a fixed list (a few seeds plus
``tests/regression_seeds.txt``) by default, so two runs run the same test ids;
``ANIM4D_SEED=<s>`` replays one; ``ANIM4D_FUZZ=<n>`` draws n fresh ones (``make fuzz``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

from render_helpers import seeds_for_this_run  # noqa: E402

SEEDS, SEED_SOURCE = seeds_for_this_run()


def _seed_line() -> str:
    if SEED_SOURCE == "fuzz":
        return (f"render tests ran {len(SEEDS)} fresh seeds (ANIM4D_FUZZ; replay one with "
                f"ANIM4D_SEED=<seed>, add failures to tests/regression_seeds.txt): "
                + " ".join(map(str, SEEDS)))
    return f"render test seeds ({SEED_SOURCE}): " + " ".join(map(str, SEEDS))


def pytest_report_header(config):
    return [_seed_line()]


def pytest_terminal_summary(terminalreporter):
    """Fuzz runs print their seeds at the end too (the header is hidden under ``-q``)."""
    if SEED_SOURCE == "fuzz":
        terminalreporter.write_line(_seed_line())


def pytest_generate_tests(metafunc):
    """Every test taking ``seed`` runs once per seed, with the seed in its id."""
    if "seed" in metafunc.fixturenames:
        metafunc.parametrize("seed", SEEDS, ids=[f"seed={s}" for s in SEEDS])


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
