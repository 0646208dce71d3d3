"""Fixtures for the headless render tests. Renders need the ``bpy`` module; the tests that run
one skip cleanly without it (``requires_bpy``: found with ``find_spec``, never imported here, so
the test process stays free of Blender)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

requires_bpy = pytest.mark.skipif(importlib.util.find_spec("bpy") is None,
                                  reason="needs the bpy module (pip install bpy==5.0.1)")


@pytest.fixture(scope="session", autouse=True)
def private_blender_user(tmp_path_factory):
    """Render subprocesses use a private Blender user folder, never the real one."""
    import os

    old = os.environ.get("BLENDER_USER_RESOURCES")
    os.environ["BLENDER_USER_RESOURCES"] = str(tmp_path_factory.mktemp("blender_user"))
    yield
    if old is None:
        os.environ.pop("BLENDER_USER_RESOURCES", None)
    else:
        os.environ["BLENDER_USER_RESOURCES"] = old
