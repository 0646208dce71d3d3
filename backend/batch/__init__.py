"""``anim4d batch``: one job kind run over many seeds or inputs, each rendered, with an index.

- :mod:`.plan` the items of a batch (seed x input), their names and the command that remakes one;
- :mod:`.index` the batch's ``index.json`` and ``index.html`` contact sheet;
- :mod:`backend.cli.batch_cmds` the command: submit, wait under one bar, fetch, render, index.

Nothing here imports bpy: rendering runs in its own process (:mod:`backend.blender_render`).
"""
