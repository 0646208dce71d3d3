"""``anim4d models list|verify|fetch``: the pretrained models the methods can use.

Wired into ``backend/cli/main.py`` by :func:`add_models_commands`; each command imports what it
needs when it runs (``fetch`` imports huggingface_hub; nothing here imports torch).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from backend.server.defaults import default_data_dir


def _models_dir_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--models-dir", type=Path, metavar="DIR",
                   default=default_data_dir() / "models",
                   help="the models folder (DIR/<method>/<folder>/), as `anim4d serve "
                        "--models-dir` (default %(default)s)")


def add_models_commands(sub) -> None:
    p = sub.add_parser("models", help="list, verify or fetch the pretrained models "
                                      "(DINOv2, Zero123++, LPIPS backbone)")
    msub = p.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    q = msub.add_parser("list", help="every model: where it is looked for, present or not, "
                                     "size, checksums, what it is for, which preset uses it")
    _models_dir_arg(q)
    q.set_defaults(func=cmd_list)
    q = msub.add_parser("verify", help="hash present models' files against their recorded "
                                       "checksums (exit 1 naming a corrupted file)")
    q.add_argument("name", nargs="?", help="one model (default: every present one)")
    _models_dir_arg(q)
    q.set_defaults(func=cmd_verify)
    q = msub.add_parser("fetch", help="download a model (needs internet) into the models folder")
    q.add_argument("name", help="the model's name (see `anim4d models list`)")
    q.add_argument("--to", type=Path, metavar="DIR",
                   help="folder to fill (default: MODELS_DIR/<method>/<folder>/)")
    _models_dir_arg(q)
    q.set_defaults(func=cmd_fetch)


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"  # pragma: no cover


def cmd_list(args: argparse.Namespace) -> int:
    from backend.models import pretrained as pm

    locs = pm.locate_all(args.models_dir)
    for loc in locs:
        p = loc.model
        print(f"{p.name}  ({p.source})")
        print(f"  for:      {p.purpose}")
        print(f"  presets:  {p.presets}")
        if p.extra:
            print(f"  needs:    pip install {p.extra} (optional; see the README)")
        print(f"  looked:   {'; '.join(loc.looked)}")
        if loc.present:
            rec = pm.recorded_checksums(p, loc.folder)
            print(f"  present:  yes, in the {loc.where}: {loc.folder}, "
                  f"{_size(pm.folder_size(p, loc.folder))}")
            print(f"  sha256:   {len(rec)} file(s) recorded"
                  + (" (check with `anim4d models verify " + p.name + "`)" if rec else
                     ": unknown (no recorded checksums; fetch writes them)"))
        else:
            known = ", ".join(f"{f.path} {f.sha256}" for f in p.files if f.sha256)
            print(f"  present:  no (about {p.approx_size}; `anim4d models fetch {p.name}`)")
            print(f"  sha256:   {('recorded: ' + known) if known else 'unknown'}")
    have = sum(loc.present for loc in locs)
    print(f"{have} of {len(locs)} pretrained models present"
          + ("" if have else " (none: every method still runs, on its weight-free parts)"))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from backend.models import pretrained as pm
    from shared.errors import Anim4DError

    wanted = [pm.by_name(args.name)] if args.name else list(pm.CATALOG)
    failed = 0
    checked = 0
    for p in wanted:
        loc = pm.locate(p, args.models_dir)
        if not loc.present:
            if args.name:
                raise Anim4DError(f"{p.name} is not present (looked in {'; '.join(loc.looked)});"
                                  f" fetch it with: anim4d models fetch {p.name}", "model_missing")
            continue
        res = pm.verify(p, loc.folder)
        checked += 1
        if res.ok:
            note = f", {len(res.unknown)} file(s) without a recorded checksum" \
                if res.unknown else ""
            print(f"{p.name}: OK ({len(res.checked)} file(s) match{note}) in {loc.folder}")
        else:
            failed += 1
            for line in res.bad:
                print(f"{p.name}: CORRUPT {loc.folder / line}")
    if not checked:
        print("no pretrained model is present: nothing to verify")
    if failed:
        print(f"{failed} model(s) failed: fetch them again (`anim4d models fetch NAME`)")
    return 1 if failed else 0


def cmd_fetch(args: argparse.Namespace) -> int:
    from backend.models import pretrained as pm

    p = pm.by_name(args.name)
    dest = Path(args.to) if args.to else Path(args.models_dir) / p.method / p.folder
    fresh = not dest.exists()
    dest.mkdir(parents=True, exist_ok=True)
    print(f"fetching {p.name} ({p.source}, about {p.approx_size}) into {dest}")
    try:
        hub = _fetch_hub(p, dest) if p.repo else _fetch_url(p, dest)
    except Exception:
        if fresh and not any(dest.iterdir()):
            dest.rmdir()  # leave no empty folder behind
        raise
    manifest = pm.write_checksums(p, dest, hub)
    print(f"{p.name}: {_size(pm.folder_size(p, dest))} in {dest}; checksums in {manifest.name}")
    if args.to and Path(args.to).resolve() != (Path(args.models_dir) / p.method
                                               / p.folder).resolve():
        print(f"the server finds it as {Path(args.models_dir) / p.method / p.folder} "
              "(move it there, or pass its folder explicitly)")
    return 0


def _offline_error(p, dest: Path, err: Exception):
    from shared.errors import Anim4DError

    why = str(err).splitlines()[0].rstrip(".") if str(err) else ""
    return Anim4DError(
        f"could not fetch {p.name} from {p.source}: {type(err).__name__}: {why}. "
        "`anim4d models fetch` needs internet access (and HF_HUB_OFFLINE unset); on a "
        f"machine without it, copy the folder from one that has it to {dest}", "fetch_failed")


def _fetch_hub(p, dest: Path) -> dict[str, str]:
    """Download the repository into ``dest``; returns the Hub's LFS SHA-256 per file (may be
    empty when the Hub does not say)."""
    try:
        from huggingface_hub import HfApi, snapshot_download

        snapshot_download(p.repo, local_dir=dest)
    except Exception as e:  # offline, no such repo, network errors: one clear line
        raise _offline_error(p, dest, e) from None
    try:
        info = HfApi().model_info(p.repo, files_metadata=True)
        return {s.rfilename: s.lfs.sha256 for s in info.siblings or []
                if getattr(s, "lfs", None) is not None and getattr(s.lfs, "sha256", None)}
    except Exception:  # the files are here; their hashes are then computed locally only
        return {}


def _fetch_url(p, dest: Path) -> dict[str, str]:
    import hashlib
    import urllib.request

    name = p.url.rsplit("/", 1)[-1]
    part = dest / (name + ".part")
    try:
        h = hashlib.sha256()
        with urllib.request.urlopen(p.url, timeout=60) as r, open(part, "wb") as f:
            while block := r.read(1 << 20):
                h.update(block)
                f.write(block)
    except Exception as e:
        part.unlink(missing_ok=True)
        raise _offline_error(p, dest, e) from None
    got = h.hexdigest()
    for fc in p.files:
        if fc.path == name and fc.sha256 and not got.startswith(fc.sha256):
            part.unlink(missing_ok=True)
            from shared.errors import FormatError

            raise FormatError(f"{p.url}: sha256 {got} does not start with the recorded "
                              f"{fc.sha256}: corrupt download; fetch again")
    part.replace(dest / name)
    return {name: got}
