"""Unit tests of the wire format: round trips and every validation rule."""

from __future__ import annotations

import json

import numpy as np
import pytest

from shared.errors import ProtocolError, VersionError
from shared.protocol import VERSION_FRAME, Message, decode, encode, error_message


def frames_of(header: dict, content: dict, *buffers: bytes) -> list[bytes]:
    return [VERSION_FRAME, json.dumps(header).encode(), json.dumps(content).encode(), *buffers]


def test_round_trip_with_arrays():
    arrays = {"v": np.arange(24, dtype=np.float32).reshape(2, 4, 3),
              "f": np.array([[0, 1, 2]], dtype=np.int32), "empty": np.zeros((0, 3), np.float64),
              "b": np.array([True, False])}
    msg = Message("result", {"chunk": 1, "count": 2, "part": "frames"}, arrays, job="ab" * 8,
                  reply_to="r1", status="ok")
    out = decode([bytes(f) for f in encode(msg)])
    assert (out.type, out.id, out.reply_to, out.job, out.status) == (
        "result", msg.id, "r1", "ab" * 8, "ok")
    assert list(out.arrays) == list(arrays)
    for k, a in arrays.items():
        np.testing.assert_array_equal(out.arrays[k], a)
        assert out.arrays[k].dtype == a.dtype


def test_big_endian_and_noncontiguous_arrays_are_sent_little_endian():
    a = np.arange(12, dtype=">f4").reshape(3, 4)[:, ::2]
    out = decode(encode(Message("result", {"chunk": 0, "count": 1, "part": "header"},
                                {"a": a}, status="ok")))
    assert out.arrays["a"].dtype == np.dtype("<f4")
    np.testing.assert_array_equal(out.arrays["a"], a)


def test_unknown_fields_are_tolerated():
    frames = frames_of({"type": "ping", "id": "x1", "future": 1}, {"whatever": [1, 2]})
    assert decode(frames).type == "ping"


def test_error_reply_round_trip():
    out = decode(encode(error_message("bad_param", "seed must be an int", reply_to="q")))
    assert not out.ok and out.error == {"code": "bad_param", "message": "seed must be an int"}


@pytest.mark.parametrize("version", [b"A4D/2.0", b"A4D/0.9"])
def test_other_major_version_is_refused_with_a_clear_error(version):
    frames = [version, *frames_of({"type": "ping", "id": "x"}, {})[1:]]
    with pytest.raises(VersionError, match="(?i)update the add-on and the backend"):
        decode(frames)


def test_newer_minor_version_is_accepted():
    frames = [b"A4D/1.7", *frames_of({"type": "ping", "id": "x"}, {})[1:]]
    assert decode(frames).version == (1, 7)


@pytest.mark.parametrize("frames, match", [
    ([], "at least 3 frames"),
    ([VERSION_FRAME, b"{}"], "at least 3 frames"),
    ([b"HTTP/1.1", b"{}", b"{}"], "not an Anim4D version frame"),
    ([VERSION_FRAME, b"\xff\xfe", b"{}"], "not UTF-8 JSON"),
    ([VERSION_FRAME, b"[1]", b"{}"], "must be a JSON object"),
    (frames_of({"type": "launch", "id": "x"}, {}), "unknown message type"),
    (frames_of({"type": "ping"}, {}), "'id'"),
    (frames_of({"type": "ping", "id": "x", "status": "maybe"}, {}), "status"),
    (frames_of({"type": "ping", "id": "x", "status": "error"}, {}), "needs an 'error'"),
    (frames_of({"type": "cancel", "id": "x"}, {}), "must name a job"),
    (frames_of({"type": "submit", "id": "x"}, {"kind": "a", "params": {}}), "'inputs'"),
    (frames_of({"type": "submit", "id": "x"}, {"kind": 3, "params": {}, "inputs": []}),
     "'kind' must be str"),
    (frames_of({"type": "fetch", "id": "x", "job": "j"}, {"from_chunk": True}),
     "'from_chunk' must be int"),
])
def test_malformed_messages_are_refused(frames, match):
    with pytest.raises(ProtocolError, match=match):
        decode(frames)


def _with_array(spec: dict, *buffers: bytes) -> list[bytes]:
    return frames_of({"type": "upload", "id": "x"},
                     {"upload": "0" * 16, "index": 0, "count": 1, "size": 4, "arrays": [spec]},
                     *buffers)


@pytest.mark.parametrize("spec, buffers, match", [
    ({"name": "d", "dtype": "|u1", "shape": [4]}, (), "describes 1 arrays but"),
    ({"name": "d", "dtype": "|u1", "shape": [4]}, (b"abc",), "needs 4 bytes, buffer frame has 3"),
    ({"name": "d", "dtype": "|u1", "shape": [4]}, (b"abcde",), "needs 4 bytes"),
    ({"name": "d", "dtype": "|O", "shape": [1]}, (b"x" * 8,), "dtype '|O' not accepted"),
    ({"name": "d", "dtype": ">f4", "shape": [1]}, (b"x" * 4,), "not accepted"),
    ({"name": "d", "dtype": "<f4", "shape": [2**40, 2**40]}, (b"",), "over the"),
    ({"name": "d", "dtype": "<f4", "shape": [-1]}, (b"",), "non-negative"),
    ({"name": "d", "dtype": "<f4", "shape": [True]}, (b"",), "non-negative"),
    ({"name": "d", "dtype": "<f4", "shape": 4}, (b"",), "shape must be a list"),
    ({"name": "", "dtype": "<f4", "shape": [1]}, (b"xxxx",), "'name'"),
])
def test_bad_arrays_are_refused(spec, buffers, match):
    with pytest.raises(ProtocolError, match=match):
        decode(_with_array(spec, *buffers))


def test_arrays_are_zero_copy_views():
    payload = bytearray(np.arange(4, dtype=np.float32).tobytes())
    frames = [VERSION_FRAME, *[bytes(f) for f in encode(Message("ping"))[1:2]],
              json.dumps({"arrays": [{"name": "a", "dtype": "<f4", "shape": [4]}]}).encode(),
              payload]
    out = decode(frames)
    payload[0:4] = np.float32(9).tobytes()
    assert out.arrays["a"][0] == 9.0
