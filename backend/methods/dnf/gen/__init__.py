"""DNF part 2: diffusion over the dictionary's per-instance vectors (generation).

Modules (one job each):

- :mod:`.tokens` flat vectors <-> standardised tokens, one per layer plus the code token;
- :mod:`.noise` the DDPM (training) and DDIM (sampling) schedulers of diffusers, one config;
- :mod:`.blocks` per-token projections, attention, timestep embedding, adaptive pre-norm;
- :mod:`.shape_denoiser` the unconditional transformer over shape tokens;
- :mod:`.motion_denoiser` the window denoiser over motion tokens: spatial, cross (to the
  shape's tokens) and temporal attention;
- :mod:`.windows` motion training windows with time-reversal augmentation;
- :mod:`.clips` which training clips move; the still ones are left out of motion training;
- :mod:`.sampling` DDIM loops, inpainting of known entries, window-by-window extension,
  progress and cancellation per diffusion step;
- :mod:`.training` ``train_shape_diffusion`` / ``train_motion_diffusion``;
- :mod:`.generator` trained generators: ``sample``, ``save_generator``, ``load_generator``;
- :mod:`.config` the dataclass configs;
- :mod:`.store` a model's generator kept in its folder (``generator/``), tied to the dictionary;
  ``fit_generator`` (the ``fit-generator`` command);
- :mod:`.creature` sampled coefficients -> mesh sequences (mesh once, then displace), stored in
  ``coefficients.safetensors`` for re-evaluation; :mod:`.mc` coarse-to-fine SDF grids.

Use::

    shape_gen = train_shape_diffusion(ShapeDiffusionConfig(), model.shape_vecs["d"],
                                      model.shape_layout("d"))
    motion_gen = train_motion_diffusion(MotionDiffusionConfig(), model.shape_vecs["d"],
                                        model.motion_vecs["d"], shape_gen.tokenizer,
                                        model.motion_layout("d"))
    shapes = shape_gen.sample(4, seed=0, steps=50)            # [4, D_shape]
    motions = motion_gen.sample(shapes, frames=32, seed=0)    # [4, 32, D_motion]
"""
