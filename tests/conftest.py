"""Every test can import :mod:`support` (shared waiting and skip markers).

Caches the code writes for itself (the DNF copy guard's training prints,
:mod:`backend.methods.dnf.gen.novelty`) go to the checkout's ignored ``out/test-cache``, not the
user's ``~/.cache``: built once, reused by later runs and by the servers the tests start (they
inherit the environment).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

_TESTS = str(Path(__file__).resolve().parent)
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

os.environ.setdefault("ANIM4D_CACHE", str(Path(_TESTS).parent / "out" / "test-cache"))
