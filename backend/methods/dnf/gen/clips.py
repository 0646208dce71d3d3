"""Which training clips move: the still ones are left out of motion-diffusion training.

A clip's motion share is measured as a sample's is (:func:`.creature.motion_share`): its
decoded canonical mesh (marching cubes at ``resolution``, default 32), moved by the motion field
at each of its fitted motion vectors; the mean distance of the vertices from frame 0 over the
other frames, as a share of the canonical bounding-box diagonal. It is measured on the
dictionary's own decoded clips (no source data needed), so the generator is trained on exactly
what it reads.

Why: the motion generator is conditioned on the shape. In the ``tiny`` dictionary 16 of the 100
clips move under 1 % (the ``Idle_2`` clip of each farm animal, the Apatosaurus idle and walk, the
five ``Sea_*`` swims, the procedural idle; measured at resolution 32), so shapes like those
animals' were sampled with an idle motion that a user sees as a creature that does not move
(``creature.sample`` redraws such motion, but a shape the generator has learnt to idle keeps
idling). ``MotionDiffusionConfig.min_clip_motion`` (the presets: 0.01, the sample bar's own 1 %)
leaves clips under it out of motion training; the shape diffusion still sees every shape, and
the generator records which clips were left out and their shares (``motion.json``'s
``info["still_clips"]``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from shared.errors import FormatError

from ..decode import displace
from .creature import mesh_shape, motion_share

CLIP_RESOLUTION = 32


def clip_motion_shares(model, stage: str, resolution: int = CLIP_RESOLUTION,
                       indices: Sequence[int] | None = None) -> np.ndarray:
    """Motion share ``[N]`` (module docstring) of each of the ``model``'s fitted clips of
    ``stage`` (or of the clips ``indices``, in that order); 0 for a clip whose shape decodes to
    no surface or that has one frame."""
    shapes, motions = model.shape_vecs[stage], model.motion_vecs[stage]
    which = range(shapes.shape[0]) if indices is None else list(indices)
    out = np.zeros(len(which))
    for k, i in enumerate(which):
        verts, faces, _ = mesh_shape(model, stage, shapes[i], resolution)
        if len(faces) == 0:
            continue
        seq = displace(model.motion_rep(stage), verts, model.shape_code(stage, shapes[i]),
                       motions[i].float())
        out[k] = motion_share(verts, seq)
    return out


def moving_clips(model, stage: str, min_share: float,
                 resolution: int = CLIP_RESOLUTION) -> tuple[torch.Tensor, list]:
    """``(keep [N] bool, still)``: which clips move at least ``min_share`` (all when it is 0)
    and ``[[name, share], ...]`` of those that do not. Raises :class:`FormatError` when no
    clip moves that much."""
    n = model.shape_vecs[stage].shape[0]
    if min_share <= 0:
        return torch.ones(n, dtype=torch.bool), []
    shares = clip_motion_shares(model, stage, resolution)
    keep = torch.from_numpy(shares >= min_share)
    still = [[model.instances[i]["name"], round(float(shares[i]), 5)]
             for i in range(n) if not keep[i]]
    if not bool(keep.any()):
        raise FormatError(f"none of the {n} clips of stage {stage!r} moves at least "
                          f"{min_share:.2%} of its size (largest: {shares.max():.2%}); lower "
                          "the generator preset's min_clip_motion")
    return keep, still
