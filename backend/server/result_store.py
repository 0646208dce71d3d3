"""A store reached by URL through fsspec (``anim4d serve --executor ray --result-store URL``),
for Ray nodes that share no disk with the gateway.

Layout under the URL, one folder per job: ``<id>/inputs/`` (the job's input files, put there by
the gateway before its task starts), ``<id>/result/`` (the finished result, put there by the
worker), ``<id>/worker.log``. Object stores have no atomic rename, so a folder counts only once
its *marker* exists, written last: ``<id>/inputs.json`` and ``<id>/result.json``, each listing
every file with its size (the result's also names the task attempt that made it). A reader copies
exactly the files listed and checks their sizes, so a half-copied folder, or one a killed
attempt left behind, is never taken as done. A writer removes the marker first, then the folder.

The gateway stays the source of truth: when a job is done it copies ``<id>/result/`` into its own
store (``result.partial/``, then the usual rename), and ``fetch`` serves from there. The store
keeps a finished result until the job is deleted, so a later job that takes it as a ``job``
parameter (resample, render) copies it down from the store on its node.

Every failure is a :class:`StoreError` with one line naming the URL and what failed. Only the
URL string travels to Ray tasks; each process opens the filesystem itself (credentials come from
the protocol's usual configuration on each machine, e.g. ``AWS_*`` for ``s3://``).
"""

from __future__ import annotations

import json
import posixpath
import shutil
import uuid
from pathlib import Path

from shared.errors import Anim4DError

INPUTS_MARKER = "inputs.json"
RESULT_MARKER = "result.json"


class StoreError(Anim4DError):
    def __init__(self, message: str):
        super().__init__(message, "job_failed")


def _why(err: BaseException) -> str:
    text = getattr(err, "strerror", None) or " ".join(str(err).split()) or type(err).__name__
    return f"{type(err).__name__}: {text}"[:300]


class ResultStore:
    """The store at ``url`` (any fsspec URL: ``file:///mnt/shared/anim4d``, ``s3://bucket/p``);
    picklable as its URL (the filesystem is opened on first use in each process)."""

    def __init__(self, url: str):
        self.url = url.rstrip("/") or url
        self._fs = None
        self._root = ""

    def __getstate__(self) -> dict:
        return {"url": self.url}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["url"])

    # ---- the filesystem ------------------------------------------------------------------
    @property
    def fs(self):
        if self._fs is None:
            import fsspec

            try:
                self._fs, self._root = fsspec.core.url_to_fs(self.url)
            except (ImportError, ValueError, TypeError) as err:
                raise StoreError(f"result store {self.url}: {_why(err)}") from None
            self._root = self._root.rstrip("/")
        return self._fs

    def path(self, *parts: str) -> str:
        self.fs  # noqa: B018 - opens it (sets the root)
        return posixpath.join(self._root, *parts)

    def check(self) -> None:
        """Raise :class:`StoreError` unless the store can be written, read back and deleted
        from (done once at serve start)."""
        probe = self.path(f".anim4d-probe-{uuid.uuid4().hex[:8]}")
        try:
            self.fs.makedirs(self._root, exist_ok=True)
            self.fs.pipe_file(probe, b"anim4d")
            if self.fs.cat_file(probe) != b"anim4d":
                raise OSError("what was written did not read back")
            self.fs.rm_file(probe)
        except StoreError:
            raise
        except Exception as err:  # noqa: BLE001 - any backend's error: one line
            raise StoreError(f"result store {self.url} cannot be used: {_why(err)}") from None

    # ---- folders with markers ------------------------------------------------------------
    def _put_folder(self, job_id: str, name: str, files: dict[str, Path], extra: dict) -> None:
        """``files`` ({relative name: local file}) to ``<id>/<name>/``, marker last."""
        marker = self.path(job_id, f"{name}.json")
        folder = self.path(job_id, name)
        try:
            self._remove(marker)
            self._remove(folder)
            sizes = {}
            for rel, local in files.items():
                target = posixpath.join(folder, rel)
                self.fs.makedirs(posixpath.dirname(target), exist_ok=True)
                self.fs.put_file(str(local), target)
                sizes[rel] = local.stat().st_size
            self.fs.makedirs(self.path(job_id), exist_ok=True)
            self.fs.pipe_file(marker, json.dumps({**extra, "files": sizes}).encode())
        except Exception as err:  # noqa: BLE001 - any backend's error: one line
            raise StoreError(f"copying the job's {name} to the result store {self.url} "
                             f"failed: {_why(err)}") from None

    def _get_folder(self, job_id: str, name: str, dest: Path, key: str | None = None) -> dict:
        """``<id>/<name>/`` into ``dest`` (emptied first), as its marker lists it; returns the
        marker. ``key``: the task attempt that must have written it."""
        what = f"job {job_id}'s {name} in the result store {self.url}"
        try:
            raw = self.fs.cat_file(self.path(job_id, f"{name}.json"))
        except FileNotFoundError:
            raise StoreError(f"{what} is missing or was never completed") from None
        except Exception as err:  # noqa: BLE001
            raise StoreError(f"reading {what} failed: {_why(err)}") from None
        try:
            marker = json.loads(raw)
            files = {str(k): int(v) for k, v in marker["files"].items()}
        except (ValueError, KeyError, TypeError, AttributeError):
            raise StoreError(f"{what}: its {name}.json is unreadable") from None
        if key is not None and marker.get("key") != key:
            raise StoreError(f"{what} was written by another run ({marker.get('key')!r}, not "
                             f"{key!r})")
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        for rel, size in files.items():
            local = dest.joinpath(*rel.split("/"))
            if rel.startswith("/") or ".." in rel.split("/") or not local.is_relative_to(dest):
                raise StoreError(f"{what}: {name}.json names {rel!r}, outside the folder")
            local.parent.mkdir(parents=True, exist_ok=True)
            try:
                self.fs.get_file(self.path(job_id, name, rel), str(local))
            except Exception as err:  # noqa: BLE001
                raise StoreError(f"copying {what} failed at {rel}: {_why(err)}") from None
            if local.stat().st_size != size:
                raise StoreError(f"{what} is incomplete: {rel} has {local.stat().st_size} "
                                 f"bytes, {size} expected")
        return marker

    def _remove(self, path: str) -> None:
        if self.fs.exists(path):
            self.fs.rm(path, recursive=True)

    # ---- what the gateway and the workers do ---------------------------------------------
    def put_inputs(self, job_id: str, inputs: list[Path]) -> None:
        self._put_folder(job_id, "inputs", {p.name: p for p in inputs}, {})

    def get_inputs(self, job_id: str, dest: Path, names: list[str]) -> list[Path]:
        """The job's inputs into ``dest``, in the order of ``names``."""
        marker = self._get_folder(job_id, "inputs", dest)
        missing = [n for n in names if n not in marker["files"]]
        if missing:
            raise StoreError(f"job {job_id}'s inputs in the result store {self.url} lack "
                             f"{', '.join(missing)}")
        return [dest / n for n in names]

    def drop_inputs(self, job_id: str) -> None:
        self._remove(self.path(job_id, INPUTS_MARKER))
        self._remove(self.path(job_id, "inputs"))

    def put_result(self, job_id: str, key: str, folder: Path) -> None:
        """A finished result folder (``key``: the task attempt that made it)."""
        files = {p.relative_to(folder).as_posix(): p
                 for p in sorted(folder.rglob("*")) if p.is_file()}
        self._put_folder(job_id, "result", files, {"key": key})

    def has_result(self, job_id: str) -> bool:
        try:
            return self.fs.exists(self.path(job_id, RESULT_MARKER))
        except Exception:  # noqa: BLE001 - treated as absent (put again)
            return False

    def get_result(self, job_id: str, dest: Path, key: str | None = None) -> None:
        self._get_folder(job_id, "result", dest, key)

    def put_log(self, job_id: str, log: Path) -> None:
        """The worker's log (best effort: a log is never worth failing a job)."""
        try:
            if log.is_file():
                self.fs.makedirs(self.path(job_id), exist_ok=True)
                self.fs.put_file(str(log), self.path(job_id, "worker.log"))
        except Exception:  # noqa: BLE001
            pass

    def get_log(self, job_id: str, dest: Path) -> None:
        """Append the store's worker log of the job to ``dest`` (best effort)."""
        try:
            data = self.fs.cat_file(self.path(job_id, "worker.log"))
        except Exception:  # noqa: BLE001
            return
        with open(dest, "ab") as f:
            f.write(data)

    def delete(self, job_id: str) -> None:
        """Everything the store holds for the job (best effort)."""
        try:
            self._remove(self.path(job_id, RESULT_MARKER))
            self._remove(self.path(job_id))
        except Exception:  # noqa: BLE001
            pass
