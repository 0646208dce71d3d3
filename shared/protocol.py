"""The Anim4D wire protocol: encoding and validating multipart messages (see PROTOCOL.md).

A message is a list of frames::

    [version, header, content, buffer_0, buffer_1, ...]

- ``version``: ASCII ``b"A4D/<major>.<minor>"``.
- ``header``: UTF-8 JSON object: ``type``, ``id``, ``reply_to``, ``job``, ``status``, ``error``.
- ``content``: UTF-8 JSON object; ``content["arrays"]`` describes each buffer frame in order as
  ``{"name", "dtype", "shape"}``.
- one raw frame per array, C-contiguous, little-endian, exactly ``prod(shape) * itemsize`` bytes.

Nothing is ever pickled. Everything a peer sends is validated before use: frame count, version,
JSON, message type, field types, dtypes, shapes and byte lengths. Unknown fields are tolerated;
unknown major versions are refused with :class:`~shared.errors.VersionError`.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import ProtocolError, VersionError

PROTOCOL_MAJOR = 1
PROTOCOL_MINOR = 1
PROTOCOL_VERSION = f"{PROTOCOL_MAJOR}.{PROTOCOL_MINOR}"
VERSION_FRAME = f"A4D/{PROTOCOL_VERSION}".encode("ascii")

#: Inputs larger than this are uploaded in chunks of at most this size before ``submit``.
INLINE_INPUT_LIMIT = 16 * 1024 * 1024
UPLOAD_CHUNK_BYTES = 8 * 1024 * 1024
#: Default cap on one message a server accepts (``zmq.MAXMSGSIZE`` is set from it).
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
MAX_ARRAYS = 64
MAX_NDIM = 8
MAX_JSON_BYTES = 4 * 1024 * 1024

ALLOWED_DTYPES = frozenset(
    ["|b1", "|u1", "|i1", "<u2", "<i2", "<u4", "<i4", "<u8", "<i8", "<f2", "<f4", "<f8"]
)

# Requests (client -> server). A successful reply keeps the request's type; a failed one has
# type "error". Events (server -> client) carry reply_to = the request they belong to.
REQUEST_TYPES = frozenset(
    ["hello", "ping", "submit", "upload", "cancel", "jobs", "job", "watch", "fetch", "delete"]
)
EVENT_TYPES = frozenset(["progress", "preview", "result", "done", "heartbeat", "error"])
MESSAGE_TYPES = REQUEST_TYPES | EVENT_TYPES
STATUSES = (None, "ok", "error")

JOB_STATES = ("queued", "running", "done", "failed", "cancelled", "interrupted")
TERMINAL_STATES = frozenset(["done", "failed", "cancelled", "interrupted"])

# Required content fields per type and their JSON types (bool is not an int here).
_NUM = (int, float)
CONTENT_SCHEMA: dict[str, dict[str, tuple[type, ...]]] = {
    "hello": {"client": (str,), "protocol": (str,)},
    "ping": {},
    "submit": {"kind": (str,), "params": (dict,), "inputs": (list,)},
    "upload": {"upload": (str,), "index": (int,), "count": (int,), "size": (int,)},
    "cancel": {},
    "jobs": {},
    "job": {},
    "watch": {},
    "fetch": {"from_chunk": (int,)},
    "delete": {},
    "progress": {"state": (str,), "stage": (str,), "fraction": _NUM},
    "preview": {"stage": (str,), "step": (int,), "times": (list,)},
    "result": {"chunk": (int,), "count": (int,), "part": (str,)},
    "done": {"state": (str,)},
    "heartbeat": {},
    "error": {},
}
# Required fields of successful replies (status "ok", type = the request's type).
REPLY_SCHEMA: dict[str, dict[str, tuple[type, ...]]] = {
    "hello": {"server_version": (str,), "protocol": (str,), "kinds": (list,)},
    "ping": {},
    "submit": {"job": (dict,)},
    "upload": {"upload": (str,), "index": (int,)},
    "cancel": {"job": (dict,)},
    "jobs": {"jobs": (list,)},
    "job": {"job": (dict,)},
    "watch": {"job": (dict,)},
    "fetch": {"count": (int,)},
    "delete": {},
}
# Requests that name a job in the header.
JOB_REQUESTS = frozenset(["cancel", "job", "watch", "fetch", "delete"])


def new_id() -> str:
    return uuid.uuid4().hex


@dataclass
class Message:
    """One decoded (or to-be-encoded) message. ``arrays`` keeps the order of the buffer frames."""

    type: str
    content: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    id: str = field(default_factory=new_id)
    reply_to: str | None = None
    job: str | None = None
    status: str | None = None
    error: dict[str, str] | None = None
    version: tuple[int, int] = (PROTOCOL_MAJOR, PROTOCOL_MINOR)

    @property
    def ok(self) -> bool:
        return self.status != "error"

    def reply(self, type_: str | None = None, content: dict | None = None,
              arrays: dict[str, np.ndarray] | None = None, job: str | None = None) -> Message:
        """An ok reply (or event, with ``type_``) linked to this request."""
        return Message(type=type_ or self.type, content=content or {}, arrays=arrays or {},
                       reply_to=self.id, job=job if job is not None else self.job, status="ok")

    def error_reply(self, code: str, message: str) -> Message:
        return error_message(code, message, reply_to=self.id, job=self.job)


def error_message(code: str, message: str, reply_to: str | None = None,
                  job: str | None = None) -> Message:
    return Message(type="error", reply_to=reply_to, job=job, status="error",
                   error={"code": str(code), "message": str(message)})


def _json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode("utf-8")


def encode(msg: Message) -> list[bytes | memoryview]:
    """Message -> frames. Array buffers are zero-copy views of C-contiguous little-endian data."""
    if msg.type not in MESSAGE_TYPES:
        raise ProtocolError(f"cannot send unknown message type {msg.type!r}")
    header = {"type": msg.type, "id": msg.id, "reply_to": msg.reply_to, "job": msg.job,
              "status": msg.status, "error": msg.error, "time": time.time()}
    content = dict(msg.content)
    specs, buffers = [], []
    for name, arr in msg.arrays.items():
        arr = np.asarray(arr)
        if arr.dtype.byteorder == ">" or (arr.dtype.byteorder == "=" and not _little()):
            arr = arr.astype(arr.dtype.newbyteorder("<"))
        arr = np.ascontiguousarray(arr)
        dt = arr.dtype.str
        if dt not in ALLOWED_DTYPES:
            raise ProtocolError(f"array {name!r}: dtype {dt} cannot be sent")
        specs.append({"name": name, "dtype": dt, "shape": list(arr.shape)})
        buffers.append(memoryview(arr).cast("B") if arr.size else b"")
    if specs:
        content["arrays"] = specs
    return [VERSION_FRAME, _json_bytes(header), _json_bytes(content), *buffers]


def _little() -> bool:
    return np.little_endian


def parse_version(frame: bytes) -> tuple[int, int]:
    try:
        text = bytes(frame).decode("ascii")
        prefix, _, num = text.partition("/")
        major_s, _, minor_s = num.partition(".")
        if prefix != "A4D" or not major_s.isdigit() or not minor_s.isdigit():
            raise ValueError
        major, minor = int(major_s), int(minor_s)
    except (UnicodeDecodeError, ValueError):
        raise ProtocolError(
            "first frame is not an Anim4D version frame (expected b'A4D/<major>.<minor>')"
        ) from None
    if major != PROTOCOL_MAJOR:
        raise VersionError(
            f"peer speaks Anim4D protocol {major}.{minor}; this side speaks {PROTOCOL_VERSION}. "
            "Update the add-on and the backend to the same release"
        )
    return major, minor


def _load_json(frame: bytes, what: str) -> dict:
    if len(frame) > MAX_JSON_BYTES:
        raise ProtocolError(f"{what} frame is {len(frame)} bytes, over {MAX_JSON_BYTES}")
    try:
        obj = json.loads(bytes(frame).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise ProtocolError(f"{what} frame is not UTF-8 JSON ({err})") from None
    if not isinstance(obj, dict):
        raise ProtocolError(f"{what} frame must be a JSON object, got {type(obj).__name__}")
    return obj


def _clip(value: Any, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters: errors quote what they refuse, briefly."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _opt_str(header: dict, key: str) -> str | None:
    value = header.get(key)
    if value is not None and not isinstance(value, str):
        raise ProtocolError(f"header field {key!r} must be a string or null")
    return value


def _check_fields(mtype: str, content: dict, schema: dict) -> None:
    for key, types in schema[mtype].items():
        if key not in content:
            raise ProtocolError(f"{mtype}: missing content field {key!r}")
        value = content[key]
        if isinstance(value, bool) or not isinstance(value, types):
            names = "/".join(t.__name__ for t in types)
            raise ProtocolError(f"{mtype}: content field {key!r} must be {names}")


def _buffer(frame: Any) -> memoryview:
    buf = getattr(frame, "buffer", frame)
    return memoryview(buf).cast("B") if not isinstance(buf, bytes) else memoryview(buf)


def _decode_arrays(content: dict, frames: Sequence[Any], max_array_bytes: int) -> dict:
    specs = content.get("arrays", [])
    if not isinstance(specs, list) or len(specs) > MAX_ARRAYS:
        raise ProtocolError(f"content 'arrays' must be a list of at most {MAX_ARRAYS} entries")
    if len(specs) != len(frames):
        raise ProtocolError(
            f"content describes {len(specs)} arrays but the message has {len(frames)} buffer frames"
        )
    arrays: dict[str, np.ndarray] = {}
    for i, (spec, frame) in enumerate(zip(specs, frames, strict=True)):
        if not isinstance(spec, dict):
            raise ProtocolError(f"array spec {i} must be an object")
        name, dtype, shape = spec.get("name"), spec.get("dtype"), spec.get("shape")
        if not isinstance(name, str) or not name or name in arrays:
            raise ProtocolError(f"array spec {i}: 'name' must be a unique non-empty string")
        if not isinstance(dtype, str) or dtype not in ALLOWED_DTYPES:
            raise ProtocolError(
                f"array {_clip(name)}: dtype {_clip(dtype)} not accepted; accepted: "
                + ", ".join(sorted(ALLOWED_DTYPES))
            )
        if (not isinstance(shape, list) or len(shape) > MAX_NDIM
                or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                           for d in shape)):
            raise ProtocolError(
                f"array {name!r}: shape must be a list of at most {MAX_NDIM} non-negative ints"
            )
        itemsize = np.dtype(dtype).itemsize
        expected = math.prod(shape) * itemsize
        if max(expected, math.prod(d or 1 for d in shape)) > max_array_bytes:
            raise ProtocolError(
                f"array {name!r}: declared shape {shape} is {expected} bytes, over the "
                f"{max_array_bytes}-byte limit"
            )
        buf = _buffer(frame)
        if buf.nbytes != expected:
            raise ProtocolError(
                f"array {name!r}: shape {shape} of {dtype} needs {expected} bytes, "
                f"buffer frame has {buf.nbytes}"
            )
        arrays[name] = np.frombuffer(buf, dtype=np.dtype(dtype)).reshape(shape)
    return arrays


def decode(frames: Sequence[Any], max_array_bytes: int = MAX_MESSAGE_BYTES) -> Message:
    """Frames -> :class:`Message`, validating everything; raises :class:`ProtocolError`.

    Arrays are read-only views of the received buffers (no copy).
    """
    if len(frames) < 3:
        raise ProtocolError(
            f"a message needs at least 3 frames (version, header, content), got {len(frames)}"
        )
    version = parse_version(_buffer(frames[0]).tobytes())
    header = _load_json(_buffer(frames[1]).tobytes(), "header")
    content = _load_json(_buffer(frames[2]).tobytes(), "content")
    mtype = header.get("type")
    if not isinstance(mtype, str) or mtype not in MESSAGE_TYPES:
        raise ProtocolError(
            f"unknown message type {_clip(mtype)}; known: {', '.join(sorted(MESSAGE_TYPES))}"
        )
    mid = header.get("id")
    if not isinstance(mid, str) or not mid or len(mid) > 128:
        raise ProtocolError("header field 'id' must be a non-empty string of at most 128 chars")
    status = header.get("status")
    if status not in STATUSES:
        raise ProtocolError(f"header field 'status' must be ok, error or null, got {status!r}")
    error = header.get("error")
    if error is not None and not (
        isinstance(error, dict)
        and isinstance(error.get("code"), str)
        and isinstance(error.get("message"), str)
    ):
        raise ProtocolError("header field 'error' must be {code: str, message: str} or null")
    if status == "error" and error is None:
        raise ProtocolError("a message with status 'error' needs an 'error' object")
    job = _opt_str(header, "job")
    is_request = mtype in REQUEST_TYPES and status is None
    if is_request and mtype in JOB_REQUESTS and not job:
        raise ProtocolError(f"{mtype}: the header must name a job ('job' field)")
    if status != "error":
        _check_fields(mtype, content,
                      REPLY_SCHEMA if mtype in REQUEST_TYPES and not is_request
                      else CONTENT_SCHEMA)
    arrays = _decode_arrays(content, frames[3:], max_array_bytes)
    return Message(
        type=mtype, content=content, arrays=arrays, id=mid,
        reply_to=_opt_str(header, "reply_to"), job=job, status=status, error=error,
        version=version,
    )


def peek_ids(frames: Sequence[Any]) -> tuple[str | None, str | None]:
    """Best effort (id, job) of a message that failed to decode, so an error can be linked."""
    try:
        header = json.loads(_buffer(frames[1]).tobytes().decode("utf-8"))
        mid, job = header.get("id"), header.get("job")
        return (mid if isinstance(mid, str) and len(mid) <= 128 else None,
                job if isinstance(job, str) and len(job) <= 128 else None)
    except Exception:  # noqa: BLE001 - anything malformed simply has no ids
        return None, None
