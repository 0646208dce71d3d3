"""DNF checkpoints: plain safetensors + a JSON config (never pickle).

A checkpoint folder holds:

- ``config.json``: ``format`` ("anim4d-dnf"), ``version``, the preset, the instance table,
  every stage's flat-vector layouts (:mod:`.layout`), timings and losses;
- ``model.safetensors``: ``shape.mlp.*`` / ``motion.mlp.*`` (MLP weights), ``{field}.{stage}.vecs``
  (per-instance vectors: shape ``[N, D]``, motion ``[N, T, D]``; stage a = latent codes), and
  ``{field}.d.dict.*`` (the stage-d dictionary: ``U{j}``, ``V{j}``, ``s{j}``, ``b{j}``,
  ``A.{j}``, ``B.{j}``);
- ``stages.safetensors`` (optional): the vectors of stages b and c, for evaluation.

``config.json`` records ``model_sha256`` (and ``stages_sha256`` with the optional file);
:func:`load_checkpoint` checks them before reading a tensor. :mod:`.model_files` reads a
folder's hash, size and held stages without torch (for the server's model registry).

The dictionaries of stages b and c are rebuilt from the MLP weights (their SVD is
deterministic up to paired signs, which the per-instance singular values do not see).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from shared.errors import FormatError

from .config import Preset
from .model import STAGES, DNFModel
from .model_files import file_sha256

FORMAT = "anim4d-dnf"
VERSION = 1
MAKE_COMMAND = "anim4d dnf fit-fields --preset tiny"


def save_checkpoint(model: DNFModel, folder: str | Path, with_stages: bool = True) -> Path:
    """Write ``model`` into ``folder`` (created); returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    main: dict[str, torch.Tensor] = {}
    extra: dict[str, torch.Tensor] = {}
    for fname, mlp in (("shape", model.shape_mlp), ("motion", model.motion_mlp)):
        for k, v in mlp.state_dict().items():
            main[f"{fname}.mlp.{k}"] = v
    for stage in model.stages:
        for fname, vecs in (("shape", model.shape_vecs), ("motion", model.motion_vecs)):
            target = main if stage in ("a", "d") else extra
            target[f"{fname}.{stage}.vecs"] = vecs[stage]
    if "d" in model.stages:
        for fname, dic in (("shape", model.shape_dicts["d"]), ("motion", model.motion_dicts["d"])):
            for k, v in dic.state_dict().items():
                main[f"{fname}.d.dict.{k}"] = v
    main = {k: v.detach().contiguous().cpu() for k, v in main.items()}
    save_file(main, str(folder / "model.safetensors"), metadata={"format": FORMAT})
    stages_file = folder / "stages.safetensors"
    if with_stages and extra:
        extra = {k: v.detach().contiguous().cpu() for k, v in extra.items()}
        save_file(extra, str(stages_file), metadata={"format": FORMAT})
    elif stages_file.exists():
        stages_file.unlink()  # a stale file of an earlier model must not pass for this one's
    config = {
        "format": FORMAT, "version": VERSION, "preset": model.preset.to_json(),
        "stages": model.stages, "instances": model.instances,
        "layouts": {s: {"shape": model.shape_layout(s).to_json(),
                        "motion": model.motion_layout(s).to_json()} for s in model.stages},
        "info": model.info,
        "model_sha256": file_sha256(folder / "model.safetensors"),
    }
    if stages_file.is_file():
        config["stages_sha256"] = file_sha256(stages_file)
    tmp = folder / "config.json.tmp"
    tmp.write_text(json.dumps(config, indent=1))
    tmp.replace(folder / "config.json")
    return folder


class _Where:
    """How errors name a checkpoint's files: by path (local commands) or, for a model a client
    chose by name, as ``model 'tiny': model.safetensors`` (no server path)."""

    def __init__(self, folder: Path, label: str | None):
        self.folder, self.label = folder, label

    def __call__(self, path: Path) -> str:
        return f"model {self.label!r}: {path.name}" if self.label else str(path)

    def missing(self, path: Path) -> FormatError:
        where = "" if self.label else f" (looked in {self.folder.resolve()})"
        return FormatError(f"{self(path)}: DNF checkpoint file not found{where}; make one with "
                           f"`{MAKE_COMMAND}`", "missing_checkpoint")


def verify_hashes(folder: Path, config: dict, label: str | None = None) -> str:
    """Check the weight files against the SHA-256 recorded in ``config``; returns the model's
    (``model.safetensors``) hash. A mismatch is a :class:`FormatError` naming the model."""
    where = _Where(Path(folder), label)
    out = ""
    for fname, key in (("model.safetensors", "model_sha256"),
                       ("stages.safetensors", "stages_sha256")):
        path = Path(folder) / fname
        want = config.get(key)
        if not path.is_file() or not want:
            if fname == "model.safetensors":
                raise FormatError(f"{where(path.with_name('config.json'))}: no {key} recorded; "
                                  "the weights cannot be verified", "bad_checkpoint")
            continue
        got = file_sha256(path)
        if got != want:
            raise FormatError(
                f"{where(path)}: SHA-256 {got[:12]}... does not match the {want[:12]}... "
                "recorded in config.json: the file is damaged or was replaced; restore the "
                f"model (or remake it with `{MAKE_COMMAND}`)", "bad_checkpoint")
        if fname == "model.safetensors":
            out = got
    return out


def load_checkpoint(folder: str | Path, stages: tuple[str, ...] = STAGES,
                    label: str | None = None, verify: bool = True) -> DNFModel:
    """Read a checkpoint folder, first checking its weights against the recorded SHA-256
    (``verify``). Errors name the file, where it was looked and what to run; with ``label``
    (the model's name, for a job) they name the model instead of any path.
    ``model.sha256`` is the verified hash of ``model.safetensors``."""
    folder = Path(folder)
    where = _Where(folder, label)
    cfg_path, main_path = folder / "config.json", folder / "model.safetensors"
    for p in (cfg_path, main_path):
        if not p.is_file():
            raise where.missing(p)
    try:
        config = json.loads(cfg_path.read_text())
    except (OSError, ValueError) as err:
        raise FormatError(f"{where(cfg_path)}: not a DNF checkpoint config ({err})") from None
    if config.get("format") != FORMAT:
        raise FormatError(f"{where(cfg_path)}: format {config.get('format')!r}, "
                          f"expected {FORMAT!r}")
    if int(config.get("version", 0)) > VERSION:
        raise FormatError(f"{where(cfg_path)}: checkpoint version {config['version']} is newer "
                          f"than this software understands ({VERSION}); update Anim4D")
    sha = verify_hashes(folder, config, label) if verify else config.get("model_sha256", "")
    try:
        tensors = load_file(str(main_path))
        if (folder / "stages.safetensors").is_file():
            tensors.update(load_file(str(folder / "stages.safetensors")))
    except Exception as err:  # safetensors raises its own error types
        raise FormatError(f"{where(main_path)}: cannot read safetensors ({err})") from None
    preset = Preset.from_json(config["preset"])
    model = DNFModel.untrained(preset, config["instances"])
    model.info = config.get("info", {})
    model.sha256 = sha
    try:
        for fname, mlp in (("shape", model.shape_mlp), ("motion", model.motion_mlp)):
            prefix = f"{fname}.mlp."
            mlp.load_state_dict({k[len(prefix):]: v for k, v in tensors.items()
                                 if k.startswith(prefix)})
        for stage in config["stages"]:
            if stage not in stages or f"shape.{stage}.vecs" not in tensors:
                continue
            model.build_dictionaries(stage, config["layouts"][stage])
            if stage == "d":
                for fname, dic in (("shape", model.shape_dicts["d"]),
                                   ("motion", model.motion_dicts["d"])):
                    prefix = f"{fname}.d.dict."
                    dic.load_state_dict({k[len(prefix):]: v for k, v in tensors.items()
                                         if k.startswith(prefix)})
            model.shape_vecs[stage] = tensors[f"shape.{stage}.vecs"]
            model.motion_vecs[stage] = tensors[f"motion.{stage}.vecs"]
            for fname, lay in (("shape", model.shape_layout(stage)),
                               ("motion", model.motion_layout(stage))):
                want = config["layouts"][stage][fname]["size"]
                if lay.size != want or tensors[f"{fname}.{stage}.vecs"].shape[-1] != want:
                    raise FormatError(f"{where(main_path)}: stage {stage} {fname} vectors do "
                                      f"not match the layout in {cfg_path.name} ({want} numbers)")
    except (RuntimeError, KeyError) as err:
        raise FormatError(f"{where(main_path)}: does not match {cfg_path.name} ({err})") from None
    return model
