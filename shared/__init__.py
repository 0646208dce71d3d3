"""Anim4D shared code: wire protocol and result formats.

Standard library and numpy only (the Blender add-on vendors this package). Modules import each
other relatively so the vendored copy never clashes with another add-on's modules.
"""

__version__ = "0.1.0"
