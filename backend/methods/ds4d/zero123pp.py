"""Zero123++ v1.1 (Shi et al. 2023) as our own pipeline over diffusers' building blocks.

The upstream community pipeline pins an old diffusers; this module owns the loop instead, reading
the same folder layout (``hf download sudo-ai/zero123plus-v1.1``): ``model_index.json`` (with
``ramping_coefficients``), ``unet/`` (``UNet2DConditionModel``), ``vae/`` (``AutoencoderKL``),
``text_encoder/`` + ``tokenizer/`` (CLIP text), ``vision_encoder/``
(``CLIPVisionModelWithProjection``), ``scheduler/``, ``feature_extractor_clip/`` and
``feature_extractor_vae/`` (their ``preprocessor_config.json``: size, mean, std).

What one frame's sampling does (as Zero123++ describes it):

- **Global condition**: the CLIP image embedding of the input, times the per-token
  ``ramping_coefficients``, added to the text encoder's states of the empty prompt (the
  unconditional branch of classifier-free guidance keeps the plain empty-prompt states).
- **Local condition (reference attention)**: the input's VAE latent, noised to the current
  step's noise level, goes through the UNet first; every self-attention (``attn1``) layer records
  its input tokens; then the UNet denoises the 3 x 2 grid latent with each ``attn1``'s keys and
  values extended by the recorded reference tokens. The unconditional branch uses a grey image's
  latent as its reference.
- Euler-ancestral sampling with ``trailing`` timestep spacing (what upstream recommends), the
  latent scaling of Zero123++ (``x / 0.75 + 0.22`` before the VAE decode, image ``x / 0.5 * 0.8``).
- **STAG4D's temporal anchor** (``temporal_anchor``): frame 0's reference tokens are kept for
  each step; for every later frame, each ``attn1`` attends to its own reference tokens *and*
  frame 0's at the same step, so the six generated views do not flicker from frame to frame.
  Every frame also starts from the same noise (the generator is re-seeded per frame). Frame 0 is
  sampled exactly as without the anchor.

Output: six views per frame, view k at row k // 2, column k % 2 of the grid (tile 320 x 320 for
v1.1), grey background; their cameras are :func:`zero123pp_views_cameras`.

Nothing is downloaded: ``model`` is a local folder or a Hugging Face id already in the local
cache; otherwise :class:`~.features.ModelMissingError` names the model, where it was looked for
and the command that fetches it. No machine of this project has run it with the real weights
(tests use tiny random models of the same classes).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from backend.render.cameras import (
    STAG4D_FOV_DEG,
    STAG4D_RADIUS,
    ZERO123PP_V11_ELEVATIONS,
    ZERO123PP_V12_AZIMUTHS,
    intrinsics_from_fov,
    orbit_viewmat,
)

from .features import ModelMissingError

REPO = "sudo-ai/zero123plus-v1.1"
CATALOG_NAME = "zero123pp"  # `anim4d models fetch zero123pp`
GRID = (3, 2)  # rows x columns of the output
NUM_VIEWS = GRID[0] * GRID[1]
TILE = 320
GREY = 127.0 / 255.0  # the background Zero123++ composites RGBA inputs over and outputs
REQUIRED = ("model_index.json", "unet/config.json", "vae/config.json",
            "text_encoder/config.json", "tokenizer", "vision_encoder/config.json",
            "scheduler/scheduler_config.json", "feature_extractor_clip/preprocessor_config.json",
            "feature_extractor_vae/preprocessor_config.json")


@dataclass
class Zero123ppConfig:
    model: str = REPO  # a local folder, or an id in the local Hugging Face cache
    steps: int = 28  # upstream default; 75 for fine detail
    guidance_scale: float = 4.0
    tile: int | None = None  # pixels of one output view (3 x 2 tiles); None: the condition
    # image's size from feature_extractor_vae (320 for v1.1)
    temporal_anchor: bool = True  # STAG4D: later frames also attend to frame 0's reference
    seed: int = 0
    device: str = "cpu"
    dtype: str = "float32"  # "float16" on a GPU


def fetch_hint() -> str:
    return f"anim4d models fetch {CATALOG_NAME}"


def find_zero123pp(model: str) -> Path:
    """The local folder of ``model`` (a folder, or an id in the local HF cache), or
    :class:`ModelMissingError` naming it, where it was looked for and the fetch command."""
    path = Path(model).expanduser()
    is_path = path.is_absolute() or model.startswith((".", "~")) or path.exists()
    if is_path:
        where = str(path)
    else:
        from huggingface_hub import snapshot_download
        from huggingface_hub.constants import HF_HUB_CACHE

        where = f"the Hugging Face cache {HF_HUB_CACHE} (local files only)"
        try:
            path = Path(snapshot_download(model, local_files_only=True))
        except Exception as e:  # LocalEntryNotFoundError, or a malformed cache
            raise ModelMissingError(
                f"Zero123++ model {model!r} is not on this machine: looked in {where} "
                f"({type(e).__name__}). Fetch it with: {fetch_hint()} (or pass a folder "
                "holding it)") from None
    missing = [r for r in REQUIRED if not (path / r).exists()]
    if missing:
        raise ModelMissingError(
            f"Zero123++ model not found in {where}: missing {', '.join(missing[:4])}"
            f"{' ...' if len(missing) > 4 else ''} (expected the layout of `hf download "
            f"{REPO}`). Fetch it with: {fetch_hint()} --to {path}")
    return path


def zero123pp_views_cameras(size: int) -> tuple[np.ndarray, np.ndarray]:
    """(viewmats [6, 4, 4], Ks [6, 3, 3]) float64 of the six v1.1 views rendered at
    ``size`` x ``size``: radius 2, vertical FoV 49.1 degrees, azimuths 30..330 step 60 relative to
    the input view (azimuth 0), elevations 30 / -20 alternating (OpenCV axes, Y-up world)."""
    vms = [orbit_viewmat(a, e, STAG4D_RADIUS)
           for a, e in zip(ZERO123PP_V12_AZIMUTHS, ZERO123PP_V11_ELEVATIONS, strict=True)]
    K = intrinsics_from_fov(STAG4D_FOV_DEG, size, size)
    return np.stack(vms), np.stack([K] * len(vms))


# -- reference attention -------------------------------------------------------------------------


@dataclass
class ReferenceState:
    """Shared by every ``attn1`` processor of one UNet: ``mode`` "write" records each layer's
    input tokens in ``current``; "read" extends the keys/values with ``current`` (and with
    ``anchor``, frame 0's tokens at this step, when given); "off" is plain self-attention."""

    mode: str = "off"
    current: dict[str, Tensor] = field(default_factory=dict)
    anchor: dict[str, Tensor] | None = None


class ReferenceAttention:
    """``attn1`` processor: Zero123++'s reference attention plus STAG4D's temporal anchor."""

    def __init__(self, name: str, state: ReferenceState, base: Callable):
        self.name, self.state, self.base = name, state, base

    def __call__(self, attn, hidden_states: Tensor, encoder_hidden_states: Tensor | None = None,
                 attention_mask: Tensor | None = None, temb: Tensor | None = None) -> Tensor:
        """hidden_states [B, N, C] -> [B, N, C]; keys/values from [B, N (+ M + M0), C]."""
        s = self.state
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        if s.mode == "write":
            s.current[self.name] = context
        elif s.mode == "read":
            parts = [context, s.current[self.name]]
            if s.anchor is not None:
                parts.append(s.anchor[self.name])
            context = torch.cat(parts, dim=1)
        return self.base(attn, hidden_states, context, attention_mask, temb)


def install_reference_attention(unet) -> ReferenceState:
    """Put :class:`ReferenceAttention` on every ``attn1`` of ``unet`` (the others keep plain
    scaled-dot-product attention); returns the state they share."""
    from diffusers.models.attention_processor import AttnProcessor2_0

    state = ReferenceState()
    procs = {}
    for name in unet.attn_processors:
        base = AttnProcessor2_0()
        procs[name] = (ReferenceAttention(name, state, base) if name.endswith("attn1.processor")
                       else base)
    unet.set_attn_processor(procs)
    return state


# -- the pipeline --------------------------------------------------------------------------------


@dataclass
class _Prep:
    """An image processor's settings: square size, mean and std per channel."""

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @classmethod
    def read(cls, file: Path) -> _Prep:
        d = json.loads(file.read_text())
        crop = d.get("crop_size", d.get("size", 224))
        size = crop.get("height", crop.get("shortest_edge")) if isinstance(crop, dict) else crop
        return cls(int(size), tuple(d.get("image_mean", (0.5,) * 3)),
                   tuple(d.get("image_std", (0.5,) * 3)))

    def __call__(self, rgb: Tensor) -> Tensor:
        """[B, 3, H, W] in [0, 1] (square) -> [B, 3, size, size] normalised."""
        x = F.interpolate(rgb, size=(self.size, self.size), mode="bicubic", antialias=True,
                          align_corners=False).clamp(0, 1)
        mean = x.new_tensor(self.mean).view(1, 3, 1, 1)
        return (x - mean) / x.new_tensor(self.std).view(1, 3, 1, 1)


class Zero123ppPipeline:
    """Zero123++ v1.1 over diffusers / transformers components (see the module docstring)."""

    def __init__(self, folder: Path, cfg: Zero123ppConfig):
        from diffusers import AutoencoderKL, EulerAncestralDiscreteScheduler, UNet2DConditionModel
        from transformers import CLIPTextModel, CLIPTokenizer, CLIPVisionModelWithProjection

        self.cfg = cfg
        self.folder = folder
        dev, dtype = torch.device(cfg.device), getattr(torch, cfg.dtype)
        kw = {"local_files_only": True}
        self.unet = UNet2DConditionModel.from_pretrained(folder / "unet", **kw)
        self.vae = AutoencoderKL.from_pretrained(folder / "vae", **kw)
        self.text_encoder = CLIPTextModel.from_pretrained(folder / "text_encoder", **kw)
        self.tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer", **kw)
        self.vision_encoder = CLIPVisionModelWithProjection.from_pretrained(
            folder / "vision_encoder", **kw)
        for m in (self.unet, self.vae, self.text_encoder, self.vision_encoder):
            m.to(dev, dtype).eval().requires_grad_(False)
        self.scheduler = EulerAncestralDiscreteScheduler.from_pretrained(
            folder / "scheduler", timestep_spacing="trailing", **kw)
        index = json.loads((folder / "model_index.json").read_text())
        ramp = index.get("ramping_coefficients")
        if not ramp:
            raise ModelMissingError(f"{folder / 'model_index.json'} has no ramping_coefficients: "
                                    f"not a Zero123++ folder; fetch it with: {fetch_hint()}")
        self.ramp = torch.tensor(ramp, dtype=dtype, device=dev).unsqueeze(-1)  # [L, 1]
        self.prep_clip = _Prep.read(folder / "feature_extractor_clip" / "preprocessor_config.json")
        self.prep_vae = _Prep.read(folder / "feature_extractor_vae" / "preprocessor_config.json")
        self.scale = 2 ** (len(self.vae.config.block_out_channels) - 1)
        self.tile = cfg.tile or self.prep_vae.size
        self.state = install_reference_attention(self.unet)
        self.device, self.dtype = dev, dtype

    # ---- conditions ------------------------------------------------------------------------
    def _text(self) -> Tensor:
        ids = self.tokenizer("", padding="max_length", max_length=self.tokenizer.model_max_length,
                             truncation=True, return_tensors="pt").input_ids.to(self.device)
        return self.text_encoder(ids)[0]  # [1, L, D]

    def conditions(self, rgb: Tensor, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        """(prompt states [2, L, D]: unconditional then conditional; reference latents
        [2, 4, h, w]: a grey image's then the input's) of one image [1, 3, H, W] in [0, 1]."""
        rgb = rgb.to(self.device, self.dtype)
        text = self._text()
        glob = self.vision_encoder(pixel_values=self.prep_clip(rgb)).image_embeds[:, None]
        cond = text + glob * self.ramp
        x = self.prep_vae(rgb)
        lat = self.vae.encode(torch.cat([torch.zeros_like(x), x])).latent_dist
        ref = lat.mean + lat.std * torch.randn(lat.mean.shape, generator=gen,
                                               device=gen.device).to(self.device, self.dtype)
        return torch.cat([text, cond]), ref

    # ---- one frame -------------------------------------------------------------------------
    def sample_frame(self, rgb: Tensor, anchors: list[dict] | None, record: bool,
                     cancelled: Callable[[], bool] | None = None) -> Tensor:
        """The 3 x 2 grid [3, 3 tile, 2 tile] in [0, 1] for one input image [1, 3, H, W].

        ``anchors``: frame 0's reference tokens per step (read, STAG4D) or None; ``record``: append
        this frame's per step to a new list (returned through ``self.recorded``)."""
        cfg = self.cfg
        gen = torch.Generator().manual_seed(cfg.seed)  # same noise for every frame
        prompt, ref = self.conditions(rgb, gen)
        sched = self.scheduler
        sched.set_timesteps(cfg.steps, device=self.device)
        h, w = GRID[0] * self.tile // self.scale, GRID[1] * self.tile // self.scale
        shape = (1, self.unet.config.in_channels, h, w)
        latents = (torch.randn(shape, generator=gen).to(self.device, self.dtype)
                   * sched.init_noise_sigma)
        guided = cfg.guidance_scale > 1.0
        if not guided:
            prompt, ref = prompt[1:], ref[1:]
        self.recorded: list[dict] = []
        st = self.state
        for i, t in enumerate(sched.timesteps):
            if cancelled is not None and cancelled():
                raise InterruptedError("cancelled")
            sigma = float(sched.sigmas[i])
            noise = torch.randn(ref.shape, generator=gen).to(self.device, self.dtype)
            noisy_ref = (ref + sigma * noise) / (sigma ** 2 + 1) ** 0.5
            st.mode, st.current, st.anchor = "write", {}, None
            self.unet(noisy_ref, t, encoder_hidden_states=prompt)
            if record:
                self.recorded.append(dict(st.current))
            st.mode = "read"
            st.anchor = anchors[i] if anchors is not None else None
            x = torch.cat([latents] * len(prompt))
            x = sched.scale_model_input(x, t)
            out = self.unet(x, t, encoder_hidden_states=prompt).sample
            if guided:
                u, c = out.chunk(2)
                out = u + cfg.guidance_scale * (c - u)
            latents = sched.step(out, t, latents, generator=gen).prev_sample
        st.mode, st.current, st.anchor = "off", {}, None
        latents = latents / 0.75 + 0.22
        image = self.vae.decode(latents / self.vae.config.scaling_factor).sample
        image = image / 0.5 * 0.8
        return ((image[0].float() + 1) / 2).clamp(0, 1)

    @torch.no_grad()
    def __call__(self, frames: Tensor, progress: Callable[[int, int], None] | None = None,
                 cancelled: Callable[[], bool] | None = None) -> Tensor:
        """Six views per frame: frames [T, H, W, 3] in [0, 1] (RGB over grey, square) ->
        [T, 6, tile, tile, 3] in [0, 1] (view k from grid row k // 2, column k % 2)."""
        out = []
        anchors = None
        for k in range(frames.shape[0]):
            rgb = frames[k].permute(2, 0, 1)[None].float()
            first = k == 0 and self.cfg.temporal_anchor
            grid = self.sample_frame(rgb, anchors, record=first, cancelled=cancelled)
            if first:
                anchors = self.recorded
            out.append(split_grid(grid, self.tile))
            if progress is not None:
                progress(k + 1, frames.shape[0])
        self.recorded = []
        return torch.stack(out).cpu()


def split_grid(grid: Tensor, tile: int) -> Tensor:
    """[3, 3 tile, 2 tile] -> [6, tile, tile, 3]: view k at row k // 2, column k % 2."""
    views = [grid[:, (k // GRID[1]) * tile:(k // GRID[1] + 1) * tile,
                  (k % GRID[1]) * tile:(k % GRID[1] + 1) * tile] for k in range(NUM_VIEWS)]
    return torch.stack(views).permute(0, 2, 3, 1).contiguous()


def load_zero123pp(cfg: Zero123ppConfig | None = None) -> Zero123ppPipeline:
    """The pipeline from ``cfg.model`` (a local folder or the local HF cache; nothing is
    downloaded), or :class:`ModelMissingError` naming it and ``anim4d models fetch zero123pp``."""
    cfg = cfg or Zero123ppConfig()
    folder = find_zero123pp(cfg.model)
    try:
        return Zero123ppPipeline(folder, cfg)
    except (OSError, ValueError, KeyError) as e:
        raise ModelMissingError(
            f"Zero123++ model in {folder} could not be loaded: {str(e).splitlines()[0]}. "
            f"Fetch it again with: {fetch_hint()} --to {folder}") from None
