"""One entry point to read any supported source into a :class:`~shared.meshseq.MeshSequence`.

``read_sequence(path, BakeConfig(...))`` dispatches on the extension: ``.glb``/``.gltf``
(:mod:`backend.data.gltf_reader`), ``.anime`` (:mod:`backend.data.anime`), ``.npz``
(:func:`shared.meshseq.load_npz`); ``weld=True`` then merges seam-split vertices
(:mod:`backend.data.weld`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from shared.errors import FormatError
from shared.meshseq import MeshSequence, load_npz

from .anime import read_anime
from .gltf_reader import list_gltf_clips, read_gltf
from .transforms import QuatInterp
from .weld import WeldConfig, weld

READ_EXTENSIONS = (".glb", ".gltf", ".anime", ".npz")


@dataclass(frozen=True)
class BakeConfig:
    """``clip``: glTF animation name (None/"" = first); ``fps``: sampling rate (for ``.anime``
    the rate the file is assumed to have); ``weld``: merge seam-split vertices (drops UVs);
    ``quat``: rotation interpolation (``nlerp`` as Blender, or ``slerp``)."""

    clip: str | None = None
    fps: float = 30.0
    weld: bool = False
    weld_rel_tol: float = 1e-5
    quat: QuatInterp = "nlerp"


def read_sequence(
    path: str | Path, config: BakeConfig | None = None,
    progress: Callable[[float], None] | None = None,
) -> MeshSequence:
    """Read ``path`` as configured; errors are :class:`FormatError` naming the file."""
    config = config or BakeConfig()
    path = Path(path)
    ext = path.suffix.lower()
    if ext in (".glb", ".gltf"):
        seq = read_gltf(path, config.clip, config.fps, config.quat, progress)
    elif ext == ".anime":
        seq = read_anime(path, config.fps)
    elif ext == ".npz":
        seq = load_npz(path)
    else:
        raise FormatError(
            f"{path}: unsupported file type {ext or '(none)'!r}; accepted: "
            + ", ".join(READ_EXTENSIONS)
        )
    if config.weld:
        seq = weld(seq, WeldConfig(rel_tol=config.weld_rel_tol))
    return seq


def list_clips(path: str | Path) -> list[tuple[str, float]]:
    """``[(name, duration_seconds)]`` of a glTF; an ``.anime`` file is one unnamed clip."""
    path = Path(path)
    if path.suffix.lower() == ".anime":
        seq = read_anime(path)
        return [("", float(seq.times[-1]))]
    return list_gltf_clips(path)
