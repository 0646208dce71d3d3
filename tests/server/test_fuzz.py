"""Malformed traffic against a running server over loopback TCP: it answers or drops, and serves on.

A property-based test throws malformed multipart messages at an :class:`EmbeddedServer` through
raw DEALER sockets: wrong frame counts, bad versions, broken JSON, unknown types, wrong field
types, bad array specs and buffers, bad upload sequences, path-traversal input names and unknown
job ids. Every such message must get exactly one ``error`` reply (``status`` ``"error"``, a
documented error code other than ``internal``, a human message, linked to the request id when the
header was readable). Meanwhile real clients run ``debug.sleep`` jobs before, during and after the
fuzzing; all of them must finish ``done`` and fetch byte-identical results.

What never gets a reply, by design:

- a message of 0 frames cannot exist: ZMTP has no empty multipart message (pyzmq refuses to send
  one); the nearest thing, one empty frame, gets an error reply like any short message;
- a frame over the server's ``MAXMSGSIZE`` (``max_message_bytes`` + 1 MiB): libzmq drops the
  connection before the server sees the message; the peer's socket reconnects by itself
  (:func:`test_oversize_frame_disconnects_the_peer_and_the_server_serves_on`).
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import zmq
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from zmq.utils.monitor import recv_monitor_message

from backend.jobs import debug
from backend.jobs.registry import JobKind
from backend.server.embedded import EmbeddedServer
from blender_addon.core.client import Client
from shared.meshseq import load_npz
from shared.protocol import CONTENT_SCHEMA, MESSAGE_TYPES, VERSION_FRAME, decode

KINDS = {s.name: JobKind(s, f"backend.jobs.debug:{fn}") for s, fn in debug.KINDS}
#: Error codes a server may answer a request with (shared/PROTOCOL.md, "Error codes"), less
#: ``internal``, which means a server bug.
REQUEST_ERROR_CODES = {"bad_message", "version_mismatch", "unknown_kind", "bad_param",
                       "bad_input", "unknown_job", "job_active", "not_done"}
#: a ceiling for anything that only has to happen eventually (a reply, a disconnect): it catches
#: a hang, never a slow machine. Nothing here asserts how fast a thing happens.
CEILING = 120.0
REPLY_TIMEOUT_MS = int(CEILING * 1000)
ANY = None  # any documented request error code
#: ``make fuzz`` also runs the main fuzz test against a gateway in Ray mode
#: (``ANIM4D_FUZZ_EXECUTOR=ray``, a local 2-CPU Ray cluster started here), until at least
#: ``ANIM4D_FUZZ_MESSAGES`` malformed messages were sent (0: one Hypothesis run).
EXECUTOR = os.environ.get("ANIM4D_FUZZ_EXECUTOR", "local")
MIN_MESSAGES = int(os.environ.get("ANIM4D_FUZZ_MESSAGES", "0") or 0)
UP = "$UPLOAD"  # placeholder: each example's fresh upload id


# ---- helpers ----------------------------------------------------------------------------------
def _js(obj) -> bytes:
    return obj if isinstance(obj, bytes) else json.dumps(obj).encode("utf-8")


def _fill(obj, upload_id: str):
    """Replace the ``UP`` placeholder, wherever it sits, by ``upload_id``."""
    if obj == UP:
        return upload_id
    if isinstance(obj, dict):
        return {k: _fill(v, upload_id) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_fill(v, upload_id) for v in obj]
    return obj


class Raw:
    """A raw DEALER socket: send any frames, read back the single reply, if any."""

    def __init__(self, address: str, **opts: int):
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        for name, value in opts.items():
            self.sock.setsockopt(getattr(zmq, name), value)
        self.sock.connect(address)

    def exchange(self, frames: list[bytes], timeout_ms: int = REPLY_TIMEOUT_MS,
                 alive=lambda: True):
        """Send ``frames``; the reply, or None after ``timeout_ms`` or once ``alive()`` is false."""
        self.sock.send_multipart(frames, copy=True)
        end = time.monotonic() + timeout_ms / 1000
        while time.monotonic() < end:
            if self.sock.poll(50):
                return self.sock.recv_multipart()
            if not alive():
                return None
        return None

    def close(self) -> None:
        self.sock.close(linger=0)


def readable_id(frames: list[bytes]) -> str | None:
    """The request id an error reply must be linked to: the header's ``id`` when it is readable
    (a JSON object whose ``id`` is a string of at most 128 characters)."""
    if len(frames) < 2:
        return None
    try:
        header = json.loads(frames[1].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    mid = header.get("id") if isinstance(header, dict) else None
    return mid if isinstance(mid, str) and len(mid) <= 128 else None


def check_error_reply(frames: list[bytes], reply: list[bytes] | None, code: str | None) -> None:
    assert reply is not None, f"no reply within {REPLY_TIMEOUT_MS} ms to {frames!r:.300}"
    msg = decode(reply)  # the reply itself must be a valid message
    assert (msg.type, msg.status) == ("error", "error"), (msg.type, msg.content, frames)
    err_code, text = msg.error["code"], msg.error["message"]
    assert err_code in REQUEST_ERROR_CODES, f"code {err_code!r} ({text}) for {frames!r:.300}"
    assert code is None or err_code == code, f"expected {code}, got {err_code}: {text}"
    assert isinstance(text, str) and len(text) > 10, text
    assert msg.reply_to == readable_id(frames), (msg.reply_to, frames[:2])


# ---- strategies -------------------------------------------------------------------------------
# Each yields a case: a list of (frames-spec, expectation) sent in order. A frames-spec is
# (version, header, content, buffers), header and content dicts or raw bytes, or a plain list of
# frames; an expectation is "ok" or the error code wanted (ANY: any documented one).
ids = st.text("0123456789abcdef", min_size=1, max_size=32).map(lambda s: "fz" + s)
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                         st.floats(allow_nan=False), st.text(max_size=8))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=6)
NOT_INT = st.one_of(st.none(), st.booleans(), st.floats(), st.text(max_size=6),
                    st.lists(st.integers(), max_size=2), st.just({}))
NOT_STR = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                    st.lists(st.text(max_size=3), max_size=2), st.just({}))
NOT_DICT = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=6),
                     st.lists(st.integers(), max_size=2))
NOT_LIST = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=6), st.just({}))
WRONG_FOR = {int: NOT_INT, str: NOT_STR, dict: NOT_DICT, list: NOT_LIST}
REQUEST_CONTENT = {  # a valid content per request type (job requests also need a header job)
    "hello": {"client": "fuzz", "protocol": "1.0"}, "ping": {}, "jobs": {}, "job": {},
    "watch": {}, "cancel": {}, "delete": {}, "fetch": {"from_chunk": 0},
    "submit": {"kind": "debug.nope", "params": {}, "inputs": []},
    "upload": {"upload": UP, "index": 0, "count": 2, "size": 8},
}
UNKNOWN_JOB = "0123456789abcdef0123456789abcdef"


def ping(mid: str) -> tuple:
    return (VERSION_FRAME, {"type": "ping", "id": mid}, {}, [])


@st.composite
def wrong_frame_counts(draw):
    mid = draw(ids)
    frames = draw(st.sampled_from([
        [b""], [VERSION_FRAME], [draw(st.binary(max_size=40))],
        [VERSION_FRAME, _js({"type": "ping", "id": mid})],
        [VERSION_FRAME, b""], [b"", b""], [draw(st.binary(max_size=20)), b"{}"],
    ]))
    return [(frames, "bad_message")]


@st.composite
def bad_versions(draw):
    version, code = draw(st.sampled_from([
        (b"A4D/2.0", "version_mismatch"), (b"A4D/0.9", "version_mismatch"),
        (b"A4D/99999999999999999999.0", "version_mismatch"), (b"garbage", "bad_message"),
        (b"", "bad_message"), (b"A4D/", "bad_message"), (b"A4D/1", "bad_message"),
        (b"A4D/1.x", "bad_message"), (b"a4d/1.0", "bad_message"), (b"A4D/1.0 ", "bad_message"),
        (b"\xff\xfe\x00", "bad_message"), (b"A4D/-1.0", "bad_message"),
        (b"A4D/\xd9\xa1.0", "bad_message"),  # an Arabic-Indic one: isdigit, but not ASCII
        (draw(st.binary(max_size=24).filter(lambda b: not b.startswith(b"A4D/"))),
         "bad_message"),
    ]))
    return [((version, *ping(draw(ids))[1:]), code)]


@st.composite
def bad_json_frames(draw):
    bad = draw(st.one_of(
        st.sampled_from([b"", b"{", b"{'type': 'ping'}", b"\xff\xfe{}", b"\xc3\x28",
                         b"{\"type\": \"ping\"", b"null", b"[]", b"42", b"\"ping\"", b"true",
                         b"[" * 5000 + b"]" * 5000, b"{\"a\":" * 3000 + b"1" + b"}" * 3000,
                         "{\"type\": \"p\u00efng\"}".encode("utf-16")]),
        st.binary(max_size=64).filter(lambda b: not _is_json_object(b)),
        json_values.filter(lambda v: not isinstance(v, dict)).map(_js),
    ))
    mid = draw(ids)
    if draw(st.booleans()):  # the header is broken
        return [((VERSION_FRAME, bad, {}, []), "bad_message")]
    return [((VERSION_FRAME, {"type": "ping", "id": mid}, bad, []), "bad_message")]


def _is_json_object(raw: bytes) -> bool:
    try:
        return isinstance(json.loads(raw.decode("utf-8")), dict)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return False


@st.composite
def unknown_types(draw):
    mtype = draw(st.one_of(
        st.text(max_size=12).filter(lambda t: t not in MESSAGE_TYPES),
        st.sampled_from(["PING", "Ping", " ping", "ping\x00", "_on_ping", "__init__", "send",
                         "forget", "receive_some"]),
        NOT_STR))
    header = {"id": draw(ids)} | ({} if draw(st.booleans()) else {"type": mtype})
    return [((VERSION_FRAME, header, {}, []), "bad_message")]


@st.composite
def event_types_as_requests(draw):
    """Events and errors are not requests: a server answers them with an error."""
    mtype = draw(st.sampled_from(sorted(MESSAGE_TYPES - set(REQUEST_CONTENT))))
    content = {k: (0 if int in t else "x") for k, t in CONTENT_SCHEMA[mtype].items()}
    return [((VERSION_FRAME, {"type": mtype, "id": draw(ids)}, content, []), "bad_message")]


@st.composite
def wrong_header_fields(draw):
    mid = draw(ids)
    field_, value = draw(st.one_of(
        st.tuples(st.just("id"), st.one_of(NOT_STR, st.just(""), st.just("i" * 129))),
        st.tuples(st.just("status"), st.one_of(
            st.sampled_from(["OK", "Error", "maybe", "", 1, True, [], {}]), st.floats())),
        st.tuples(st.just("error"), st.one_of(
            st.sampled_from(["oops", 1, [], {}, {"code": 1, "message": "m"},
                             {"code": "c"}, {"message": "m"}, {"code": "c", "message": None}]))),
        st.tuples(st.just("job"), st.one_of(st.integers(), st.booleans(), st.floats(),
                                            st.lists(st.integers(), max_size=2), st.just({}))),
        st.tuples(st.just("reply_to"), NOT_STR.filter(lambda v: v is not None)),
    ))
    header = {"type": "ping", "id": mid}
    if field_ == "id" and draw(st.booleans()):
        del header["id"]
    else:
        header[field_] = value
    return [((VERSION_FRAME, header, {}, []), "bad_message")]


@st.composite
def wrong_content_fields(draw):
    mtype = draw(st.sampled_from(sorted(t for t in REQUEST_CONTENT if CONTENT_SCHEMA[t])))
    content = dict(REQUEST_CONTENT[mtype])
    key = draw(st.sampled_from(sorted(CONTENT_SCHEMA[mtype])))
    if draw(st.booleans()):
        del content[key]
    else:
        content[key] = draw(WRONG_FOR[CONTENT_SCHEMA[mtype][key][0]])
    header = {"type": mtype, "id": draw(ids)}
    if mtype == "fetch":
        header["job"] = UNKNOWN_JOB
    return [((VERSION_FRAME, header, content, []), "bad_message")]


@st.composite
def missing_job_header(draw):
    mtype = draw(st.sampled_from(["cancel", "job", "watch", "fetch", "delete"]))
    header = {"type": mtype, "id": draw(ids)}
    job = draw(st.sampled_from(["absent", None, ""]))
    if job != "absent":
        header["job"] = job
    return [((VERSION_FRAME, header, REQUEST_CONTENT[mtype], []), "bad_message")]


@st.composite
def unknown_jobs(draw):
    mtype = draw(st.sampled_from(["cancel", "job", "watch", "fetch", "delete", "ping", "jobs"]))
    job = draw(st.one_of(
        st.sampled_from([UNKNOWN_JOB, "../../etc/passwd", "/etc/passwd", "..", ".", "jobs",
                         "x" * 300, "00000000", "DEADBEEF" * 4, "\u0000", "a/../b"]),
        st.text(min_size=1, max_size=70)))
    header = {"type": mtype, "id": draw(ids), "job": job}
    return [((VERSION_FRAME, header, REQUEST_CONTENT[mtype], []), "unknown_job")]


# Arrays: a valid (spec, buffer) list plus one injected defect; the message is a ping, which takes
# no arrays, so a defect-free message would get an ok reply.
valid_arrays = st.lists(
    st.tuples(st.sampled_from(["|u1", "<i4", "<f4", "<f8", "|b1", "<u2"]),
              st.lists(st.integers(0, 4), max_size=3)),
    max_size=3)

BAD_DTYPES = ["|O", "<c16", "<c8", ">f4", ">i4", "<U4", "|S4", "|V8", "<M8[s]", "<m8[s]", "f4",
              "float32", "<f16", "", "<f4 ", "|u1\x00", "<i16", "int", "O"]
BAD_SHAPES = [[2**40, 2**40], [2**63], [2**64, 2**64], [10**30], [2**40, 2**40, 0],
              [0, 2**70], [2**62, 2**62, 0], [2**31, 2**31, 2**31, 0], [-1], [3, -2], [True],
              [1.0], [2.5], ["3"], [None], [[2]], [1] * 9, 3, "3", None, {"0": 3}]


@st.composite
def bad_arrays(draw):
    pairs = []
    for i, (dtype, shape) in enumerate(draw(valid_arrays)):
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        pairs.append(({"name": f"a{i}", "dtype": dtype, "shape": shape}, b"\x01" * nbytes))
    defect = draw(st.sampled_from(["truncated", "longer", "dtype", "shape", "more_specs",
                                   "more_frames", "spec_type", "name", "arrays_type"]))
    pos = draw(st.integers(0, len(pairs)))
    n = draw(st.integers(1, 64))
    if defect == "truncated":
        size = n * 4
        cut = draw(st.integers(1, size))
        pairs.insert(pos, ({"name": "t", "dtype": "<f4", "shape": [n]}, b"\x00" * (size - cut)))
    elif defect == "longer":
        extra = draw(st.integers(1, 4096))
        pairs.insert(pos, ({"name": "t", "dtype": "<f4", "shape": [n]}, b"\x00" * (4 * n + extra)))
    elif defect == "dtype":
        dtype = draw(st.one_of(st.sampled_from(BAD_DTYPES), NOT_STR))
        pairs.insert(pos, ({"name": "t", "dtype": dtype, "shape": [n]}, b"\x00" * 4 * n))
    elif defect == "shape":
        shape = draw(st.sampled_from(BAD_SHAPES))
        buf = draw(st.sampled_from([b"", b"\x00" * 16]))
        pairs.insert(pos, ({"name": "t", "dtype": draw(st.sampled_from(["<f4", "|u1"])),
                            "shape": shape}, buf))
    elif defect == "spec_type":
        pairs.insert(pos, (draw(NOT_DICT), b""))
    elif defect == "name":
        name = draw(st.one_of(st.just(""), NOT_STR, st.just("a0" if pairs else "")))
        spec = {"dtype": "|u1", "shape": [1]} | ({} if name is None else {"name": name})
        if name == "a0":
            pairs.insert(pos, ({"name": "a0", "dtype": "|u1", "shape": [1]}, b"\x00"))
        pairs.insert(pos, (spec, b"\x00"))
    specs, buffers = [p[0] for p in pairs], [p[1] for p in pairs]
    if defect == "more_specs":
        specs.append({"name": "extra", "dtype": "|u1", "shape": [n]})
    elif defect == "more_frames":
        buffers += [b"\x00" * n] * draw(st.integers(1, 3))
    content: dict = {"arrays": specs}
    if defect == "arrays_type":
        content["arrays"] = draw(st.one_of(
            NOT_LIST.filter(lambda v: v is not None),
            st.just([{"name": f"z{i}", "dtype": "|u1", "shape": [0]} for i in range(65)])))
        if isinstance(content["arrays"], list):
            buffers = [b""] * 65
    return [((VERSION_FRAME, {"type": "ping", "id": draw(ids)}, content, buffers), "bad_message")]


def _upload(mid, index, count, size, data=b"", upload=UP, dtype="|u1", shape=None) -> tuple:
    content = {"upload": upload, "index": index, "count": count, "size": size,
               "arrays": [{"name": "data", "dtype": dtype,
                           "shape": [len(data)] if shape is None else shape}]}
    return (VERSION_FRAME, {"type": "upload", "id": mid}, content, [data])


@st.composite
def bad_uploads(draw):
    mid = draw(ids)
    chunk = draw(st.binary(min_size=1, max_size=64))
    n = len(chunk)
    case = draw(st.sampled_from(["first_not_zero", "skip", "repeat", "oversize", "undersize",
                                 "changed", "bad_id", "count_range", "size_range", "dtype",
                                 "no_data"]))
    if case == "first_not_zero":
        return [(_upload(mid, draw(st.integers(1, 10**6)), 10**6, 10 * n, chunk), "bad_message")]
    if case in ("skip", "repeat"):
        later = draw(st.integers(2, 5)) if case == "skip" else 0
        return [(_upload(mid, 0, 6, 6 * n, chunk), "ok"),
                (_upload(mid + "b", later, 6, 6 * n, chunk), "bad_message")]
    if case == "oversize":
        return [(_upload(mid, 0, 1, n - 1, chunk), "bad_message")]
    if case == "undersize":  # the last chunk completes with fewer bytes than declared
        return [(_upload(mid, 0, 2, 2 * n + 1, chunk), "ok"),
                (_upload(mid + "b", 1, 2, 2 * n + 1, chunk), "bad_message")]
    if case == "changed":
        count, size = draw(st.sampled_from([(3, 4 * n), (4, 3 * n), (9, 9 * n)]))
        return [(_upload(mid, 0, 3, 3 * n, chunk), "ok"),
                (_upload(mid + "b", 1, count, size, chunk), "bad_message")]
    if case == "bad_id":
        upload = draw(st.one_of(st.sampled_from(["../../x", "/etc/passwd", "ABCDEF0123",
                                                 "abcdef01\n", "0123456", "g" * 16, "0" * 65, ""]),
                                st.text(max_size=20).filter(lambda s: not s.isalnum())))
        return [(_upload(mid, 0, 1, n, chunk, upload=upload), "bad_message")]
    if case == "count_range":
        count = draw(st.sampled_from([0, -1, 1_000_001, 2**63]))
        return [(_upload(mid, 0, count, n, chunk), "bad_message")]
    if case == "size_range":
        size = draw(st.sampled_from([-1, -(2**40), 64 * 1024**3 + 1, 2**80]))
        return [(_upload(mid, 0, 1, size, chunk), "bad_message")]
    if case == "dtype":
        dtype, shape = draw(st.sampled_from([("<u2", [n // 2]), ("|i1", [n]), ("|u1", [1, n]),
                                             ("|b1", [n])]))
        data = chunk[: 2 * (n // 2)] if dtype == "<u2" else chunk
        return [(_upload(mid, 0, 1, len(data), data, dtype=dtype, shape=shape), "bad_message")]
    frames = _upload(mid, 0, 1, n, chunk)
    return [((*frames[:2], {k: v for k, v in frames[2].items() if k != "arrays"}, []),
             "bad_message")]


TRAVERSAL_NAMES = ["../x", "/etc/passwd", "..", ".", "./x", "a/b", "../../../../tmp/evil",
                   "..\\x", "C:\\x", "~/.ssh/id_rsa", ".hidden", "", " x", "x\x00y", "x\ny",
                   "a" * 201, "x.bin\n", "inputs/../../job.json", "\u202e", "%2e%2e%2fx"]


@st.composite
def bad_submits(draw):
    mid = draw(ids)
    data = b"payload"
    arr = {"name": "in0", "dtype": "|u1", "shape": [len(data)]}
    case = draw(st.sampled_from(["traversal", "traversal_upload", "item_type", "no_source",
                                 "missing_array", "unknown_kind", "bad_params", "two_inputs"]))
    name = draw(st.one_of(st.sampled_from(TRAVERSAL_NAMES),
                          st.text(max_size=12).map(lambda s: "../" + s),
                          st.text(max_size=12).map(lambda s: s + "/x")))
    kind, params, inputs, code = "debug.echo", {}, [{"name": name, "array": "in0"}], "bad_input"
    if case == "traversal_upload":
        inputs = [{"name": name, "upload": draw(st.sampled_from(["../../etc", UP]))}]
    elif case == "item_type":
        inputs, code = [draw(st.one_of(NOT_DICT, st.just({"name": 5, "array": "in0"})))], ANY
    elif case == "no_source":
        inputs, code = [{"name": "ok.bin"}], "bad_message"
    elif case == "missing_array":
        inputs, code = [{"name": "ok.bin", "array": "nope"}], "bad_message"
    elif case == "unknown_kind":
        kind, inputs, code = draw(st.text(max_size=20).filter(lambda k: k not in KINDS)), [], \
            "unknown_kind"
    elif case == "bad_params":
        kind, inputs, code = "debug.sleep", [], "bad_param"
        params = draw(st.sampled_from([
            {"seconds": -1}, {"seconds": 1e9}, {"seconds": "soon"}, {"seconds": True},
            {"steps": 0}, {"steps": 2.5}, {"steps": 10**30}, {"frames": None}, {"speed": 1},
            {"ignore_cancel": "perhaps"}, {"vertices": 2}, {"seconds": [1]}]))
    elif case == "two_inputs":
        inputs.append({"name": "ok.bin", "array": "in0"})
    content = {"kind": kind, "params": params, "inputs": inputs, "arrays": [arr]}
    return [((VERSION_FRAME, {"type": "submit", "id": mid}, content, [data]), code)]


@st.composite
def bad_fetches(draw, known: list[str]):
    """``fetch`` of a finished job from a chunk out of range."""
    start = draw(st.one_of(st.integers(max_value=-1), st.integers(min_value=10**6)))
    header = {"type": "fetch", "id": draw(ids), "job": draw(st.sampled_from(known))}
    return [((VERSION_FRAME, header, {"from_chunk": start}, []), "bad_message")]


def malformed(known_jobs: list[str]):
    """A plan: one to four malformed cases, sent in a row on one socket."""
    one = st.one_of(
        wrong_frame_counts(), bad_versions(), bad_json_frames(), unknown_types(),
        event_types_as_requests(), wrong_header_fields(), wrong_content_fields(),
        missing_job_header(), unknown_jobs(), bad_arrays(), bad_uploads(), bad_submits(),
        bad_fetches(known_jobs))
    return st.lists(one, min_size=1, max_size=4)


def _ping_with_array(spec: dict) -> tuple:
    return (VERSION_FRAME, {"type": "ping", "id": "fzx"}, {"arrays": [spec]}, [b""])


#: Messages that once killed the server thread or slipped through (always tried first).
REGRESSIONS = [
    [((VERSION_FRAME, b"[" * 5000 + b"]" * 5000, {}, []), "bad_message")],
    [((VERSION_FRAME, {"type": "ping", "id": "fzx"}, b"[" * 5000 + b"]" * 5000, []),
      "bad_message")],
    [(_ping_with_array({"name": "a", "dtype": "<f4", "shape": [2**40, 2**40, 0]}),
      "bad_message")],
    [(_ping_with_array({"name": "a", "dtype": ["<f4"], "shape": [0]}), "bad_message")],
    [((VERSION_FRAME, {"type": [], "id": "fzx"}, {}, []), "bad_message")],
    [((VERSION_FRAME, {"type": "submit", "id": "fzx"},
       {"kind": "debug.echo", "params": {}, "inputs": [{"name": "x.bin\n", "array": "a"}],
        "arrays": [{"name": "a", "dtype": "|u1", "shape": [1]}]}, [b"x"]), "bad_input")],
    [(_upload("fzx", 0, 1, 1, b"x", upload="abcdef01\n"), "bad_message")],
]


def _examples(plans):
    def decorate(fn):
        for plan in reversed(plans):
            fn = example(plan=[plan])(fn)
        return fn
    return decorate


def to_frames(spec, upload_id: str) -> list[bytes]:
    if isinstance(spec, list):  # already raw frames
        return spec
    version, header, content, buffers = spec
    return [version, _js(_fill(header, upload_id)), _js(_fill(content, upload_id)), *buffers]


# ---- valid traffic -------------------------------------------------------------------------------
def run_job(address: str, out: Path, server: EmbeddedServer, n: int) -> tuple[str, str]:
    """Submit a small ``debug.sleep`` through the real client, wait, fetch and compare the
    fetched sequence with the server's own result file. Returns (job id, final state)."""
    frames, vertices = 1 + n % 5, 3 + 7 * (n % 4)
    with Client(address, timeout=CEILING) as c:
        job = c.submit("debug.sleep", {"seconds": 0.01 * (n % 3), "steps": 2, "frames": frames,
                                       "vertices": vertices})
        info = c.wait(job, timeout=CEILING)
        if info.state != "done":
            return job, f"{info.state}: {info.error}"
        got = load_npz(c.fetch(job, out / job) / "sequence.npz")
    served = load_npz(server.server.store.result_dir(job) / "sequence.npz")
    assert got.vertices.shape == (frames, vertices, 3)
    np.testing.assert_array_equal(got.vertices, served.vertices)
    np.testing.assert_array_equal(got.faces, served.faces)
    np.testing.assert_array_equal(got.times, served.times)
    return job, info.state


class Background(threading.Thread):
    """Runs valid jobs one after another until stopped; keeps every outcome and error."""

    def __init__(self, address: str, out: Path, server: EmbeddedServer):
        super().__init__(daemon=True, name="fuzz-valid-jobs")
        self.args_ = (address, out, server)
        self.halt = threading.Event()
        self.outcomes: list[tuple[str, str]] = []
        self.errors: list[BaseException] = []

    def run(self) -> None:
        n = 100
        while not self.halt.is_set():
            try:
                self.outcomes.append(run_job(*self.args_, n))
            except BaseException as err:  # noqa: BLE001 - reported by the test
                self.errors.append(err)
                return
            n += 1


class Restartable:
    """The fuzzed server; restarted (on its data folder) when an example kills its thread, so
    that Hypothesis can shrink such an example against a live server. Restarts fail the test."""

    def __init__(self, data: Path):
        self.data = data
        self.config = {"kinds": KINDS, "heartbeat_s": 0.5}
        if EXECUTOR == "ray":
            import ray

            if not ray.is_initialized():
                ray.init(num_cpus=2, include_dashboard=False, address="local",
                         _node_ip_address="127.0.0.1", log_to_driver=False,
                         configure_logging=False)
            self.config.update(executor="ray", workers=2)
        self.srv = EmbeddedServer(data, **self.config)
        self.restarts = 0

    def alive(self) -> bool:
        return self.srv._thread.is_alive()

    def restart(self) -> None:
        self.srv.stop(timeout=CEILING)
        self.srv = EmbeddedServer(self.data, **self.config)
        self.restarts += 1


@pytest.fixture
def box(tmp_path):
    box = Restartable(tmp_path / "data")
    yield box
    box.srv.stop()


@pytest.fixture
def fuzz_server(tmp_path):
    srv = EmbeddedServer(tmp_path / "data", kinds=KINDS)
    yield srv
    srv.stop()


# ---- tests ---------------------------------------------------------------------------------------
def test_malformed_messages_get_errors_and_jobs_run_on(box, tmp_path):
    srv = box.srv
    out = tmp_path / "fetched"
    before = [run_job(srv.address, out, srv, n) for n in range(2)]
    assert [state for _, state in before] == ["done", "done"]
    known = [job for job, _ in before]

    background = Background(srv.address, out, srv)
    background.start()
    raws = [Raw(srv.address)]

    # Example count, randomness and database come from the profile (tests/server/conftest.py):
    # derandomised in `make test`, fresh and many under ANIM4D_FUZZ.
    @settings(phases=(Phase.explicit, Phase.generate, Phase.shrink),
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(plan=malformed(known))
    @_examples(REGRESSIONS)
    def fuzz(plan):
        if not box.alive():
            box.restart()
            raws.append(Raw(box.srv.address))
        raw = raws[-1]
        for case in plan:
            upload_id = uuid.uuid4().hex  # each case's uploads are its own
            for spec, expect in case:
                sent[0] += expect != "ok"
                frames = to_frames(spec, upload_id)
                reply = raw.exchange(frames, alive=box.alive)
                assert box.alive(), f"the server thread died on {frames!r:.500}"
                if expect == "ok":
                    assert reply is not None and decode(reply).status == "ok", reply
                else:
                    check_error_reply(frames, reply, expect)
        assert not raw.sock.poll(0), "the server sent more than one reply to a message"

    sent = [0]  # malformed messages sent
    try:
        fuzz()
        while sent[0] < MIN_MESSAGES:  # fresh examples each run under the fuzz profile
            fuzz()
        print(f"fuzz: {sent[0]} malformed messages against a gateway ({EXECUTOR} executor), "
              f"{len(background.outcomes)} valid jobs run meanwhile")
    finally:
        for raw in raws:
            raw.close()
        background.halt.set()
        background.join(CEILING)
    assert box.restarts == 0
    assert not background.is_alive(), "the background client got stuck"
    assert not background.errors, background.errors
    during = background.outcomes
    assert during and all(state == "done" for _, state in during), \
        [outcome for outcome in during if outcome[1] != "done"]

    after = [run_job(srv.address, out, srv, n) for n in range(2, 4)]
    assert [state for _, state in after] == ["done", "done"]
    # Nothing an input name or upload id pointed at was created, and no echo job survived.
    root = srv.server.store.root
    for name in ("x", "evil", "etc", "job.json"):
        assert not (root.parent / name).exists() and not (root / name).exists()
    assert all(rec.kind == "debug.sleep" for rec in srv.server.engine.records.values())
    assert {p.name for p in srv.server.store.jobs_dir.iterdir()} == set(srv.server.engine.records)


def test_zero_frames_cannot_be_sent_and_one_empty_frame_gets_an_error(fuzz_server):
    raw = Raw(fuzz_server.address)
    try:
        with pytest.raises(IndexError):  # pyzmq: a multipart message has at least one part
            raw.sock.send_multipart([])
        check_error_reply([b""], raw.exchange([b""]), "bad_message")
    finally:
        raw.close()


@pytest.mark.parametrize("frames", [
    pytest.param([VERSION_FRAME, b"[" * 100_000 + b"]" * 100_000, b"{}"], id="deep-json-header"),
    pytest.param([VERSION_FRAME, _js({"type": "ping", "id": "d"}), b"[" * 100_000 + b"]" * 100_000],
                 id="deep-json-content"),
    pytest.param([VERSION_FRAME, _js({"type": "ping", "id": "z"}),
                  _js({"arrays": [{"name": "a", "dtype": "<f4", "shape": [2**40, 2**40, 0]}]}),
                  b""], id="zero-size-array-with-huge-dims"),
    pytest.param([VERSION_FRAME, _js({"type": ["ping"], "id": "t"}), b"{}"], id="list-type"),
    pytest.param([VERSION_FRAME, _js({"type": "ping", "id": "u"}),
                  _js({"arrays": [{"name": "a", "dtype": {}, "shape": [0]}]}), b""],
                 id="dict-dtype"),
    pytest.param([VERSION_FRAME, _js({"type": "ping", "id": "big", "pad": "x" * (4 << 20)}),
                  b"{}"], id="header-over-4MiB"),
])
def test_regressions_that_used_to_kill_the_server(fuzz_server, frames):
    raw = Raw(fuzz_server.address)
    try:
        check_error_reply(frames, raw.exchange(frames, alive=fuzz_server._thread.is_alive),
                          "bad_message")
        assert fuzz_server._thread.is_alive()
        ok = raw.exchange([VERSION_FRAME, _js({"type": "ping", "id": "after"}), b"{}"])
        assert ok is not None and decode(ok).status == "ok"
    finally:
        raw.close()


def test_oversize_frame_disconnects_the_peer_and_the_server_serves_on(tmp_path):
    limit = 1 << 20
    with EmbeddedServer(tmp_path / "data", kinds=KINDS, max_message_bytes=limit) as srv, \
            Client(srv.address, timeout=CEILING) as client:
        job = client.submit("debug.sleep", {"seconds": 0.3, "steps": 3, "frames": 2})
        raw = Raw(srv.address)
        monitor = raw.sock.get_monitor_socket(zmq.EVENT_DISCONNECTED | zmq.EVENT_CONNECTED)
        try:
            assert raw.exchange([VERSION_FRAME, _js({"type": "ping", "id": "p0"}), b"{}"])
            # Between max_message_bytes and MAXMSGSIZE (+1 MiB of headroom): decoded, refused.
            size = limit + (limit >> 1)
            frames = [VERSION_FRAME, _js({"type": "ping", "id": "p1"}),
                      _js({"arrays": [{"name": "d", "dtype": "|u1", "shape": [size]}]}),
                      b"\x00" * size]
            check_error_reply(frames, raw.exchange(frames), "bad_message")
            # Over MAXMSGSIZE: libzmq drops the connection; the message never reaches the server.
            size = 3 * limit
            frames[1:] = [_js({"type": "ping", "id": "p2"}),
                          _js({"arrays": [{"name": "d", "dtype": "|u1", "shape": [size]}]}),
                          b"\x00" * size]
            raw.sock.send_multipart(frames, copy=True)
            events, end = [], time.monotonic() + CEILING
            while zmq.EVENT_DISCONNECTED not in events and time.monotonic() < end:
                if monitor.poll(100):
                    events.append(recv_monitor_message(monitor)["event"])
            assert zmq.EVENT_DISCONNECTED in events, events
            assert not raw.sock.poll(0), "the oversize message got a reply"
            assert srv._thread.is_alive()
            # Other clients are unaffected; the dropped socket reconnects and is served again.
            assert client.ping() >= 0
            assert client.wait(job, timeout=CEILING).state == "done"
            assert client.fetch(job, tmp_path / "r").joinpath("sequence.npz").is_file()
            reply = raw.exchange([VERSION_FRAME, _js({"type": "ping", "id": "p3"}), b"{}"])
            assert reply is not None and decode(reply).reply_to == "p3"
        finally:
            raw.sock.disable_monitor()
            monitor.close(linger=0)
            raw.close()


def test_reply_shaped_messages_are_refused_as_requests(fuzz_server):
    raw = Raw(fuzz_server.address)
    try:
        frames = [VERSION_FRAME,
                  _js({"type": "cancel", "id": "r1", "status": "error",
                       "error": {"code": "x", "message": "y"}}), b"{}"]
        check_error_reply(frames, raw.exchange(frames), "bad_message")
    finally:
        raw.close()


def _stall(srv: EmbeddedServer, backlog: int = 3000) -> Raw:
    """A peer that sends many requests and reads none of the replies, until ``backlog`` replies
    to it wait in the server's outbox (its send queue to the peer and the socket buffers are full).

    ``hello`` replies carry every kind's schema (a few KB each), so a few hundred fill the buffers;
    the peer's own send queue (ZeroMQ's default high-water mark, 1000) bounds how many requests are
    in flight, so the backlog stays far below ``MAX_OUTBOX`` (10 000, where the peer is dropped).
    """
    stalled = Raw(srv.address, RCVHWM=1, RCVBUF=4096)
    hello = [VERSION_FRAME, _js({"type": "hello", "id": "s"}),
             _js({"client": "stall", "protocol": "1.0"})]
    end = time.monotonic() + CEILING
    while srv.server.outbox_size < backlog:
        if time.monotonic() > end:
            stalled.close()
            raise AssertionError(f"could not back the server up ({srv.server.outbox_size} "
                                 f"replies waiting after {CEILING} s)")
        for _ in range(100):
            stalled.sock.send_multipart(hello)
        time.sleep(0.05)
    return stalled


def test_a_stalled_peer_that_leaves_costs_others_nothing(fuzz_server):
    """Regression: when a stalled peer disconnected, dropping its queued replies also dropped the
    next message in the outbox, which could be another client's reply."""
    stalled = _stall(fuzz_server)
    handled = threading.Event()
    on_ping = fuzz_server.server._on_ping

    def ping_then_signal(identity, msg):  # the stalled peer sends only hellos: this is "o"
        on_ping(identity, msg)
        handled.set()

    fuzz_server.server._on_ping = ping_then_signal
    other = Raw(fuzz_server.address)
    try:
        other.sock.send_multipart([VERSION_FRAME, _js({"type": "ping", "id": "o"}), b"{}"])
        assert handled.wait(CEILING), "the server never handled the other client's ping"
        stalled.close()  # leaves after the server answered (or queued an answer to) the other
        assert other.sock.poll(CEILING * 1000), "the other client's reply was lost"
        assert decode(other.sock.recv_multipart()).reply_to == "o"
    finally:
        other.close()


def test_a_stalled_peer_does_not_block_other_clients(fuzz_server):
    stalled = _stall(fuzz_server)
    other = Raw(fuzz_server.address)
    try:
        reply = other.exchange([VERSION_FRAME, _js({"type": "ping", "id": "o"}), b"{}"])
        assert reply is not None, "no reply while another peer is stalled"
        assert fuzz_server.server.outbox_size >= 3000  # the stalled peer was still stalled
    finally:
        other.close()
        stalled.close()


def test_many_frames_under_the_frame_cap_are_refused_as_one_oversize_message(tmp_path):
    """libzmq's MAXMSGSIZE caps each frame; the server also caps the whole message."""
    limit = 1 << 20
    with EmbeddedServer(tmp_path / "data", kinds=KINDS, max_message_bytes=limit) as srv:
        raw = Raw(srv.address)
        try:
            part = b"\0" * (limit - 1000)
            frames = [VERSION_FRAME, _js({"type": "ping", "id": "big"}), b"{}", part, part, part]
            reply = raw.exchange(frames)
            check_error_reply(frames, reply, "bad_message")
            assert "over the server's" in decode(reply).error["message"]
            ok = raw.exchange([VERSION_FRAME, _js({"type": "ping", "id": "p"}), b"{}"])
            assert ok is not None and decode(ok).status == "ok"
        finally:
            raw.close()
