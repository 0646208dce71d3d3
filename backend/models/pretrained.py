"""Pretrained models the methods can use (third-party weights, never shipped, never downloaded
at run time): where each is looked for, whether it is here, its size and checksums.

Where a model is looked for, in order (standard library only: the server calls this too):

1. the models folder convention (:mod:`.registry`): ``<models dir>/<method>/<folder>/``
   (``anim4d serve --models-dir DIR``, default ``<data dir>/models``);
2. its library's own cache, offline: the Hugging Face cache (``$HF_HUB_CACHE``, else
   ``$HF_HOME/hub``, else ``~/.cache/huggingface/hub``; the snapshot ``refs/main`` points at) for
   Hub models; torch's hub cache (``$TORCH_HOME/hub/checkpoints``) for the LPIPS backbone.

Checksums: the catalog records what is known in this repository (for most files nothing is:
"unknown"); ``anim4d models fetch`` writes ``anim4d-checksums.json`` beside the files with the
SHA-256 of each file (the Hub's LFS hash where the Hub gives one, else computed after the
download), which ``anim4d models verify`` checks the bytes against.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from backend.models.checksums import file_sha256

CHECKSUMS_FILE = "anim4d-checksums.json"


@dataclass(frozen=True)
class FileCheck:
    """A file of a model with what is recorded about it (None: unknown); ``sha256`` may be a
    prefix (torchvision names its files with the first 8 hex digits of their SHA-256)."""

    path: str
    sha256: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class Pretrained:
    """One model of the catalog.

    Attributes:
        name: the catalog name (``anim4d models fetch NAME``).
        method, folder: it lives in ``<models dir>/<method>/<folder>/``.
        repo: Hugging Face repository id (Hub models) or None; url: direct download (others).
        required: paths (files or folders) that must exist; ``weights``: alternatives, one of
            which must exist (safetensors, or a .pth read with torch.load(weights_only=True)).
        purpose, presets: what it is for and which preset uses it.
        extra: the pip extra that must be installed to use it (None: none).
        files: recorded checksums (empty: unknown in this repository).
        approx_size: the download's size, roughly.
    """

    name: str
    method: str
    folder: str
    purpose: str
    presets: str
    approx_size: str
    repo: str | None = None
    url: str | None = None
    required: tuple[str, ...] = ()
    weights: tuple[str, ...] = ()
    extra: str | None = None
    files: tuple[FileCheck, ...] = field(default_factory=tuple)

    @property
    def source(self) -> str:
        return f"huggingface.co/{self.repo}" if self.repo else str(self.url)


ALEXNET_FILE = "alexnet-owt-7be5be79.pth"

CATALOG: tuple[Pretrained, ...] = (
    Pretrained(
        name="dinov2-small", method="ds4d", folder="dinov2-small", repo="facebook/dinov2-small",
        purpose="DS4D frame features: DINOv2 ViT-S/14 patch tokens (384 channels); without it "
                "the weight-free descriptor is used",
        presets="cpu, paper (feature_backend auto; tiny uses the descriptor)",
        approx_size="88 MB", required=("config.json",),
        weights=("model.safetensors", "pytorch_model.bin")),
    Pretrained(
        name="zero123pp", method="ds4d", folder="zero123pp-v1.1",
        repo="sudo-ai/zero123plus-v1.1",
        purpose="DS4D pseudo multi-view frames: six views per frame (views_source=zero123pp; "
                "weights CC-BY-NC 4.0)",
        presets="any preset with views_source=zero123pp (the paper's setting)",
        approx_size="7 GB (fp32 UNet, VAE, CLIP text and vision encoders)",
        required=("model_index.json", "unet/config.json", "vae/config.json",
                  "text_encoder/config.json", "tokenizer", "vision_encoder/config.json",
                  "scheduler/scheduler_config.json",
                  "feature_extractor_clip/preprocessor_config.json",
                  "feature_extractor_vae/preprocessor_config.json")),
    Pretrained(
        name="lpips-alex", method="ds4d", folder="lpips-alex",
        url=f"https://download.pytorch.org/models/{ALEXNET_FILE}",
        purpose="LPIPS loss on the other views (AlexNet backbone; the lpips package ships its "
                "linear layers); without it the multi-scale D-SSIM substitute is used",
        presets="cpu, paper (view_loss auto) with views besides the input",
        approx_size="233 MB", required=(ALEXNET_FILE,), extra="lpips torchvision",
        files=(FileCheck(ALEXNET_FILE, sha256="7be5be79"),)),
)


def by_name(name: str) -> Pretrained:
    for p in CATALOG:
        if p.name == name or p.folder == name:
            return p
    from shared.errors import ParamError

    raise ParamError(f"no pretrained model {name!r}; known: "
                     f"{', '.join(p.name for p in CATALOG)}", "unknown_model")


# -- where models are ----------------------------------------------------------------------------


def hf_hub_cache() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "huggingface")
    return Path(home) / "hub"


def torch_hub_checkpoints() -> Path:
    home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "torch")
    return Path(home) / "hub" / "checkpoints"


def hf_snapshot(repo: str, cache: Path | None = None) -> Path:
    """The snapshot folder ``refs/main`` of ``repo`` points at in the HF cache (may not exist)."""
    root = (cache or hf_hub_cache()) / ("models--" + repo.replace("/", "--"))
    ref = root / "refs" / "main"
    commit = ref.read_text().strip() if ref.is_file() else "<refs/main>"
    return root / "snapshots" / commit


def is_complete(p: Pretrained, folder: Path) -> bool:
    if not folder.is_dir() or not all((folder / r).exists() for r in p.required):
        return False
    return not p.weights or any((folder / w).is_file() for w in p.weights)


@dataclass
class Location:
    """Where ``model`` was looked for (``looked``, in order) and where it is (None: absent)."""

    model: Pretrained
    looked: list[str]
    folder: Path | None = None
    where: str = ""  # "models folder", "Hugging Face cache", "torch hub cache"

    @property
    def present(self) -> bool:
        return self.folder is not None


def locate(p: Pretrained, models_dir: Path | None) -> Location:
    """Find ``p``: the models folder first, then its library's cache (offline)."""
    loc = Location(p, [])
    candidates: list[tuple[Path, str]] = []
    if models_dir is not None:
        candidates.append((Path(models_dir) / p.method / p.folder, "models folder"))
    if p.repo:
        candidates.append((hf_snapshot(p.repo), "Hugging Face cache"))
    elif p.url:
        candidates.append((torch_hub_checkpoints(), "torch hub cache"))
    for folder, where in candidates:
        loc.looked.append(f"{folder} ({where})")
        if is_complete(p, folder):
            loc.folder, loc.where = folder, where
            return loc
    return loc


def locate_all(models_dir: Path | None) -> list[Location]:
    return [locate(p, models_dir) for p in CATALOG]


def present_folders(models_dir: Path | None, method: str) -> tuple[tuple[str, str], ...]:
    """``(name, folder)`` of the catalog models of ``method`` found here (what its workers get)."""
    return tuple((loc.model.name, str(loc.folder)) for loc in locate_all(models_dir)
                 if loc.present and loc.model.method == method)


def hello_entries(models_dir: Path | None) -> list[dict]:
    """What ``hello`` announces as ``pretrained`` (names and presence, never a path)."""
    return [{"name": loc.model.name, "method": loc.model.method, "present": loc.present,
             "purpose": loc.model.purpose} for loc in locate_all(models_dir)]


# -- sizes and checksums -------------------------------------------------------------------------


def model_files(p: Pretrained, folder: Path) -> list[Path]:
    """The files of ``p`` in ``folder`` (for a shared cache folder, only its own files)."""
    if p.url:
        return [folder / r for r in p.required if (folder / r).is_file()]
    return sorted(f for f in folder.rglob("*") if f.is_file() and f.name != CHECKSUMS_FILE
                  and ".cache" not in f.relative_to(folder).parts)


def folder_size(p: Pretrained, folder: Path) -> int:
    return sum(f.stat().st_size for f in model_files(p, folder))


def recorded_checksums(p: Pretrained, folder: Path) -> dict[str, str]:
    """``{relative path: sha256 (or prefix)}``: the catalog's, then the folder's own
    ``anim4d-checksums.json`` (written by ``fetch``)."""
    out = {f.path: f.sha256 for f in p.files if f.sha256}
    manifest = folder / CHECKSUMS_FILE
    if manifest.is_file():
        try:
            data = json.loads(manifest.read_text())
            files = data.get("files", {})
            out.update({str(k): str(v["sha256"] if isinstance(v, dict) else v)
                        for k, v in files.items()})
        except (ValueError, AttributeError, KeyError, TypeError) as e:
            from shared.errors import FormatError

            raise FormatError(f"{manifest} is not a checksums manifest ({e}); expected "
                              '{"files": {"path": {"sha256": HEX}}}') from None
    return out


@dataclass
class VerifyResult:
    checked: list[str]
    bad: list[str]  # "path: why"
    unknown: list[str]  # files with no recorded checksum

    @property
    def ok(self) -> bool:
        return not self.bad


def verify(p: Pretrained, folder: Path) -> VerifyResult:
    """Hash every file with a recorded checksum and compare (a prefix compares its length)."""
    rec = recorded_checksums(p, folder)
    res = VerifyResult([], [], [])
    for rel, want in sorted(rec.items()):
        f = folder / rel
        if not f.is_file():
            res.bad.append(f"{rel}: missing")
            continue
        got = file_sha256(f)
        res.checked.append(rel)
        if not got.startswith(want.lower()):
            res.bad.append(f"{rel}: sha256 {got[:16]}... but {want[:16]}... was recorded")
    for f in model_files(p, folder):
        rel = f.relative_to(folder).as_posix()
        if rel not in rec:
            res.unknown.append(rel)
    return res


def write_checksums(p: Pretrained, folder: Path, hub: dict[str, str] | None = None) -> Path:
    """Write ``anim4d-checksums.json``: each file's SHA-256 computed here, and whether it
    matches the Hub's LFS hash (``hub``); raises ``FormatError`` naming a file that does not."""
    from shared.errors import FormatError

    files = {}
    for f in model_files(p, folder):
        rel = f.relative_to(folder).as_posix()
        got = file_sha256(f)
        if hub and rel in hub and hub[rel] != got:
            raise FormatError(f"{f}: sha256 {got} differs from the Hub's {hub[rel]}: the "
                              "download is corrupt; fetch again")
        files[rel] = {"sha256": got, "size": f.stat().st_size,
                      "source": "hub lfs" if hub and rel in hub else "computed after download"}
    out = folder / CHECKSUMS_FILE
    out.write_text(json.dumps({"model": p.name, "source": p.source, "files": files}, indent=1))
    return out
