"""Fixtures for the data module tests: tiny glTF files built here, and the shared animal data.

``/work/shared/data`` (found beside the repository, or through ``ANIM4D_SHARED_DATA``) is
optional: tests that need it skip with a clear reason when it is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .builders import morph_quad, node_box, skinned_strip

REPO = Path(__file__).resolve().parents[2]


def shared_data_dir() -> Path | None:
    """The shared data folder, or None when this checkout does not have it."""
    env = os.environ.get("ANIM4D_SHARED_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(REPO / ".." / "shared" / "data")
    for c in candidates:
        if (c / "animals").is_dir():
            return c.resolve()
    return None


@pytest.fixture(scope="session")
def animals_dir() -> Path:
    d = shared_data_dir()
    if d is None:
        pytest.skip("shared data (../shared/data/animals or $ANIM4D_SHARED_DATA) is absent")
    return d / "animals"


@pytest.fixture(scope="session")
def horse_glb(animals_dir: Path) -> Path:
    p = animals_dir / "Horse.glb"
    if not p.is_file():
        pytest.skip(f"{p} is absent")
    return p


@pytest.fixture
def gltf_files(tmp_path: Path):
    """Builders of the tiny glTF files above, writing into ``tmp_path``."""

    class Files:
        strip = staticmethod(lambda name="strip.glb", **kw: skinned_strip(tmp_path / name, **kw))
        quad = staticmethod(lambda name="quad.glb": morph_quad(tmp_path / name))
        box = staticmethod(lambda name="box.glb", **kw: node_box(tmp_path / name, **kw))

    return Files
