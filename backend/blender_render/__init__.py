"""Headless rendering of result folders with the ``bpy`` module (``anim4d render``, the
``render.video`` job kind).

The only part of ``backend/`` that uses ``bpy``, and only in a subprocess
(``python -m backend.blender_render``, see :mod:`.run`): a Blender crash cannot take the caller
down. bpy-free: :mod:`.options`, :mod:`.framing` (camera, lights, grid, frame range),
:mod:`.task` (the subprocess's task and events, output layout), :mod:`.run` (the API:
:func:`~.run.render_results`), :mod:`.job`. With ``bpy``: :mod:`.bl_scene`, :mod:`.bl_output`.
"""
