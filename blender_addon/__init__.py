"""Anim4D for Blender: connect to a backend, submit jobs, watch progress, import and retime.

Only registration lives here; the logic is in ``core`` (no bpy) and ``bl`` (bpy).
"""

from __future__ import annotations


def register() -> None:
    from .bl import registration

    registration.register()


def unregister() -> None:
    from .bl import registration

    registration.unregister()
