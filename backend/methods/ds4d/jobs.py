"""Job kinds of DS4D (registered in ``backend/jobs/registry.py``):

- ``video.to4d``: an uploaded video (or RGBA image) of a creature -> animated 4D Gaussians
  (a ``gaussian_sequence``: one 3DGS ``.ply`` per working frame). Progress per step; a
  ``preview`` event every ``preview_every`` steps with the current Gaussians at a few times; a
  cancel ends the job ``done`` with the latest state and ``extra.cancelled_at_step``. The
  manifest's ``cameras`` list the views' cameras (``input`` first) in the result's Y-up frame;
  ``extra.state_file`` names the trained state (``ds4d_state.pt``, kept on the server, not
  sent with the result) that ``video.resample`` reads.
  Inputs (``shared/PROTOCOL.md``, "Inputs"): ``video`` (one video, or the frames of an image
  sequence), optional ``masks`` (one mask per frame), ``views`` (other views, one clip each, see
  :mod:`.view_files`) and ``cameras`` (their cameras, :mod:`shared.cameras`). The ``background``
  parameter says where the mask comes from (:data:`.clip.BACKGROUNDS`). From the CLI::

      anim4d submit video.to4d --input clip.mp4 --param preset=cpu --wait --out out/clip4d
      anim4d submit video.to4d --input f/*.png --input-for masks m/*.png --wait --out out/m
      anim4d submit video.to4d --input clip.mp4 --param background=green --wait --out out/g
      anim4d submit video.to4d --input front.mp4 --input-for views left.mp4 back.mp4 \
          --input-for cameras cams.json --param preset=cpu --wait --out out/mv
- ``video.resample``: a finished ``video.to4d`` result (a ``job`` parameter) re-evaluated at new
  times (``floats``, seconds from the clip's first frame) through the continuous deformation
  field, without training again; at the result's own times it reproduces its frames exactly.

No pretrained weights are needed: without DINOv2 on the server the weight-free descriptor is
used (the result's ``extra.features`` says which). ``views_source``: ``auto`` (the supplied views
if any, else the input view alone), ``input``, ``supplied``, or ``zero123pp`` (six Zero123++ v1.1
pseudo-views per frame, :mod:`.pseudo_views`; a server without its weights fails the job naming
the model and ``anim4d models fetch zero123pp``). The pretrained models the server found
(``anim4d models list``: its models folder, then the library caches) arrive in
``ctx.models``. ``extra.views_source`` and ``extra.view_loss`` (``lpips``, ``msdssim`` = the
multi-scale D-SSIM substitute, or ``none`` with one view) record what was used.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from backend.jobs.api import JobCancelled, JobContext
from shared.cameras import camera_dict
from shared.errors import JobError, ParamError
from shared.gaussians import GaussianResultWriter
from shared.manifest import Manifest
from shared.params import InputSpec, KindSpec, ParamSpec
from shared.resample import manifest_field

from .video_io import IMAGE_SUFFIXES, VIDEO_SUFFIXES, natural_key

if TYPE_CHECKING:  # the server imports this module for the specs: no torch at import time
    from backend.render.gaussians import Gaussians

log = logging.getLogger("anim4d.ds4d")
TO4D = "video.to4d"
RESAMPLE = "video.resample"
STATE_FILE = "ds4d_state.pt"
PREVIEW_MAX_GAUSSIANS = 20_000
DEFAULT_FPS = 24.0  # image inputs have no frame rate
PRESET_NAMES = ("tiny", "cpu", "paper")  # .presets.PRESETS (a test keeps them equal)
BACKGROUNDS = ("auto", "alpha", "mask", "white", "black", "green")  # .clip.BACKGROUNDS (a test)
VIEWS_SOURCES = ("auto", "input", "supplied", "zero123pp")
POINT_FEATURES = ("dsfd", "raw", "none")  # .presets.DS4DConfig.point_features
TSSF_CHOICES = ("auto", "ga", "da", "mean")  # .presets.DS4DConfig.tssf_mode

TO4D_KIND = KindSpec(
    name=TO4D, title="Video to 4D",
    description="Reconstruct animated 4D Gaussians from a video of a creature (DS4D); RGBA "
                "video: alpha is the mask, RGB: a uniform background is keyed out",
    representation="gaussian_sequence",
    params=(
        ParamSpec("preset", "enum", "cpu", choices=PRESET_NAMES,
                  help="tiny (tests), cpu (16 frames, ~10 min on 2 cores), paper"),
        ParamSpec("frames", "int", 0, help="Working frames; 0 = the preset's", min=0,
                  max=1000),
        ParamSpec("steps", "int", 0, help="Dynamic-stage steps; 0 = the preset's", min=0,
                  max=100_000),
        ParamSpec("static_steps", "int", 0, help="Static-stage steps; 0 = the preset's",
                  min=0, max=100_000),
        ParamSpec("preview_every", "int", 0, help="Steps between previews; 0 = the preset's",
                  min=0, max=100_000),
        ParamSpec("seed", "int", 0, help="Random seed", min=0, max=2**31 - 1),
        ParamSpec("background", "enum", "auto", choices=BACKGROUNDS,
                  help="Where the mask comes from: auto (alpha of RGBA frames, else the masks "
                       "input, else a keyed uniform background), alpha, mask (the masks "
                       "input), or a colour to key out: white, black, green"),
        ParamSpec("views_source", "enum", "auto", choices=VIEWS_SOURCES,
                  help="Where the other views come from: auto (the supplied views if any, "
                       "else the input view alone), input, supplied (the views and cameras "
                       "inputs), zero123pp (six generated views per frame; needs the Zero123++ "
                       "v1.1 weights on the server: anim4d models fetch zero123pp)"),
        ParamSpec("zero123pp_steps", "int", 0, help="Zero123++ sampling steps per frame; 0 = "
                  "28 (upstream's default; 75 for fine detail)", min=0, max=200),
        ParamSpec("point_features", "enum", "dsfd", choices=POINT_FEATURES,
                  help="Ablation switch: the per-point features the deformation sees: dsfd "
                       "(the method), raw (frame features without DSFD), none (HexPlane only)"),
        ParamSpec("tssf", "enum", "auto", choices=TSSF_CHOICES,
                  help="Fusion of the views' point features: auto (DA with other views, else "
                       "GA), ga, da, or mean (ablation: no learnt fusion)"),
    ),
    inputs=(InputSpec("video", VIDEO_SUFFIXES + IMAGE_SUFFIXES, multiple=True,
                      help="The clip: one video, or the frames of an image sequence (in "
                           "natural name order); RGBA, or RGB on a plain background"),
            InputSpec("masks", VIDEO_SUFFIXES + IMAGE_SUFFIXES, required=False, multiple=True,
                      help="Optional mask sequence, one mask per frame of the clip (a video or "
                           "images, white = object); implies background=mask"),
            InputSpec("views", VIDEO_SUFFIXES + IMAGE_SUFFIXES, required=False, multiple=True,
                      help="Optional other views with the clip's frame count: one video "
                           "(left.mp4) or image sequence (left_0001.png...) per view, named as "
                           "in the cameras file"),
            InputSpec("cameras", (".json",), required=False, max_bytes=16_000_000,
                      help="The views' cameras: a JSON list of {name, world_to_camera (4x4 "
                           "OpenCV), K, width, height} in the result's Y-up frame, the clip's "
                           "named input")),
    section="DS4D", resample_kind=RESAMPLE,
)

RESAMPLE_KIND = KindSpec(
    name=RESAMPLE, title="Resample 4D Gaussians",
    description="Re-evaluate a finished video.to4d result at new times (no training)",
    representation="gaussian_sequence",
    params=(
        ParamSpec("source", "job", "", help="The finished video.to4d job"),
        ParamSpec("times", "floats", (0.0,), help="Seconds from the clip's first frame, "
                  "increasing, within the clip", min=0.0, max=1e6, max_items=10_000),
    ),
    section="DS4D", resample_kind=RESAMPLE,
)


def _clip_source(inputs: list[Path], what: str = "") -> Path | list[Path]:
    """One video, or image files (one or more, in natural name order)."""
    what = what or "a video or the images of a sequence"
    if not inputs:
        raise ParamError(f"{TO4D}: needs {what}; got no file")
    videos = [p for p in inputs if p.suffix.lower() in VIDEO_SUFFIXES]
    if videos and len(inputs) > 1:
        raise ParamError(f"{TO4D}: give one video, or image files only, for {what}; got "
                         f"{len(inputs)} files including the video {videos[0].name}")
    if videos:
        return inputs[0]
    return sorted(inputs, key=natural_key)


def _frame_seconds(clip) -> tuple[np.ndarray, float]:
    """(seconds of each working frame from the first, the clip's duration in seconds)."""
    fps = float(clip.fps or DEFAULT_FPS)
    src = np.asarray(clip.source_indices, dtype=np.float64)
    seconds = (src - src[0]) / fps
    return seconds, float(seconds[-1])


def _write(ctx: JobContext, frames: list[Gaussians], seconds, kind: str, params: dict,
           extra: dict, cameras: list[dict], seed: int | None) -> Manifest:
    with GaussianResultWriter(ctx.out_dir, kind=kind, params=params, job_id=ctx.job_id,
                              seed=seed, extra=extra, overwrite=True) as w:
        for g, s in zip(frames, seconds, strict=True):
            w.add_frame(g.to_frame(), float(s))
    manifest = w.manifest
    manifest.cameras = cameras
    return manifest


def preview_payload(stage: str, step: int, steps: int, times: list[float],
                    frames: list[Gaussians], seconds_per_unit: float) -> tuple[dict, dict]:
    """(content, arrays) of a ``preview`` event: the same Gaussians (at most
    :data:`PREVIEW_MAX_GAUSSIANS`, an even subset) at each time. Arrays: ``means`` [K, N, 3],
    ``quats`` [K, N, 4], ``log_scales`` [K, N, 3] float32 (per time), ``opacity_logits`` [N],
    ``sh_dc`` [N, 3] float32 (shared)."""
    n = frames[0].count
    keep = np.arange(n) if n <= PREVIEW_MAX_GAUSSIANS else np.linspace(
        0, n - 1, PREVIEW_MAX_GAUSSIANS).astype(np.int64)

    def stack(name: str) -> np.ndarray:
        return np.stack([getattr(f, name).numpy()[keep] for f in frames]).astype(np.float32)

    content = {"stage": stage, "step": int(step), "steps": int(steps),
               "times": [float(t) * seconds_per_unit for t in times], "count": int(len(keep)),
               "total": int(n)}
    arrays = {"means": stack("means"), "quats": stack("quats"),
              "log_scales": stack("log_scales"),
              "opacity_logits": frames[0].opacity_logits.numpy()[keep].astype(np.float32),
              "sh_dc": frames[0].sh0[:, 0].numpy()[keep].astype(np.float32)}
    return content, arrays


def _train_device() -> tuple[str, str, str | None]:
    """(device, rasterizer, note): CUDA with gsplat when this torch sees a GPU and gsplat
    imports; CUDA with our rasterizer (much slower than gsplat, faster than the CPU) when gsplat
    is missing, with a note saying how to install it; else the CPU."""
    import torch

    from backend.render.dispatch import gsplat_available

    if not torch.cuda.is_available():
        return "cpu", "auto", None
    if gsplat_available():
        return "cuda", "auto", None
    return "cuda", "torch", ("gsplat is not installed on the server, so training used the "
                             "built-in rasterizer on the GPU (50-200x slower than gsplat); "
                             "install it with `pip install -e '.[cuda]'`")


def _zero123pp_source(ctx: JobContext, clip, steps: int):
    """Zero123++ pseudo-views of every frame (progress 0.02 -> 0.05; a cancel ends the job)."""
    import torch

    from .pseudo_views import Zero123ppViews
    from .zero123pp import REPO, Zero123ppConfig

    cuda = torch.cuda.is_available()
    zcfg = Zero123ppConfig(model=ctx.models.get("zero123pp", REPO),
                           device="cuda" if cuda else "cpu",
                           dtype="float16" if cuda else "float32")
    if steps:
        zcfg.steps = steps

    def progress(done: int, total: int) -> None:
        ctx.progress("views", 0.02 + 0.03 * done / total,
                     f"Zero123++ views of frame {done}/{total}")

    ctx.progress("views", 0.02, "Zero123++: loading the model", force=True)
    try:
        return Zero123ppViews(clip, zcfg, progress=progress, cancelled=ctx.cancelled)
    except InterruptedError:
        raise JobCancelled() from None


def run_to4d(ctx: JobContext, params: dict, inputs: list[Path]) -> Manifest:
    import torch

    from backend.jobs.api import inputs_by_slot

    from .clip import InputConfig, load_clip
    from .presets import preset
    from .train import Scene, train
    from .view_files import supplied_view_source

    params = TO4D_KIND.validate_params(params)
    slots = inputs_by_slot(TO4D_KIND, [Path(p) for p in inputs])
    source = _clip_source(slots["video"])
    masks = _clip_source(slots["masks"], "the mask sequence") if slots["masks"] else None
    cameras_file = slots["cameras"][0] if slots["cameras"] else None
    cfg = preset(params["preset"])
    cfg.seed = params["seed"]
    if params["frames"]:
        cfg.frames = params["frames"]
    if params["steps"]:
        cfg.dynamic_steps = params["steps"]
    if params["static_steps"]:
        cfg.static_steps = params["static_steps"]
    if params["preview_every"]:
        cfg.preview_every = params["preview_every"]
    cfg.point_features = params["point_features"]
    cfg.tssf_mode = params["tssf"]
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    ctx.progress("load", 0.0, f"Reading {len(inputs)} file(s)", force=True)
    in_cfg = InputConfig(size=cfg.size, frames=cfg.frames, background=params["background"])
    clip = load_clip(source, in_cfg, masks=masks)
    cfg.feature_model = ctx.models.get("dinov2-small", cfg.feature_model)
    cfg.lpips_folder = ctx.models.get("lpips-alex", cfg.lpips_folder)
    views_source = params["views_source"]
    if views_source == "auto":
        # a cameras file alone (naming only 'input') places the input camera: input view only
        views_source = "supplied" if slots["views"] else "input"
    if views_source in ("input", "zero123pp") and slots["views"]:
        raise ParamError(f"{TO4D}: views_source={views_source} takes no views input, got "
                         f"{len(slots['views'])} file(s); use views_source=supplied")
    if views_source == "supplied" and not slots["views"]:
        raise ParamError(f"{TO4D}: views_source=supplied needs the views input (one clip per "
                         "view) and a cameras file")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if views_source == "zero123pp":
            source = _zero123pp_source(ctx, clip, params["zero123pp_steps"])
        else:
            source = supplied_view_source(clip, slots["views"], cameras_file, in_cfg)
        notes = [str(w.message) for w in caught]
    scene = Scene.from_source(source)
    seconds, duration = _frame_seconds(clip)
    span = 0.05, 0.95  # of the job's progress spent training

    def report(stage: str, fraction: float, message: str) -> None:
        try:
            ctx.progress(stage, span[0] + (span[1] - span[0]) * fraction, message)
        except JobCancelled:
            pass  # the trainer sees the cancel at its next step and keeps the latest state

    def cancelled() -> bool:
        if ctx.cancelled():
            ctx.finishing()  # the server waits while the latest state is saved
            return True
        return False

    def preview(stage, step, times, frames) -> None:
        total = cfg.static_steps + cfg.dynamic_steps
        ctx.preview(*preview_payload(stage, step, total, times, frames, duration))

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        device, cfg.rasterizer, device_note = _train_device()
        if device_note:
            notes.append(device_note)
        result = train(scene, cfg, report, cancelled, preview, device=device)
        notes += [str(w.message) for w in caught if "feature" in str(w.message).lower()]
    ctx.sink("save", 0.96, f"Writing {clip.num_frames} frames")
    times = [float(t) for t in scene.times]
    frames = result.model.frames(None, times)
    cameras = [camera_dict(name, scene.viewmats[v].double().numpy(),
                           scene.Ks[v].double().numpy(), int(scene.rgba.shape[3]),
                           int(scene.rgba.shape[2]))
               for v, name in enumerate(scene.names)]
    extra = {"gaussians_correspond": True, "state_file": STATE_FILE, "preset": cfg.name,
             "features": result.feature_kind, "steps": result.steps, "duration_s": duration,
             "notes": notes, "mask_source": clip.mask_source, "clip_times": times,
             "views_source": views_source, "view_loss": result.view_loss or "none",
             "point_features": cfg.point_features, "tssf": result.model.tssf.mode}
    if result.view_loss_why:
        notes.append(f"other views' loss: {result.view_loss_why}")
    if result.cancelled_at_step is not None:
        extra["cancelled_at_step"] = int(result.cancelled_at_step)
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    result.model.save(ctx.out_dir / STATE_FILE, {"duration_s": duration, "frame_seconds":
                                                 [float(s) for s in seconds],
                                                 "clip_times": times})
    manifest = _write(ctx, frames, seconds, TO4D, params, extra, cameras, cfg.seed)
    manifest.resample = manifest_field(RESAMPLE, duration)
    ctx.sink("done", 1.0, f"{len(frames)} frames, {frames[0].count} Gaussians"
             + (f" (cancelled at step {result.cancelled_at_step})"
                if result.cancelled_at_step is not None else ""))
    return manifest


def open_trained(ctx: JobContext, source: str, kind: str):
    """(model, meta, source result) of the finished ``video.to4d`` job ``source``, for the kinds
    that work from its trained state (``kind`` names the asking kind in errors)."""
    from .model import DS4DModel

    src = ctx.open_source(source)
    folder = ctx.source(source)
    state = src.manifest.extra.get("state_file")
    if src.manifest.kind != TO4D or not state or not (folder / state).is_file():
        raise JobError(f"job {source} is a {src.manifest.kind} result without a DS4D state; "
                       f"{kind} takes a {TO4D} result", "bad_param")
    ctx.progress("load", 0.1, "Loading the trained state", force=True)
    model, meta = DS4DModel.load(folder / state)
    return model, meta, src


def run_resample(ctx: JobContext, params: dict, inputs: list[Path]) -> Manifest:
    params = RESAMPLE_KIND.validate_params(params)
    if inputs:
        raise ParamError(f"{RESAMPLE}: takes no input files, got {len(inputs)}")
    model, meta, src = open_trained(ctx, params["source"], RESAMPLE)
    duration = float(meta["duration_s"])
    seconds = [float(s) for s in params["times"]]
    if any(b <= a for a, b in zip(seconds, seconds[1:], strict=False)):
        raise ParamError(f"{RESAMPLE}: times must increase, got {seconds[:8]}")
    if seconds[-1] > duration + 1e-9:
        raise ParamError(f"{RESAMPLE}: time {seconds[-1]:g} s is past the clip's end "
                         f"({duration:g} s); accepted: 0 to {duration:g}")
    # A time equal to one of the result's frames uses that frame's exact clip time.
    known = dict(zip(meta["frame_seconds"], meta["clip_times"], strict=True))
    unit = [known.get(s, s / duration if duration > 0 else 0.0) for s in seconds]
    ctx.progress("evaluate", 0.3, f"Evaluating {len(unit)} times", force=True)
    frames = model.frames(None, unit)
    extra = {k: v for k, v in src.manifest.extra.items() if k in ("preset", "features",
                                                                  "duration_s")}
    extra["source_job"] = params["source"]
    extra["gaussians_correspond"] = True
    manifest = _write(ctx, frames, seconds, RESAMPLE, params, extra,
                      list(getattr(src.manifest, "cameras", []) or []), None)
    manifest.resample = manifest_field(RESAMPLE, duration, source=params["source"],
                                       times=seconds)
    ctx.progress("done", 1.0, f"{len(frames)} frames")
    return manifest
