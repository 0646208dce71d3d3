"""Render the fitting test views with Blender (the ``bpy`` module): a textured, coloured mesh.

The mesh is Suzanne (subdivided once, smooth) with a procedural texture through an Emission shader,
so the pixel colours do not depend on lighting: a checker of two colours mixed with a colour
gradient over the object's generated coordinates, multiplied by a coloured noise texture. Cycles
on the CPU, transparent film, the "Standard" view transform; cameras are orbit cameras built with
:mod:`backend.render.cameras` and converted to Blender with it. The result is an ``.npz`` of uint8
RGBA images (straight alpha, as in the PNGs Blender writes) with float32 OpenCV ``viewmats``
[V, 4, 4] and ``Ks`` [V, 3, 3] in the project's Y-up world, and the train / test split.

Usage (the stored test data was made with the defaults)::

    python tests/render/make_views.py                       # tests/render/data/views48.npz
    python tests/render/make_views.py --size 128 --train 16 --test 4 --out out/bench/views128.npz
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from backend.render import cameras as cam  # noqa: E402

RADIUS = cam.STAG4D_RADIUS
FOV_Y = cam.STAG4D_FOV_DEG


def view_angles(n_train: int, n_test: int) -> tuple[list[float], list[float], list[bool]]:
    """Training views on two rings (elevations 25 and -5 degrees, evenly spaced azimuths);
    held-out views in between at 10 degrees. Returns azimuths, elevations, is_test."""
    az, el, test = [], [], []
    for i in range(n_train):
        az.append(360.0 * i / n_train)
        el.append(25.0 if i % 2 == 0 else -5.0)
        test.append(False)
    for j in range(n_test):
        az.append(360.0 * (j + 0.5) / n_test + 7.0)
        el.append(10.0)
        test.append(True)
    return az, el, test


def _build_scene(bpy, size: int, samples: int) -> None:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = samples
    scene.cycles.use_denoising = False
    scene.render.film_transparent = True
    scene.render.resolution_x = scene.render.resolution_y = size
    scene.render.resolution_percentage = 100
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGBA"
    scene.render.image_settings.color_depth = "8"
    scene.view_settings.view_transform = "Standard"
    scene.view_settings.look = "None"
    world = bpy.data.worlds.new("black")
    world.use_nodes = True
    world.node_tree.nodes["Background"].inputs["Color"].default_value = (0, 0, 0, 1)
    scene.world = world

    bpy.ops.mesh.primitive_monkey_add(size=1.3)
    obj = bpy.context.active_object
    mod = obj.modifiers.new("subdiv", "SUBSURF")
    mod.levels = mod.render_levels = 1
    bpy.ops.object.shade_smooth()

    mat = bpy.data.materials.new("textured_emission")
    mat.use_nodes = True
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    nodes.clear()
    out = nodes.new("ShaderNodeOutputMaterial")
    emit = nodes.new("ShaderNodeEmission")
    coords = nodes.new("ShaderNodeTexCoord")
    checker = nodes.new("ShaderNodeTexChecker")
    checker.inputs["Scale"].default_value = 5.0
    checker.inputs["Color1"].default_value = (0.85, 0.35, 0.05, 1.0)
    checker.inputs["Color2"].default_value = (0.05, 0.25, 0.8, 1.0)
    gradient = nodes.new("ShaderNodeMix")
    gradient.data_type = "RGBA"
    gradient.blend_type = "MIX"
    gradient.inputs["Factor"].default_value = 0.45
    noise = nodes.new("ShaderNodeTexNoise")
    noise.inputs["Scale"].default_value = 6.0
    noise.inputs["Detail"].default_value = 4.0
    speckle = nodes.new("ShaderNodeMix")
    speckle.data_type = "RGBA"
    speckle.blend_type = "MULTIPLY"
    speckle.inputs["Factor"].default_value = 0.6
    links.new(coords.outputs["Generated"], checker.inputs["Vector"])
    links.new(coords.outputs["Generated"], noise.inputs["Vector"])
    links.new(checker.outputs["Color"], gradient.inputs["A"])
    links.new(coords.outputs["Generated"], gradient.inputs["B"])
    links.new(gradient.outputs["Result"], speckle.inputs["A"])
    links.new(noise.outputs["Color"], speckle.inputs["B"])
    links.new(speckle.outputs["Result"], emit.inputs["Color"])
    emit.inputs["Strength"].default_value = 1.0
    links.new(emit.outputs["Emission"], out.inputs["Surface"])
    obj.data.materials.append(mat)


def render_views(
    out: Path, size: int = 48, n_train: int = 12, n_test: int = 4, samples: int = 64
) -> dict:
    """Render and save the views; returns the arrays written."""
    import bpy
    from mathutils import Matrix

    _build_scene(bpy, size, samples)
    scene = bpy.context.scene
    K = cam.intrinsics_from_fov(FOV_Y, size, size)
    lens = cam.blender_lens_from_K(K, size, size)
    data = bpy.data.cameras.new("view")
    for k in ("lens", "sensor_width", "sensor_height", "sensor_fit", "shift_x", "shift_y"):
        setattr(data, k, getattr(lens, k))
    data.clip_start, data.clip_end = 0.05, 100.0
    cam_obj = bpy.data.objects.new("view", data)
    scene.collection.objects.link(cam_obj)
    scene.camera = cam_obj

    az, el, test = view_angles(n_train, n_test)
    images, viewmats = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (a, e) in enumerate(zip(az, el, strict=True)):
            vm = cam.orbit_viewmat(a, e, RADIUS)
            cam_obj.matrix_world = Matrix(cam.viewmat_to_blender(vm).tolist())
            path = str(Path(tmp) / f"view_{i:02d}.png")
            scene.render.filepath = path
            bpy.ops.render.render(write_still=True)
            img = bpy.data.images.load(path)
            px = np.empty(size * size * 4, dtype=np.float32)
            img.pixels.foreach_get(px)
            bpy.data.images.remove(img)
            # Blender's rows start at the bottom.
            images.append(np.round(px.reshape(size, size, 4)[::-1] * 255).astype(np.uint8))
            viewmats.append(vm)
    arrays = {
        "images": np.stack(images),
        "viewmats": np.stack(viewmats).astype(np.float32),
        "Ks": np.stack([K] * len(images)).astype(np.float32),
        "is_test": np.array(test),
        "azimuths": np.array(az, dtype=np.float32),
        "elevations": np.array(el, dtype=np.float32),
        "radius": np.float32(RADIUS),
        "fov_y_deg": np.float32(FOV_Y),
        "samples": np.int32(samples),
        "blender_version": np.array(bpy.app.version_string),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **arrays)
    return arrays


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=48, help="image width and height in pixels")
    ap.add_argument("--train", type=int, default=12, help="number of training views")
    ap.add_argument("--test", type=int, default=4, help="number of held-out views")
    ap.add_argument("--samples", type=int, default=64, help="Cycles samples per pixel (>= 64)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "data" / "views48.npz")
    args = ap.parse_args(argv)
    t0 = time.time()
    arrays = render_views(args.out, args.size, args.train, args.test, args.samples)
    cover = float((arrays["images"][..., 3] > 0).mean())
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB, "
          f"{len(arrays['images'])} views, coverage {cover:.2f}) in {time.time() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
