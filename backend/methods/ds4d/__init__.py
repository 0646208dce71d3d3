"""DS4D, part 1 foundations: video -> masked clip -> views -> features -> DSFD/TSSF -> deformation.

Modules (one job each):

- :mod:`.video_io` read a video (PyAV) or an image sequence into uint8 frames;
- :mod:`.keying` masks for RGB frames on a uniform background (white, black, green...);
- :mod:`.clip` masks + one crop box over all frames + resample -> :class:`.clip.Clip`;
- :mod:`.views` the multi-view source interface (:class:`.views.ViewSource`), the input view
  alone and user-supplied views with cameras; :mod:`.view_files` the supplied views from
  uploaded files (view clips + a cameras file, :mod:`shared.cameras`);
- :mod:`.features` DINOv2 patch grids (offline loader) or the weight-free descriptor;
- :mod:`.dsfd` dynamic-static feature decoupling;
- :mod:`.tssf` point features at projected Gaussian centres, GA and DA fusion;
- :mod:`.point_features` per-view DSFD maps over time, sampled at centres at any time;
- :mod:`.hexplane` the (x, y, z, t) HexPlane field; :mod:`.deformation` the deformation MLP;
- :mod:`.init_points` voted visual hull and inflated silhouette initial points;
- :mod:`.presets` the ``tiny`` / ``cpu`` / ``paper`` training presets;
- :mod:`.model` a trained model (canonical Gaussians + sampler + TSSF + deformation), frames at
  any time, save/load;
- :mod:`.train` the static and dynamic stages on :class:`backend.render.trainer.GaussianTrainer`;
- :mod:`.jobs` the ``video.to4d`` and ``video.resample`` job kinds.
"""
