"""The import boundaries of the repository's three parts, checked on the source (AST).

- ``shared/``: standard library and numpy only (the add-on vendors it), relative imports inside.
- ``blender_addon/``: never torch (Blender ships none); ``core/`` never bpy.
- ``backend/``: never bpy, except the headless rendering command.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Backend files that may import bpy (the headless rendering command, once it exists); every
# entry must name a real file, so a rename cannot silently widen or void the exception.
BPY_ALLOWED_IN_BACKEND: set[str] = {"backend/blender_render/bl_scene.py",
                                     "backend/blender_render/bl_output.py"}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def files(part: str) -> list[Path]:
    return [p for p in sorted((ROOT / part).rglob("*.py")) if "_vendor" not in p.parts]


def test_shared_uses_only_stdlib_and_numpy():
    allowed = set(sys.stdlib_module_names) | {"numpy", "__future__"}
    bad = {str(p.relative_to(ROOT)): sorted(imported_modules(p) - allowed)
           for p in files("shared")}
    assert {k: v for k, v in bad.items() if v} == {}


def test_shared_imports_itself_relatively():
    absolute = [str(p.relative_to(ROOT)) for p in files("shared")
                if "shared" in imported_modules(p)]
    assert absolute == [], "shared/ must import its own modules relatively (it is vendored)"


def test_blender_addon_never_imports_torch():
    bad = [str(p.relative_to(ROOT)) for p in files("blender_addon")
           if imported_modules(p) & {"torch", "backend"}]
    assert bad == []


def test_blender_addon_core_needs_no_bpy():
    bad = [str(p.relative_to(ROOT)) for p in files("blender_addon/core")
           if imported_modules(p) & {"bpy", "bmesh", "mathutils"}]
    assert bad == []


def test_bpy_exceptions_name_real_backend_files():
    missing = sorted(p for p in BPY_ALLOWED_IN_BACKEND if not (ROOT / p).is_file()
                     or not p.startswith("backend/") or not p.endswith(".py"))
    assert missing == [], f"BPY_ALLOWED_IN_BACKEND names files that do not exist: {missing}"


def test_backend_never_imports_bpy():
    bad = [str(p.relative_to(ROOT)) for p in files("backend")
           if str(p.relative_to(ROOT)) not in BPY_ALLOWED_IN_BACKEND
           and imported_modules(p) & {"bpy", "bmesh", "mathutils"}]
    assert bad == []


@pytest.mark.parametrize("module", ["shared.protocol", "shared.stream", "shared.results",
                                    "shared.gsply", "shared.manifest"])
def test_shared_modules_import_without_zmq_torch_or_bpy(module):
    code = (f"import sys, {module}; bad = {{'torch', 'bpy', 'zmq'}} & set(sys.modules); "
            "sys.exit(f'imported {bad}' if bad else 0)")
    import subprocess

    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr + run.stdout
