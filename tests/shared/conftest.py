"""Fixtures for the shared/ tests: small random Gaussian frames."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from shared.gsply import GaussianFrame, sh_rest_count


def random_frame(n: int = 50, degree: int = 0, seed: int = 0) -> GaussianFrame:
    """``n`` Gaussians of SH degree ``degree`` with arbitrary (not activated) float32 values."""
    rng = np.random.default_rng(seed)

    def f(*shape: int) -> np.ndarray:
        return rng.normal(size=shape).astype(np.float32)

    return GaussianFrame(
        means=f(n, 3), quats=f(n, 4), log_scales=f(n, 3) - 4, opacity_logits=f(n),
        sh_dc=f(n, 3), sh_rest=f(n, sh_rest_count(degree), 3),
    )


@pytest.fixture
def make_frame() -> Callable[..., GaussianFrame]:
    return random_frame
