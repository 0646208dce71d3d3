"""The synchronous Anim4D client: one DEALER socket, requests linked to replies by id.

Used by the CLI and, on its own thread, by the Blender add-on. No bpy here. Connection problems
are diagnosed from the socket's monitor events and reported with the address: refused (nothing
listening), timed out (connected, no answer), auth rejected (CURVE handshake failed), wrong
protocol version. Idempotent requests are retried once on a fresh socket (the "Lazy Pirate"
pattern); job waits treat any message (progress, heartbeat) as a sign of life.
"""

from __future__ import annotations

import os
import struct
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import zmq

from ._shared import errors, params, protocol, stream
from .client_types import (
    AuthRejected,
    ConnectionFailed,
    CurveConfig,
    HelloInfo,
    JobInfo,
    PreviewInfo,
    ProgressInfo,
    ServerError,
    VersionMismatch,
    WaitTimeout,
    check_address,
)

ProgressCallback = Callable[[ProgressInfo], None]
_MONITOR_EVENTS = (zmq.EVENT_CONNECTED | zmq.EVENT_CONNECT_RETRIED | zmq.EVENT_DISCONNECTED
                   | zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                   | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_SUCCEEDED)
REFUSED_AFTER_S = 1.0
# While the server is away the socket retries every 0.1 s, backing off to one try per
# RECONNECT_IVL_MAX_MS: an idle client then queues at most a dozen monitor events a minute.
RECONNECT_IVL_MS = 100
RECONNECT_IVL_MAX_MS = 5000


def _unbounded_monitor(ctx: zmq.Context, sock: zmq.Socket) -> zmq.Socket:
    """A PAIR socket receiving ``sock``'s monitor events, with no high-water mark.

    libzmq's I/O thread sends monitor events with a *blocking* send. Through a bounded pipe
    (``get_monitor_socket``'s default: 1000 + 1000 messages) a client that sits idle while the
    server is down fills it with connect retries, and then the context's I/O thread blocks
    forever: every socket of the context (all clients of the process) stops connecting. The
    receive HWM is set to 0 before connecting, so the inproc pipe is unbounded (and, with the
    reconnect back-off, grows by at most a few hundred bytes a minute until it is read).
    """
    address = f"inproc://anim4d-monitor-{os.getpid()}-{id(sock):x}-{os.urandom(4).hex()}"
    sock.monitor(address, _MONITOR_EVENTS)
    monitor = ctx.socket(zmq.PAIR)
    monitor.setsockopt(zmq.LINGER, 0)
    monitor.setsockopt(zmq.RCVHWM, 0)
    monitor.connect(address)
    return monitor


class Client:
    def __init__(self, address: str, timeout: float = 10.0, curve: CurveConfig | None = None,
                 identity: bytes | None = None, context: zmq.Context | None = None,
                 client_name: str = "anim4d"):
        self.address = check_address(address)
        self.timeout = float(timeout)
        self.curve = curve
        self.identity = identity
        self.client_name = client_name
        self.ctx = context or zmq.Context.instance()
        self._sock: zmq.Socket | None = None
        self._monitor: zmq.Socket | None = None
        self._backlog: dict[str, deque] = defaultdict(deque)
        self._watching: dict[str, str] = {}
        self._last_heard = 0.0  # when anything (a heartbeat too) last came from the server
        self._connect()

    # ---- socket lifecycle ----------------------------------------------------------------
    def _connect(self) -> None:
        sock = self.ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVHWM, 64)
        sock.setsockopt(zmq.MAXMSGSIZE, 1 << 30)
        sock.setsockopt(zmq.ROUTING_ID, self.identity or os.urandom(12))
        if self.curve is not None:
            sock.curve_serverkey = self.curve.server_public
            sock.curve_publickey = self.curve.client_public
            sock.curve_secretkey = self.curve.client_secret
        sock.setsockopt(zmq.RECONNECT_IVL, RECONNECT_IVL_MS)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, RECONNECT_IVL_MAX_MS)
        self._monitor = _unbounded_monitor(self.ctx, sock)
        self._events: dict[str, float] = {}
        try:
            sock.connect(self.address)
        except zmq.ZMQError as err:
            sock.close(linger=0)
            raise ConnectionFailed(f"cannot connect to {self.address}: {err.strerror}",
                                   "bad_address") from None
        self._sock = sock
        self._backlog.clear()
        self._watching.clear()

    def _reconnect(self) -> None:
        self._close_socket()
        self._connect()

    def _close_socket(self) -> None:
        if self._sock is not None:
            try:
                self._sock.disable_monitor()
            except zmq.ZMQError:
                pass
            self._sock.close(linger=0)
            self._sock = None
        if self._monitor is not None:
            self._monitor.close(linger=0)
            self._monitor = None

    def close(self) -> None:
        self._close_socket()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- diagnostics ---------------------------------------------------------------------
    def _read_monitor(self) -> None:
        while self._monitor is not None and self._monitor.poll(0):
            try:
                frames = self._monitor.recv_multipart(zmq.NOBLOCK)
            except zmq.ZMQError:
                return
            if not frames or len(frames[0]) != 6:
                continue
            # libzmq's monitor message: a 16-bit event id and a 32-bit value, then the endpoint
            # (parsed here: zmq.utils.monitor would import asyncio, 0.2 s of CLI start-up).
            event = struct.unpack("=hi", frames[0])[0]
            name = {zmq.EVENT_CONNECTED: "connected", zmq.EVENT_CONNECT_RETRIED: "retried",
                    zmq.EVENT_DISCONNECTED: "disconnected",
                    zmq.EVENT_HANDSHAKE_SUCCEEDED: "handshake"}.get(event, "auth_failed")
            self._events[name] = time.monotonic()

    def _failure(self, waited: float) -> errors.Anim4DError:
        self._read_monitor()
        ev = self._events
        if "auth_failed" in ev:
            return AuthRejected(f"{self.address}: the server rejected this client's CURVE keys "
                                "(is this client's public key in the server's clients/ folder, "
                                "and is the server key right?)")
        if "connected" not in ev:
            return ConnectionFailed(f"{self.address}: connection refused: nothing is listening "
                                    "there (is the backend running? start it with "
                                    "`anim4d serve`)", "refused")
        if self.curve is None and "handshake" not in ev and "disconnected" in ev:
            return AuthRejected(f"{self.address}: the server closed the connection during the "
                                "handshake (it probably requires CURVE keys)")
        return ConnectionFailed(f"{self.address}: timed out: connected, but no answer within "
                                f"{waited:.1f} s", "timeout")

    def _refused_early(self, started: float) -> bool:
        """True once waiting longer cannot help: nothing listens, or (with CURVE keys) the
        server rejected them (a handshake failure with keys is final)."""
        self._read_monitor()
        if self.curve is not None and "auth_failed" in self._events:
            return True
        return ("retried" in self._events and "connected" not in self._events
                and time.monotonic() - started > min(REFUSED_AFTER_S, self.timeout))

    # ---- messages ------------------------------------------------------------------------
    def _send(self, msg: protocol.Message) -> None:
        try:
            self._sock.send_multipart(protocol.encode(msg), copy=False, flags=zmq.NOBLOCK)
        except zmq.Again:
            # No pipe takes it: libzmq ended the connection for good (a failed handshake, such
            # as rejected CURVE keys, does that); a blocking send would wait forever.
            failure = self._failure(0.0)
            if isinstance(failure, AuthRejected):
                raise failure from None
            raise ConnectionFailed(f"{self.address}: cannot send: no connection to the server "
                                   "takes messages", "timeout") from None
        except zmq.ZMQError as err:
            raise ConnectionFailed(f"{self.address}: send failed ({err.strerror})",
                                   "timeout") from None

    def _next(self, request_id: str, timeout: float) -> protocol.Message:
        """The next message linked to ``request_id`` (others are kept for their owners)."""
        if self._backlog.get(request_id):
            return self._backlog[request_id].popleft()
        started = deadline = time.monotonic()
        deadline += timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._refused_early(started):
                raise self._failure(time.monotonic() - started)
            if not self._sock.poll(int(min(remaining, 0.25) * 1000) + 1, zmq.POLLIN):
                continue
            frames = self._sock.recv_multipart(copy=False)
            self._last_heard = time.monotonic()
            try:
                msg = protocol.decode(frames, max_array_bytes=1 << 30)
            except errors.VersionError as err:
                raise VersionMismatch(f"{self.address}: {err}") from None
            except errors.ProtocolError as err:
                raise ServerError(f"{self.address}: malformed reply ({err})",
                                  "bad_reply") from None
            if msg.reply_to == request_id:
                return msg
            if msg.type == "heartbeat":
                deadline = time.monotonic() + timeout  # the server is alive
                continue
            if msg.reply_to is not None:
                backlog = self._backlog[msg.reply_to]
                backlog.append(msg)
                if len(backlog) > 1000:  # nobody is reading these: keep the newest
                    backlog.popleft()

    @staticmethod
    def _raise_error(msg: protocol.Message) -> None:
        if msg.status == "error":
            code, text = msg.error["code"], msg.error["message"]
            cls = VersionMismatch if code == "version_mismatch" else ServerError
            raise cls(text, code)

    def request(self, type_: str, content: dict | None = None, job: str | None = None,
                arrays: dict[str, np.ndarray] | None = None, retry: bool = False,
                timeout: float | None = None) -> protocol.Message:
        """Send one request and return its ok reply; raise on error replies and timeouts."""
        attempts = 2 if retry else 1
        for attempt in range(attempts):
            msg = protocol.Message(type_, content or {}, arrays or {}, job=job)
            self._send(msg)
            try:
                reply = self._next(msg.id, self.timeout if timeout is None else timeout)
            except ConnectionFailed as err:
                if attempt + 1 < attempts and err.code == "timeout":
                    self._reconnect()
                    continue
                raise
            self._raise_error(reply)
            return reply
        raise AssertionError("unreachable")

    # ---- API -----------------------------------------------------------------------------
    def hello(self) -> HelloInfo:
        reply = self.request("hello", {"client": self.client_name,
                                       "protocol": protocol.PROTOCOL_VERSION}, retry=True)
        c = reply.content
        try:
            return HelloInfo(
                server_version=str(c["server_version"]), protocol_version=str(c["protocol"]),
                kinds=[params.KindSpec.from_json(k) for k in c["kinds"]],
                limits=dict(c.get("limits") or {}), workers=int(c.get("workers", 1)),
                curve=bool(c.get("curve", False)),
                models=[dict(m) for m in c.get("models") or []],
                pretrained=[dict(m) for m in c.get("pretrained") or []])
        except (KeyError, TypeError, ValueError) as err:
            raise ServerError(f"{self.address}: malformed hello reply ({err})",
                              "bad_reply") from None

    def ping(self) -> float:
        t0 = time.perf_counter()
        self.request("ping", retry=True)
        return time.perf_counter() - t0

    def jobs(self) -> list[JobInfo]:
        return [JobInfo.from_json(j) for j in self.request("jobs", retry=True).content["jobs"]]

    def job(self, job_id: str) -> JobInfo:
        return JobInfo.from_json(self.request("job", job=job_id, retry=True).content["job"])

    def cancel(self, job_id: str) -> JobInfo:
        return JobInfo.from_json(self.request("cancel", job=job_id).content["job"])

    def delete(self, job_id: str) -> None:
        self.request("delete", job=job_id)

    def submit(self, kind: str, params_: dict | None = None, inputs=(),
               on_progress: ProgressCallback | None = None, priority: int | None = None) -> str:
        """Upload ``inputs``, submit the job, return its id. Progress events that follow are
        kept for :meth:`wait`. ``priority``: -10..10, higher starts first (default 0).

        ``inputs``: paths (for the kind's first input), ``(input_name, path)`` pairs, or a
        mapping ``{input_name: [paths]}`` for kinds with several inputs (``video.to4d``'s
        ``masks``, ``views``, ``cameras``)."""
        specs, arrays = [], {}
        inline_left = protocol.INLINE_INPUT_LIMIT  # inline bytes of the whole message
        for i, (slot, path) in enumerate(_slotted(inputs)):
            if not path.is_file():
                raise errors.ParamError(f"input file {path} does not exist", "bad_input")
            size = path.stat().st_size
            # inline while the message has room (bytes and array slots), else upload
            if size <= inline_left and len(arrays) < protocol.MAX_ARRAYS:
                inline_left -= size
                arrays[f"input{i}"] = np.fromfile(path, dtype=np.uint8)
                spec = {"name": path.name, "array": f"input{i}"}
            else:
                spec = {"name": path.name, "upload": self._upload(path, on_progress)}
            if slot is not None:
                spec["input"] = slot
            specs.append(spec)
        content = {"kind": kind, "params": dict(params_ or {}), "inputs": specs}
        if priority is not None:
            content["priority"] = priority
        reply = self.request("submit", content, arrays=arrays)
        job_id = reply.job or reply.content["job"]["id"]
        self._watching[job_id] = reply.reply_to
        return job_id

    def _upload(self, path: Path, on_progress: ProgressCallback | None) -> str:
        upload_id = os.urandom(16).hex()
        size = path.stat().st_size
        step = protocol.UPLOAD_CHUNK_BYTES
        count = max(1, -(-size // step))
        with open(path, "rb") as fh:
            for index in range(count):
                data = np.frombuffer(fh.read(step), dtype=np.uint8)
                self.request("upload", {"upload": upload_id, "index": index, "count": count,
                                        "size": size, "name": path.name}, arrays={"data": data})
                if on_progress is not None:
                    on_progress(ProgressInfo("", "uploading", f"uploading {path.name}",
                                             (index + 1) / count))
        return upload_id

    def wait(self, job_id: str, on_progress: ProgressCallback | None = None,
             cancel: Callable[[], bool] | None = None, timeout: float | None = None,
             on_preview: Callable[[PreviewInfo], None] | None = None) -> JobInfo:
        """Block until the job ends; returns its final info.

        ``on_preview`` receives each ``preview`` event (a :class:`PreviewInfo`).

        ``cancel()`` turning true sends a cancel once. With ``timeout``, raises
        :class:`WaitTimeout` when the job is still running then (call again to go on). Raises
        :class:`ConnectionFailed` if the server falls silent for the client's timeout.
        """
        watch_id = self._watching.get(job_id)
        if watch_id is None:
            watch_id = self.request("watch", job=job_id).reply_to
            self._watching[job_id] = watch_id
        end = None if timeout is None else time.monotonic() + timeout
        cancel_sent = False
        started = time.monotonic()
        while True:
            if cancel is not None and not cancel_sent and cancel():
                self.cancel(job_id)
                cancel_sent = True
            now = time.monotonic()
            last_seen = max(started, self._last_heard)
            if end is not None and now >= end:
                raise WaitTimeout(f"job {job_id} still running after {timeout} s")
            slice_s = self.timeout - (now - last_seen)  # silence allowed before giving up
            if cancel is not None:
                slice_s = min(slice_s, 0.2)
            if end is not None:
                slice_s = min(slice_s, end - now)
            try:
                msg = self._next(watch_id, max(slice_s, 0.001))
            except ConnectionFailed as err:
                heard = max(started, self._last_heard)
                if err.code == "timeout" and time.monotonic() - heard < self.timeout:
                    continue  # only a slice ended; the server is alive
                raise
            self._raise_error(msg)
            if msg.type == "preview" and on_preview is not None:
                on_preview(PreviewInfo.from_message(job_id, msg.content, msg.arrays))
            elif msg.type == "progress" and on_progress is not None:
                c = msg.content
                on_progress(ProgressInfo(job_id, c["state"], c["stage"], float(c["fraction"]),
                                         str(c.get("message", "")), c.get("queue_position")))
            elif msg.type == "done":
                self._watching.pop(job_id, None)
                return JobInfo.from_json(msg.content["job"])

    def stream_result(self, job_id: str, from_chunk: int = 0) -> Iterator[stream.Chunk]:
        """Yield the result's chunks from ``from_chunk`` on (see ``shared/stream.py``)."""
        reply = self.request("fetch", {"from_chunk": int(from_chunk)}, job=job_id)
        fetch_id = reply.reply_to
        while True:
            msg = self._next(fetch_id, self.timeout)
            self._raise_error(msg)
            if msg.type == "done":
                return
            if msg.type == "result":
                yield stream.Chunk.from_message(msg.content, msg.arrays)

    def fetch(self, job_id: str, out_dir, on_chunk: Callable[[stream.Chunk], None] | None = None
              ) -> Path:
        """Write the job's result folder to ``out_dir``, resuming a partial earlier fetch."""
        out = Path(out_dir)
        if (out / "manifest.json").is_file() and not (out / ".partial").exists():
            return out
        assembler = stream.ResultAssembler(out)
        for chunk in self.stream_result(job_id, assembler.next_chunk):
            assembler.add(chunk)
            if on_chunk is not None:
                on_chunk(chunk)
        return assembler.finish()


def _slotted(inputs) -> list[tuple[str | None, Path]]:
    """``submit``'s ``inputs`` as ``(input name or None, path)`` pairs."""
    if isinstance(inputs, dict):
        return [(str(k), Path(p)) for k, ps in inputs.items()
                for p in ([ps] if isinstance(ps, (str, Path)) else ps)]
    return [(str(p[0]), Path(p[1])) if isinstance(p, tuple) else (None, Path(p))
            for p in inputs]
