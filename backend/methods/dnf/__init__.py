"""DNF part 1: shape and motion neural fields and the SVD dictionary.

Modules (one job each):

- :mod:`.config` presets ``tiny`` / ``paper`` (data, network sizes, schedules, held-out lists);
- :mod:`.sdf` exact point-triangle distances and generalised winding numbers (chunked torch);
- :mod:`.data` 4D sequences -> normalised instances, SDF samples and surface correspondences,
  cached as ``.npz`` with a content hash;
- :mod:`.fields` the shape (SDF auto-decoder) and motion (displacement) MLPs;
- :mod:`.dictionary` SVD of every linear layer, per-instance log-singular values, top-k
  compression, shared low-rank residual basis, batched functional forward;
- :mod:`.layout` the documented flat per-instance vector layout (part 2's tokenizer reads it);
- :mod:`.train` the training stages (a) MLPs, (b) SVD fine-tune, (c) top-k, (d) residual;
- :mod:`.decode` coefficients -> SDF grid -> marching cubes once -> mesh sequence at any times;
- :mod:`.fit_shape` fit a new mesh's shape coefficients with the dictionary frozen;
- :mod:`.metrics` Chamfer distance and volumetric IoU; :mod:`.checkpoint` safetensors + JSON
  (SHA-256 checked on load); :mod:`.model_files` a model folder's hash, size and held stages
  without torch (the server's model registry, :mod:`backend.models`);
- :mod:`.model` the trained model (MLPs, dictionaries, vectors per stage a-d);
- :mod:`.pipeline` ``run_prepare`` / ``fit_fields``; :mod:`.evaluate` the results tables;
- :mod:`.jobs` the ``dnf.reconstruct`` and ``dnf.fit_shape`` job kinds (``model`` = a name).
- :mod:`.gen` part 2: tokens, shape and motion diffusion, sampling (see its docstring).

Public API (what part 2 uses)::

    model = load_checkpoint(folder)                  # .checkpoint
    model.shape_vecs["d"]    # [N, D_shape]            one flat vector per instance
    model.motion_vecs["d"]   # [N, T, D_motion]        one per frame
    model.shape_layout("d"), model.motion_layout("d")  # .layout.FlatLayout: slices per layer
    decode(model, "d", shape_vec, motion_vecs, frame_times, times)  # .decode -> MeshSequence
    fit_shape_mesh(model, verts, faces)              # .fit_shape -> ShapeFit (vector [D_shape])

Coordinates: frame 0 of every instance is its canonical pose, normalised so its bounding box is
centred at 0 with largest side 1.8 (:func:`backend.data.normalize`); later frames use the same
transform.
"""
