"""Chunked uploads of job inputs larger than ``INLINE_INPUT_LIMIT``.

The client sends ``upload`` messages ``index = 0 .. count-1`` in order, each with one ``data``
buffer (uint8); the last one completes the file, whose total size must equal the declared
``size``. ``submit`` then names the upload id instead of carrying the bytes inline.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from shared.errors import ParamError, ProtocolError

UPLOAD_ID_RE = re.compile(r"^[0-9a-f]{8,64}\Z")


@dataclass
class _Upload:
    path: Path
    count: int
    size: int
    received: int = 0
    bytes: int = 0

    @property
    def complete(self) -> bool:
        return self.received == self.count


class Uploads:
    def __init__(self, folder: Path, max_bytes: int = 64 * 1024**3):
        self.folder = folder
        self.max_bytes = max_bytes
        self.active: dict[str, _Upload] = {}
        shutil.rmtree(folder, ignore_errors=True)  # partial uploads do not survive a restart
        folder.mkdir(parents=True, exist_ok=True)

    def add(self, upload_id: str, index: int, count: int, size: int, data: memoryview) -> bool:
        """Append one chunk; returns True when the upload is complete."""
        if not UPLOAD_ID_RE.match(upload_id):
            raise ProtocolError("upload id must be 8 to 64 lowercase hex characters")
        if not 0 <= size <= self.max_bytes:
            raise ParamError(f"upload of {size / 1e6:.1f} MB refused: this server takes files of "
                             f"at most {self.max_bytes / 1e6:.1f} MB", "too_large")
        if not 0 < count <= 1_000_000:
            raise ProtocolError(f"upload {upload_id}: count {count} out of range")
        up = self.active.get(upload_id)
        if up is None:
            if index != 0:
                raise ProtocolError(f"upload {upload_id}: unknown upload (chunk {index} first)")
            up = _Upload(self.folder / upload_id, count, size)
            up.path.write_bytes(b"")
            self.active[upload_id] = up
        if (count, size) != (up.count, up.size):
            raise ProtocolError(f"upload {upload_id}: count/size changed between chunks")
        if index != up.received:
            raise ProtocolError(
                f"upload {upload_id}: chunk {index} out of order, expected {up.received}"
            )
        if up.bytes + len(data) > up.size:
            raise ProtocolError(f"upload {upload_id}: more bytes than the declared {up.size}")
        with open(up.path, "ab") as fh:
            fh.write(data)
        up.received += 1
        up.bytes += len(data)
        if up.complete and up.bytes != up.size:
            self.discard(upload_id)
            raise ProtocolError(
                f"upload {upload_id}: received {up.bytes} bytes, declared {up.size}"
            )
        return up.complete

    def size(self, upload_id: str) -> int:
        """The declared size of an upload in progress or complete (0: unknown id)."""
        up = self.active.get(upload_id)
        return up.size if up is not None else 0

    def take(self, upload_id: str, dest: Path) -> None:
        """Move a complete upload to ``dest`` (a job's input)."""
        up = self.active.get(upload_id) if isinstance(upload_id, str) else None
        if up is None or not up.complete:
            raise ProtocolError(f"upload {upload_id!r} is unknown or incomplete")
        shutil.move(str(up.path), dest)
        del self.active[upload_id]

    def discard(self, upload_id: str) -> None:
        up = self.active.pop(upload_id, None)
        if up is not None:
            up.path.unlink(missing_ok=True)
