"""DS4D evaluation study (issues 10 and 11): Blender ground truth, reconstructions on an embedded
backend, renders with our rasterizer, metrics and the results page ``docs/results/ds4d.md``.
``bench/eval_ds4d.py`` runs it."""
