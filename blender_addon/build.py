"""Build ``dist/anim4d-<version>.zip``: the add-on, the vendored protocol and pyzmq wheels.

Run ``python -m blender_addon.build`` (``make addon``). Steps:

1. the pyzmq wheels named in ``blender_manifest.toml`` are downloaded once into
   ``blender_addon/wheels/`` (``pip download``, an ordinary PyPI client) unless present
   (``--offline``: never download; ``--fetch-wheels``: only this step). A wheel that is missing
   and cannot be downloaded fails the build (exit status 1, naming it): the add-on cannot talk
   to a backend without pyzmq, so there is no silent build without them (``--no-wheels`` asks
   for one on purpose, for a Blender that already has pyzmq);
2. the add-on is staged in ``build/addon/anim4d/`` with ``shared/`` copied to
   ``_vendor/shared/`` (imported relatively, so it never clashes with another add-on);
3. Blender's own extension tool (``blender_ext.py``, shipped in the ``bpy`` wheel) builds the zip
   and validates it.

Nothing is pip-installed at run time: Blender installs the bundled wheels itself.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ADDON = Path(__file__).resolve().parent
ROOT = ADDON.parent
MANIFEST = ADDON / "blender_manifest.toml"
WHEEL_CACHE = ADDON / "wheels"
_SKIP_DIRS = {"__pycache__", "wheels", "_vendor"}
_SKIP_FILES = {"build.py"}
# wheel file name part -> pip download arguments
_PLATFORM_ARGS = {
    "manylinux_2_28_x86_64": "manylinux_2_28_x86_64",
    "win_amd64": "win_amd64",
    "macosx_10_15_universal2": "macosx_10_15_universal2",
}


class BuildError(RuntimeError):
    """A build step failed; the message says which and why."""


def read_manifest() -> dict:
    return tomllib.loads(MANIFEST.read_text())


def blender_ext_path() -> Path:
    """``blender_ext.py`` inside the installed ``bpy`` wheel (no Blender binary needed)."""
    spec = importlib.util.find_spec("bpy")
    if spec is None or spec.origin is None:
        raise BuildError("the bpy module is not installed (pip install bpy==5.0.1)")
    found = sorted(Path(spec.origin).parent.glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    if not found:
        raise BuildError(f"blender_ext.py not found under {Path(spec.origin).parent}")
    return found[-1]


def _pip_args(wheel_name: str) -> list[str]:
    """``pip download`` arguments fetching exactly the wheel called ``wheel_name``."""
    m = re.match(r"(?P<pkg>[^-]+)-(?P<ver>[^-]+)-(?P<py>cp\d+)-(?P<abi>[^-]+)-(?P<plat>.+)\.whl$",
                 wheel_name)
    if m is None:
        raise BuildError(f"cannot parse wheel name {wheel_name}")
    plat = next((v for k, v in _PLATFORM_ARGS.items() if k in m["plat"]), m["plat"])
    pyver = m["py"][2] + "." + m["py"][3:]
    return [f"{m['pkg']}=={m['ver']}", "--only-binary=:all:", "--no-deps", "--platform", plat,
            "--python-version", pyver, "--implementation", "cp", "--abi", m["abi"]]


def _download(name: str, cache: Path) -> None:
    """``pip download`` the wheel called ``name`` into ``cache``; BuildError when it fails."""
    cmd = [sys.executable, "-m", "pip", "download", "-q", "-d", str(cache), *_pip_args(name)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not (cache / name).is_file():
        why = (proc.stderr or proc.stdout).strip()[-400:] or f"pip exited {proc.returncode}"
        raise BuildError(f"could not download {name} into {cache}: {why}")


def ensure_wheels(names: list[str], cache: Path = WHEEL_CACHE, download: bool = True
                  ) -> list[Path]:
    """The wheels ``names`` in ``cache``, downloading the missing ones with pip.

    Raises BuildError naming every wheel that is missing (``download`` False) or that could not
    be downloaded, or that is not a wheel (zip) file: an add-on without its pyzmq cannot talk.
    """
    if not names:
        raise BuildError(f"{MANIFEST.name} lists no wheels: the add-on needs the pyzmq wheels")
    cache.mkdir(parents=True, exist_ok=True)
    missing = [n for n in names if not (cache / n).is_file()]
    if missing and not download:
        raise BuildError(
            f"{len(missing)} of the {len(names)} pyzmq wheels are not in {cache} and downloading "
            f"is off: {', '.join(missing)}. Run `python -m blender_addon.build --fetch-wheels` "
            "where PyPI is reachable, or copy them there.")
    for name in missing:
        _download(name, cache)
    paths = [cache / n for n in names]
    broken = [p.name for p in paths if not zipfile.is_zipfile(p)]
    if broken:
        raise BuildError(f"not wheel (zip) files, delete and fetch again: "
                         f"{', '.join(str(cache / b) for b in broken)}")
    return paths


def stage(out: Path, wheels: list[Path] | None) -> Path:
    """Copy the add-on, ``shared/`` (as ``_vendor/shared``) and ``wheels`` into ``out/anim4d``."""
    dest = out / "anim4d"
    if dest.exists():
        shutil.rmtree(dest)

    def ignore(folder: str, names: list[str]) -> set[str]:
        top = Path(folder) == ADDON
        return {n for n in names if n in _SKIP_DIRS or n.endswith(".pyc")
                or (top and n in _SKIP_FILES)}

    shutil.copytree(ADDON, dest, ignore=ignore)
    vendor = dest / "_vendor"
    vendor.mkdir()
    (vendor / "__init__.py").write_text('"""Third-party and protocol code bundled at build."""\n')
    shutil.copytree(ROOT / "shared", vendor / "shared",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    text = MANIFEST.read_text()
    if wheels is None:
        text = re.sub(r"(?ms)^wheels = \[.*?\]\n", "", text)
    else:
        (dest / "wheels").mkdir()
        for w in wheels:
            shutil.copy2(w, dest / "wheels" / w.name)
    (dest / "blender_manifest.toml").write_text(text)
    return dest


def _run_ext(*args: str) -> str:
    proc = subprocess.run([sys.executable, str(blender_ext_path()), *args],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"blender_ext {args[0]} failed:\n{proc.stdout}{proc.stderr}")
    return proc.stdout


def manifest_wheels(manifest: dict) -> list[str]:
    """File names of the wheels ``blender_manifest.toml`` bundles."""
    return [Path(w).name for w in manifest.get("wheels", [])]


def build(dist: Path = ROOT / "dist", with_wheels: bool = True,
          work: Path = ROOT / "build" / "addon", wheel_cache: Path = WHEEL_CACHE,
          download: bool = True) -> Path:
    """Build and validate the extension zip; returns its path.

    With ``with_wheels`` (the default) every wheel the manifest names must end up in the zip,
    else BuildError: nothing is built without them.
    """
    manifest = read_manifest()
    wheels = None
    if with_wheels:
        wheels = ensure_wheels(manifest_wheels(manifest), wheel_cache, download)
    src = stage(work, wheels)
    dist.mkdir(parents=True, exist_ok=True)
    zip_path = dist / f"{manifest['id']}-{manifest['version']}.zip"
    if zip_path.exists():
        zip_path.unlink()
    _run_ext("build", "--source-dir", str(src), "--output-filepath", str(zip_path))
    _run_ext("validate", str(zip_path))
    if wheels:
        packed = set(zipfile.ZipFile(zip_path).namelist())
        lost = [w.name for w in wheels if f"wheels/{w.name}" not in packed]
        if lost:
            zip_path.unlink()
            raise BuildError(f"the built zip lacks the wheels {', '.join(lost)}")
    return zip_path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m blender_addon.build", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dist", type=Path, default=ROOT / "dist", help="output folder")
    ap.add_argument("--no-wheels", action="store_true",
                    help="leave out the pyzmq wheels (for a Blender that already has pyzmq)")
    ap.add_argument("--wheel-cache", type=Path, default=WHEEL_CACHE,
                    help="folder holding (or receiving) the wheels (default: %(default)s)")
    ap.add_argument("--offline", action="store_true",
                    help="never download: fail unless every wheel is in the wheel cache")
    ap.add_argument("--fetch-wheels", action="store_true",
                    help="only make sure the wheels are in the wheel cache, build nothing")
    args = ap.parse_args(argv)
    try:
        if args.fetch_wheels:
            names = manifest_wheels(read_manifest())
            ensure_wheels(names, args.wheel_cache, download=not args.offline)
            print(f"{len(names)} wheels ready in {args.wheel_cache}")
            return 0
        path = build(args.dist, with_wheels=not args.no_wheels, wheel_cache=args.wheel_cache,
                     download=not args.offline)
    except BuildError as err:
        print(f"anim4d add-on build failed: {err}", file=sys.stderr)
        return 1
    print(f"built and validated {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
