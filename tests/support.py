"""Helpers several test folders share: polling with a ceiling, and the bpy skip marker."""

from __future__ import annotations

import importlib.util
import time

import pytest

#: catches a hang, never a slow machine: no test asserts how fast something happens
CEILING = 120.0

requires_bpy = pytest.mark.skipif(importlib.util.find_spec("bpy") is None,
                                  reason="needs the bpy module (pip install bpy==5.0.1)")


def until(predicate, timeout: float = CEILING, what: str = "condition"):
    """Poll ``predicate`` until it is true and return its value (a bound against hangs, not a
    timing assertion)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")
