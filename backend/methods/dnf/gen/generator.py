"""Trained generators (tokenizers + denoiser + config): sampling flat vectors, saving, loading.

- :class:`ShapeGenerator` samples shape vectors ``[n, D_shape]`` in the flat layout;
- :class:`MotionGenerator` samples motion vectors ``[n, frames, D_motion]`` for given shape
  vectors (one per creature), window by window (:mod:`.sampling`).

Both return de-standardised vectors that :mod:`..decode` reads directly. A generator is saved as
``{name}.json`` (format, kind, config, token layouts, training info) and ``{name}.safetensors``
(denoiser weights ``denoiser.*``, token statistics ``tokens.mean`` / ``tokens.scale`` and, for
motion, ``shape_tokens.*``), never pickle.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from shared.errors import FormatError, ParamError

from .config import MotionDiffusionConfig, ShapeDiffusionConfig, from_json, to_json
from .motion_denoiser import MotionDenoiser
from .sampling import Progress, StepCounter, ddim_sample, sample_frames
from .shape_denoiser import ShapeDenoiser
from .tokens import Tokenizer

FORMAT = "anim4d-dnf-generator"
VERSION = 1


@dataclass
class ShapeGenerator:
    config: ShapeDiffusionConfig
    tokenizer: Tokenizer
    denoiser: ShapeDenoiser
    info: dict = field(default_factory=dict)

    kind = "shape"

    def sample(self, n: int, seed: int = 0, steps: int = 50, eta: float = 0.0,
               progress: Progress | None = None,
               cancelled: Callable[[], bool] | None = None) -> torch.Tensor:
        """``n`` shape vectors ``[n, D_shape]`` (float32, flat layout) after ``steps`` DDIM
        steps; ``seed`` fixes them."""
        if n < 1:
            raise ParamError(f"number of creatures must be at least 1, got {n}")
        tok = self.tokenizer
        self.denoiser.eval()
        gen = torch.Generator().manual_seed(int(seed))
        x = ddim_sample(self.denoiser, (n, tok.n_tokens, tok.width), self.config.noise, steps,
                        gen, eta=eta, counter=StepCounter(steps, progress, cancelled, "shape"))
        return tok.from_tokens(x)


@dataclass
class MotionGenerator:
    config: MotionDiffusionConfig
    shape_tokenizer: Tokenizer
    tokenizer: Tokenizer
    denoiser: MotionDenoiser
    info: dict = field(default_factory=dict)

    kind = "motion"

    def sample(self, shape_vectors: torch.Tensor, frames: int, seed: int = 0, steps: int = 50,
               context: int | None = None, resample: int | None = None, eta: float = 0.0,
               progress: Progress | None = None,
               cancelled: Callable[[], bool] | None = None) -> torch.Tensor:
        """Motion vectors ``[n, frames, D_motion]`` (float32, flat layout, frame 0 first) for
        ``shape_vectors`` ``[n, D_shape]``; ``context``: known frames per continuation window,
        ``resample``: harmonisation rounds per continuation step (None = the config's)."""
        if shape_vectors.dim() != 2:
            raise ValueError(f"shape vectors must be [n, D], got {tuple(shape_vectors.shape)}")
        n = shape_vectors.shape[0]
        cfg = self.config
        window = cfg.denoiser.window
        ctx = cfg.context if context is None else int(context)
        if not 1 <= ctx < window:
            raise ParamError(f"context frames must be between 1 and {window - 1}, got {ctx}")
        if frames < 1:
            raise ParamError(f"frame count must be at least 1, got {frames}")
        rounds = cfg.resample if resample is None else int(resample)
        if rounds < 0:
            raise ParamError(f"resample rounds must be at least 0, got {rounds}")
        shape_tokens = self.shape_tokenizer.to_tokens(shape_vectors).float()
        self.denoiser.eval()

        def denoise(x: torch.Tensor, t: torch.Tensor, first: bool) -> torch.Tensor:
            return self.denoiser(x, t, shape_tokens, torch.full((n,), first))

        gen = torch.Generator().manual_seed(int(seed))
        tok = self.tokenizer
        tokens = sample_frames(denoise, n, int(frames), window, ctx, (tok.n_tokens, tok.width),
                               cfg.noise, steps, gen, progress, cancelled, eta, resample=rounds)
        return tok.from_tokens(tokens)


Generator = ShapeGenerator | MotionGenerator


def save_generator(gen: Generator, folder: str | Path, name: str | None = None) -> Path:
    """Write ``{name}.json`` and ``{name}.safetensors`` (name = the kind) into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    name = name or gen.kind
    tensors = {f"denoiser.{k}": v for k, v in gen.denoiser.state_dict().items()}
    tensors.update({f"tokens.{k}": v for k, v in gen.tokenizer.state().items()})
    meta = {"format": FORMAT, "version": VERSION, "kind": gen.kind, "config": to_json(gen.config),
            "tokens": gen.tokenizer.to_json(), "info": gen.info}
    if isinstance(gen, MotionGenerator):
        tensors.update({f"shape_tokens.{k}": v for k, v in gen.shape_tokenizer.state().items()})
        meta["shape_tokens"] = gen.shape_tokenizer.to_json()
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    save_file(tensors, str(folder / f"{name}.safetensors"), metadata={"format": FORMAT})
    tmp = folder / f"{name}.json.tmp"
    tmp.write_text(json.dumps(meta, indent=1))
    tmp.replace(folder / f"{name}.json")
    return folder


def load_generator(folder: str | Path, name: str) -> Generator:
    """Read a generator written by :func:`save_generator`; errors name the file."""
    folder = Path(folder)
    meta_path, tens_path = folder / f"{name}.json", folder / f"{name}.safetensors"
    for p in (meta_path, tens_path):
        if not p.is_file():
            raise FormatError(f"{p}: DNF generator file not found (looked in "
                              f"{folder.resolve()})", "missing_checkpoint")
    try:
        meta = json.loads(meta_path.read_text())
        tensors = load_file(str(tens_path))
    except Exception as err:  # json and safetensors raise their own error types
        raise FormatError(f"{meta_path}: cannot read DNF generator ({err})") from None
    if meta.get("format") != FORMAT:
        raise FormatError(f"{meta_path}: format {meta.get('format')!r}, expected {FORMAT!r}")
    if int(meta.get("version", 0)) > VERSION:
        raise FormatError(f"{meta_path}: generator version {meta['version']} is newer than this "
                          f"software understands ({VERSION}); update Anim4D")

    def part(prefix: str) -> dict[str, torch.Tensor]:
        return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}

    try:
        tok = Tokenizer.from_state(meta["tokens"], part("tokens."))
        if meta["kind"] == "shape":
            cfg = from_json(ShapeDiffusionConfig, meta["config"])
            den = ShapeDenoiser(cfg.denoiser, tok.mask)
            den.load_state_dict(part("denoiser."))
            return ShapeGenerator(cfg, tok, den.eval(), meta.get("info", {}))
        if meta["kind"] == "motion":
            cfg = from_json(MotionDiffusionConfig, meta["config"])
            stok = Tokenizer.from_state(meta["shape_tokens"], part("shape_tokens."))
            den = MotionDenoiser(cfg.denoiser, tok.mask, stok.mask)
            den.load_state_dict(part("denoiser."))
            return MotionGenerator(cfg, stok, tok, den.eval(), meta.get("info", {}))
    except (KeyError, RuntimeError, TypeError, ValueError) as err:
        raise FormatError(f"{tens_path}: does not match {meta_path.name} ({err})") from None
    raise FormatError(f"{meta_path}: unknown generator kind {meta.get('kind')!r}; accepted: "
                      "shape, motion")
