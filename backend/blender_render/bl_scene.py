"""The render scene, built with ``bpy`` inside the render subprocess.

Results come in through the add-on's own importer (:func:`blender_addon.bl.importer.
import_result`, the code path an artist's Import uses). Around them: a camera framing the whole
animation (fixed 3/4 view or turntable, :mod:`framing`), three area lights, a shadow-catching
ground and a neutral world. Meshes with vertex colours show them; others get a clay material;
Gaussians keep the add-on's splat shader.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import bpy
import numpy as np
from mathutils import Matrix

from backend.blender_render import framing
from backend.blender_render.options import RenderOptions
from blender_addon.bl import importer

CLAY = (0.72, 0.66, 0.60, 1.0)
WORLD = (0.62, 0.63, 0.66)
WORLD_STRENGTH = 0.6
GROUND_SCALE = 30.0  # ground half-size in radii of the scene's bounds


@dataclass
class Placed:
    """One imported result: its objects (moved by ``offset``) and bounds after the move."""

    folder: Path
    representation: str
    objects: list = field(default_factory=list)
    bounds: framing.Bounds | None = None
    notices: list[str] = field(default_factory=list)


def reset_scene(fps: float, start: int, end: int) -> bpy.types.Scene:
    """A factory-fresh, empty scene at ``fps`` spanning frames ``start``..``end``."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.context.preferences.filepaths.save_version = 0  # no .blend1 beside a saved scene
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = framing.blender_fps(fps)
    scene.frame_start, scene.frame_end = start, end
    scene.frame_current = start
    return scene


def import_and_place(scene: bpy.types.Scene, folders: list[Path], grid: bool) -> list[Placed]:
    """Import each folder at scene frame 1 (its first sample); with ``grid``, move each to a
    grid cell (:func:`framing.grid_offsets`)."""
    placed = []
    for folder in folders:
        res = importer.open_result(folder)
        bounds = framing.result_bounds(res)  # checks there is something to render first
        objs, notices = importer.import_result(folder, start=1.0, scene=scene)
        placed.append(Placed(Path(folder), res.representation, objs, bounds, notices))
    if grid:
        offsets = framing.grid_offsets([p.bounds for p in placed])
        for p, off in zip(placed, offsets, strict=True):
            for obj in p.objects:
                obj.location = tuple(np.asarray(obj.location) + off)
            p.bounds = p.bounds.moved(off)
    return placed


def _principled(name: str) -> tuple[bpy.types.Material, bpy.types.Node]:
    mat = bpy.data.materials.new(name)
    mat.use_nodes = True
    bsdf = next(n for n in mat.node_tree.nodes if n.type == "BSDF_PRINCIPLED")
    bsdf.inputs["Roughness"].default_value = 0.55
    return mat, bsdf


def surface_material(obj: bpy.types.Object) -> bpy.types.Material:
    """Vertex colours (the mesh's ``Color`` attribute) when it has them, else clay."""
    mesh = obj.data
    if mesh.color_attributes.get("Color") is not None:
        mat, bsdf = _principled("Anim4D Vertex Colour")
        node = mat.node_tree.nodes.new("ShaderNodeVertexColor")
        node.layer_name = "Color"
        mat.node_tree.links.new(node.outputs["Color"], bsdf.inputs["Base Color"])
        return mat
    mat, bsdf = _principled("Anim4D Clay")
    bsdf.inputs["Base Color"].default_value = CLAY
    return mat


def apply_materials(placed: list[Placed]) -> None:
    """Meshes get :func:`surface_material`; Gaussian objects keep the importer's splat shader."""
    for p in placed:
        if p.representation != "mesh_sequence":
            continue
        for obj in p.objects:
            obj.data.materials.clear()
            obj.data.materials.append(surface_material(obj))


def add_ground(scene: bpy.types.Scene, bounds: framing.Bounds) -> bpy.types.Object:
    """A large plane under the scene's lowest point that only catches shadows."""
    size = GROUND_SCALE * bounds.radius
    mesh = bpy.data.meshes.new("Anim4D Ground")
    mesh.from_pydata([(-size, -size, 0), (size, -size, 0), (size, size, 0), (-size, size, 0)],
                     [], [(0, 1, 2, 3)])
    ground = bpy.data.objects.new("Anim4D Ground", mesh)
    ground.location = (float(bounds.center[0]), float(bounds.center[1]), float(bounds.lo[2]))
    ground.is_shadow_catcher = True
    scene.collection.objects.link(ground)
    return ground


def add_lights(scene: bpy.types.Scene, bounds: framing.Bounds) -> list[bpy.types.Object]:
    out = []
    for spec in framing.three_point_lights(bounds):
        light = bpy.data.lights.new(f"Anim4D {spec.name}", "AREA")
        light.energy = spec.power
        light.size = spec.size
        obj = bpy.data.objects.new(light.name, light)
        obj.matrix_world = Matrix(spec.matrix.tolist())
        scene.collection.objects.link(obj)
        out.append(obj)
    return out


def add_camera(scene: bpy.types.Scene, bounds: framing.Bounds, options: RenderOptions
               ) -> bpy.types.Object:
    """The camera: fixed, or keyed on every rendered frame for a turntable."""
    cam = bpy.data.objects.new("Anim4D Camera", bpy.data.cameras.new("Anim4D Camera"))
    cam.data.lens = framing.LENS_MM
    cam.data.sensor_width = framing.SENSOR_MM
    cam.data.sensor_fit = "AUTO"
    cam.data.clip_start = max(1e-3, 0.01 * bounds.radius)
    cam.data.clip_end = 1000.0 * bounds.radius
    scene.collection.objects.link(cam)
    scene.camera = cam
    frames = list(range(scene.frame_start, scene.frame_end + 1))
    size = options.resolution
    mats = framing.camera_matrices(bounds, options.camera, len(frames), size, size)
    cam.matrix_world = Matrix(mats[0].tolist())
    if len(mats) > 1:
        for f, m in zip(frames, mats, strict=True):
            cam.matrix_world = Matrix(m.tolist())
            cam.keyframe_insert("location", frame=f)
            cam.keyframe_insert("rotation_euler", frame=f)
    return cam


def setup_world(scene: bpy.types.Scene, transparent: bool) -> None:
    world = bpy.data.worlds.new("Anim4D World")
    world.use_nodes = True
    bg = next(n for n in world.node_tree.nodes if n.type == "BACKGROUND")
    bg.inputs["Color"].default_value = (*WORLD, 1.0)
    bg.inputs["Strength"].default_value = WORLD_STRENGTH
    scene.world = world
    scene.render.film_transparent = transparent
    scene.view_settings.view_transform = "Standard"  # colours as stored, not AgX's look


def build_scene(folders: list[Path], options: RenderOptions, fps: float, start: int, end: int,
                blend: Path | None = None) -> tuple[bpy.types.Scene, list[Placed]]:
    """Everything but the render settings: a fresh scene holding the results, lit and framed.

    ``blend``: saved there first, so a large mesh's PC2 cache goes beside it
    (``//anim4d_cache/``) and the saved scene travels."""
    scene = reset_scene(fps, start, end)
    if blend is not None:
        bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    placed = import_and_place(scene, folders, options.grid)
    apply_materials(placed)
    bounds = framing.Bounds.union([p.bounds for p in placed])
    add_ground(scene, bounds)
    add_lights(scene, bounds)
    add_camera(scene, bounds, options)
    setup_world(scene, options.transparent)
    return scene, placed
