"""Fixtures for the add-on tests: a private Blender user folder, clean scenes, small results.

``BLENDER_USER_RESOURCES`` is pointed at a temporary folder before anything imports ``bpy``, so
the tests never touch the user's real Blender configuration.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
if "bpy" not in sys.modules:
    os.environ["BLENDER_USER_RESOURCES"] = tempfile.mkdtemp(prefix="anim4d_blender_user_")
for _path in (ROOT, Path(__file__).resolve().parent):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import addon_helpers as helpers  # noqa: E402


@pytest.fixture
def bpy_clean():
    """``bpy`` with an empty scene at 24 fps starting at frame 1."""
    bpy = pytest.importorskip("bpy", reason="needs the bpy module (pip install bpy==5.0.1)")
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base, scene.frame_start = 24, 1.0, 1
    return bpy


@pytest.fixture
def mesh_result(tmp_path: Path) -> Path:
    """A small mesh result folder (12 frames at 12 fps, 40 vertices, UVs and colours)."""
    return helpers.write_mesh_result(tmp_path / "mesh_result", frames=12, vertices=40, fps=12.0)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
