"""Render settings, the Cycles device, PNG frames and the MP4 (``bpy``, in the subprocess).

The MP4 is encoded by Blender's own FFmpeg: a second, empty scene whose sequencer plays the PNG
frames (over a grey colour strip, since H.264 has no alpha) renders them to MPEG-4/H.264, so the
frames are rendered once.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import bpy

from backend.blender_render.options import RenderOptions
from backend.blender_render.task import FRAME_PREFIX, rendered_frames

GPU_BACKENDS = ("OPTIX", "CUDA", "HIP", "ONEAPI", "METAL")
VIDEO_BACKGROUND = (0.5, 0.5, 0.5)


def find_gpu() -> str | None:
    """Enable every GPU of the first Cycles backend that has one; its name, or None."""
    prefs = bpy.context.preferences.addons["cycles"].preferences
    backends = {e.identifier for e in prefs.bl_rna.properties["compute_device_type"].enum_items}
    for backend in GPU_BACKENDS:
        if backend not in backends:
            continue
        prefs.compute_device_type = backend
        prefs.get_devices()
        gpus = [d for d in prefs.devices if d.type == backend]
        if gpus:
            for d in prefs.devices:
                d.use = d.type == backend
            return f"{backend} ({', '.join(d.name for d in gpus)})"
    return None


def setup_render(scene: bpy.types.Scene, options: RenderOptions) -> list[str]:
    """Cycles settings; returns notices (e.g. no GPU found, so the CPU renders)."""
    notices = []
    scene.render.engine = "CYCLES"
    cycles = scene.cycles
    cycles.samples = options.samples
    cycles.use_denoising = options.denoise
    cycles.device = "CPU"
    if options.device in ("gpu", "auto"):
        gpu = find_gpu()
        if gpu:
            cycles.device = "GPU"
            notices.append(f"rendering on the GPU: {gpu}")
        elif options.device == "gpu":
            notices.append("--device gpu: Cycles finds no GPU here; rendering on the CPU")
    render = scene.render
    render.resolution_x = render.resolution_y = options.resolution
    render.resolution_percentage = 100
    render.use_persistent_data = True
    if options.threads:
        render.threads_mode, render.threads = "FIXED", options.threads
    image = render.image_settings
    image.media_type = "IMAGE"
    image.file_format = "PNG"
    image.color_mode = "RGBA"
    image.color_depth = "8"
    return notices


def render_frames(scene: bpy.types.Scene, frames_dir: Path,
                  on_frame: Callable[[int, int], None]) -> list[Path]:
    """Render the scene's frame range to ``frames_dir/frame_####.png``; ``on_frame(done,
    total)`` after each frame is written."""
    frames_dir.mkdir(parents=True, exist_ok=True)
    for old in rendered_frames(frames_dir):
        old.unlink()  # a rerun into the same folder must not mix in stale frames
    scene.render.filepath = str(frames_dir / FRAME_PREFIX)
    total = scene.frame_end - scene.frame_start + 1
    done = [0]

    def written(*_args) -> None:
        done[0] += 1
        on_frame(done[0], total)

    bpy.app.handlers.render_write.append(written)
    try:
        bpy.ops.render.render(animation=True, scene=scene.name)
    finally:
        bpy.app.handlers.render_write.remove(written)
    frames = rendered_frames(frames_dir)
    if len(frames) != total:
        raise RuntimeError(f"Blender wrote {len(frames)} of {total} frames into {frames_dir}")
    return frames


def encode_video(frames: list[Path], video: Path, source: bpy.types.Scene) -> Path:
    """``frames`` (PNGs, in order) -> ``video`` (MPEG-4, H.264) at ``source``'s rate and size."""
    enc = bpy.data.scenes.new("Anim4D Encode")
    editor = enc.sequence_editor_create()
    n = len(frames)
    bg = editor.strips.new_effect("background", "COLOR", channel=1, frame_start=1, length=n)
    bg.color = VIDEO_BACKGROUND
    strip = editor.strips.new_image("frames", str(frames[0]), channel=2, frame_start=1)
    for f in frames[1:]:
        strip.elements.append(f.name)
    strip.blend_type = "ALPHA_OVER"
    enc.frame_start, enc.frame_end = 1, n
    r = enc.render
    r.fps, r.fps_base = source.render.fps, source.render.fps_base
    r.resolution_x, r.resolution_y = source.render.resolution_x, source.render.resolution_y
    r.resolution_percentage = 100
    r.image_settings.media_type = "VIDEO"
    r.image_settings.file_format = "FFMPEG"
    r.ffmpeg.format = "MPEG4"
    r.ffmpeg.codec = "H264"
    r.ffmpeg.constant_rate_factor = "HIGH"
    r.use_file_extension = False
    video.parent.mkdir(parents=True, exist_ok=True)
    if video.exists():
        video.unlink()
    r.filepath = str(video)
    bpy.ops.render.render(animation=True, scene=enc.name)
    bpy.data.scenes.remove(enc)
    if not video.is_file():
        raise RuntimeError(f"Blender's FFmpeg wrote no {video}")
    return video


def save_blend(path: Path) -> Path:
    """Save the render scene (its output path: the frames' folder) to ``path``."""
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    return path
