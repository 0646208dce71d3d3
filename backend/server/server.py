"""The backend server: one ROUTER socket, the job engine, result streams, heartbeats.

Everything runs on one thread (the socket's owner); jobs run in worker processes. Replies to a
request carry ``reply_to`` = the request's id; job events (``progress``, then one ``done``) go to
every client that submitted or watches the job; ``fetch`` streams ``result`` chunks followed by a
``done``. Sends never block: ``ROUTER_MANDATORY`` makes a full peer queue visible, a stream then
waits for room, a lost progress event is simply superseded by the next one.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import re
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import zmq

from backend.jobs.registry import JobKind, builtin_kinds
from backend.models import discover_models
from backend.models.pretrained import hello_entries
from backend.server.config import ServerConfig, is_loopback
from backend.server.engine import JobEngine
from backend.server.scheduling import MAX_PRIORITY, MIN_PRIORITY, SubmitRate
from backend.server.sources import dependents, resolve_job_params
from backend.server.store import JobRecord, JobStore
from backend.server.uploads import Uploads
from shared import __version__
from shared.errors import Anim4DError, ParamError, ProtocolError
from shared.protocol import (
    INLINE_INPUT_LIMIT,
    PROTOCOL_VERSION,
    UPLOAD_CHUNK_BYTES,
    Message,
    decode,
    encode,
    error_message,
    peek_ids,
)
from shared.stream import ResultReader

log = logging.getLogger("anim4d.server")
SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_ .()+\-]{0,199}\Z")
MAX_OUTBOX = 10_000


@dataclass
class _Stream:
    identity: bytes
    request_id: str
    job_id: str
    reader: ResultReader
    next: int
    pending: list | None = None


def _executor_args(config: ServerConfig) -> dict:
    """The engine's executor and scheduling settings from the server's config."""
    args = {"max_queued_per_client": config.max_queued_per_client,
            "max_running_per_client": config.max_running_per_client}
    if config.executor == "ray":
        from backend.server.ray_executor import RayExecutor

        folder = str(Path(config.data_dir).expanduser().resolve())
        name = "anim4d-" + hashlib.sha256(folder.encode()).hexdigest()[:16]
        store = None
        if config.result_store:
            from backend.server.result_store import ResultStore

            store = ResultStore(config.result_store)
            try:
                store.check()  # a URL that cannot be used: one line at serve start
            except Anim4DError as err:
                raise Anim4DError(f"--result-store: {err}", "bad_param") from None
        args["executor"] = RayExecutor(config.ray_address, config.workers or None, name,
                                       store, Path(folder) / "jobs", config.resident_actors,
                                       config.resident_idle_s)
        args["retries"] = config.retries
    elif config.executor != "local":
        raise Anim4DError(f"executor {config.executor!r}: expected local or ray", "bad_param")
    elif config.result_store:
        raise Anim4DError("--result-store needs --executor ray", "bad_param")
    return args


def _client_of(identity: bytes, frames: list) -> str:
    """Who sent a message, for fair share and limits: ``curve:<public key>`` (Z85) when the
    server uses CURVE keys, else ``local:<connection>``: without keys each connection is its own
    share (a client cannot prove more; see backend/server/scheduling.py)."""
    try:
        user = frames[1].get("User-Id")
    except Exception:  # noqa: BLE001 - no property: not authenticated
        user = None
    if user and user != "anonymous":
        return f"curve:{user}"
    return f"local:{identity.hex()}"


def _public_keys(folder: Path) -> set[str]:
    """``curve:<Z85 public key>`` of each ``*.key`` in ``folder`` (none if it is missing)."""
    from zmq.auth import load_certificate

    out = set()
    for path in sorted(folder.glob("*.key")) if folder.is_dir() else []:
        public, _ = load_certificate(str(path))
        out.add(f"curve:{public.decode('ascii')}")
    return out


def _priority(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not (
            MIN_PRIORITY <= value <= MAX_PRIORITY):
        raise ParamError(f"submit: priority {value!r} is not accepted: an integer from "
                         f"{MIN_PRIORITY} to {MAX_PRIORITY} (default 0; higher starts first)",
                         "bad_param")
    return value


class Server:
    def __init__(self, config: ServerConfig, kinds: dict[str, JobKind] | None = None,
                 context: zmq.Context | None = None):
        self.config = config
        self.models = discover_models(config.resolved_models_dir)
        self.pretrained = hello_entries(config.resolved_models_dir)
        self.kinds = (kinds if kinds is not None
                      else builtin_kinds(config.debug_kinds, self.models))
        self.store = JobStore(config.data_dir)
        self.uploads = Uploads(self.store.uploads_dir,
                               max_bytes=self.config.max_input_bytes or 64 * 1024**3)
        self.engine = JobEngine(self.store, self.kinds, config.workers, config.cancel_grace_s,
                                on_change=self._on_job_change, warm=config.warm_workers,
                                **_executor_args(config))
        self.ctx = context or zmq.Context.instance()
        self.socket: zmq.Socket | None = None
        self.address = ""
        self.subs: dict[str, dict[bytes, str]] = {}
        # Protocol minor of each subscriber (previews go to 1.1 peers only), and per
        # (peer, job) the latest preview not yet sent: a newer one replaces it.
        self.sub_minor: dict[bytes, int] = {}
        self.pending_previews: dict[tuple[bytes, str], list] = {}
        self.streams: list[_Stream] = []
        # Replies a peer's full send queue could not take yet, per peer, in order: a peer that
        # stops reading delays only itself, and is dropped past MAX_OUTBOX messages.
        self.outbox: dict[bytes, deque[list]] = {}
        self._stop = threading.Event()
        self._sender = "local"  # the client of the message being handled (see _client_of)
        self.admins: set[str] = set()  # clients that see every job (with CURVE keys)
        self.submit_rate = SubmitRate(config.max_submits_per_minute)
        self._auth = None
        self._last_heartbeat = 0.0

    # ---- lifecycle -----------------------------------------------------------------------
    def bind(self) -> str:
        for line in self.engine.restore():
            log.info(line)
        sock = self.ctx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        sock.setsockopt(zmq.SNDHWM, self.config.sndhwm)
        sock.setsockopt(zmq.RCVHWM, 256)
        sock.setsockopt(zmq.MAXMSGSIZE, self.config.max_message_bytes + 1024 * 1024)
        if self.config.curve_keys:
            self._setup_curve(sock, Path(self.config.curve_keys))
        elif not is_loopback(self.config.bind):
            log.warning("binding %s, an address other machines can reach, WITHOUT CurveZMQ "
                        "authentication: anyone who can reach it can run jobs and read results. "
                        "Use --curve-keys DIR (see `anim4d keys --help`).", self.config.bind)
        try:
            sock.bind(self.config.bind)
        except zmq.ZMQError as err:
            sock.close()
            raise Anim4DError(f"cannot bind {self.config.bind}: {err.strerror}",
                              "bind_failed") from None
        self.socket = sock
        self.address = sock.getsockopt(zmq.LAST_ENDPOINT).decode()
        self.engine.start()  # the warm worker imports its methods now, before the first job
        log.info("serving on %s, data in %s, %d worker(s), kinds: %s", self.address,
                 self.store.root, self.engine.workers, ", ".join(self.kinds))
        log.info("models (from %s and the shipped ones): %s", self.models.models_dir,
                 ", ".join(f"{m.method}/{m.name}" for m in self.models) or "none")
        log.info("pretrained models here: %s (see `anim4d models list`)",
                 ", ".join(e["name"] for e in self.pretrained if e["present"]) or "none")
        return self.address

    def _setup_curve(self, sock: zmq.Socket, keys: Path) -> None:
        from zmq.auth import load_certificate
        from zmq.auth.thread import ThreadAuthenticator

        secret, clients = keys / "server.key_secret", keys / "clients"
        if not secret.is_file() or not clients.is_dir():
            raise Anim4DError(f"--curve-keys {keys}: expected {secret.name} and a clients/ "
                              f"folder; create them with `anim4d keys {keys}`", "bad_keys")
        public, private = load_certificate(str(secret))
        self.admins = _public_keys(keys / "admins")
        self._auth = ThreadAuthenticator(self.ctx)
        self._auth.start()
        self._auth.configure_curve(domain="*", location=str(clients))
        sock.curve_secretkey, sock.curve_publickey, sock.curve_server = private, public, True

    def stop(self) -> None:
        """Ask :meth:`serve_forever` to return (thread- and signal-safe)."""
        self._stop.set()

    def serve_forever(self) -> None:
        if self.socket is None:
            self.bind()
        poller = zmq.Poller()
        poller.register(self.socket, zmq.POLLIN)
        try:
            while not self._stop.is_set():
                busy = bool(self.engine.busy or self.streams or self.outbox
                            or self.pending_previews)
                if poller.poll(5 if busy else 100):
                    self._receive_some()
                self.engine.poll(0.0)
                self._flush_outbox()
                self._pump_previews()
                self._pump_streams()
                self._heartbeat()
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        running = list(self.engine.running)
        self.engine.shutdown()
        for job_id in running:
            self._on_job_change(self.engine.records[job_id], "state")
        self._flush_outbox()
        if self.socket is not None:
            self.socket.close(linger=0)
            self.socket = None
        if self._auth is not None:
            self._auth.stop()
        log.info("server stopped; %d running job(s) marked interrupted", len(running))

    # ---- sending -------------------------------------------------------------------------
    @property
    def outbox_size(self) -> int:
        return sum(len(q) for q in self.outbox.values())

    def _send(self, identity: bytes, msg: Message, critical: bool = True) -> bool:
        frames = [identity, *encode(msg)]
        if identity in self.outbox:  # keep this peer's order: queue behind what waits
            if critical:
                self._queue(identity, frames)
            return False
        return self._send_frames(identity, frames, critical)

    def _queue(self, identity: bytes, frames: list) -> None:
        queue = self.outbox.setdefault(identity, deque())
        queue.append(frames)
        if len(queue) > MAX_OUTBOX:
            log.warning("a client stopped reading (%d replies waiting): dropping it",
                        len(queue))
            self._forget(identity)

    def _send_frames(self, identity: bytes, frames: list, queue_if_full: bool) -> bool:
        try:
            self.socket.send_multipart(frames, flags=zmq.NOBLOCK, copy=False)
            return True
        except zmq.Again:
            if queue_if_full:
                self._queue(identity, frames)
            return False
        except zmq.ZMQError as err:
            if err.errno == errno.EHOSTUNREACH:
                self._forget(identity)
                return False
            raise

    def _flush_outbox(self) -> None:
        for identity in list(self.outbox):
            queue = self.outbox.get(identity)
            while queue:
                try:
                    self.socket.send_multipart(queue[0], flags=zmq.NOBLOCK, copy=False)
                except zmq.Again:
                    break  # this peer is still full; the others go on
                except zmq.ZMQError as err:
                    if err.errno != errno.EHOSTUNREACH:
                        raise
                    self._forget(identity)
                    break
                queue.popleft()
            if identity in self.outbox and not self.outbox[identity]:
                del self.outbox[identity]

    def _forget(self, identity: bytes) -> None:
        for subs in self.subs.values():
            subs.pop(identity, None)
        self.streams = [s for s in self.streams if s.identity != identity]
        self.outbox.pop(identity, None)
        self.sub_minor.pop(identity, None)
        for key in [k for k in self.pending_previews if k[0] == identity]:
            del self.pending_previews[key]

    # ---- receiving -----------------------------------------------------------------------
    def _receive_some(self, budget: int = 64) -> None:
        for _ in range(budget):
            try:
                frames = self.socket.recv_multipart(flags=zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            identity, body = frames[0].bytes, frames[1:]
            try:
                total = sum(len(f) for f in body)
                if total > self.config.max_message_bytes:
                    raise ProtocolError(f"message of {total} bytes is over the server's "
                                        f"{self.config.max_message_bytes}-byte limit")
                msg = decode(body, self.config.max_message_bytes)
            except Exception as err:  # noqa: BLE001 - no message may stop the server
                if not isinstance(err, ProtocolError):
                    log.exception("decoding a message failed")
                    err = ProtocolError(f"malformed message ({type(err).__name__})")
                mid, job = peek_ids(body) if len(body) >= 2 else (None, None)
                log.info("refused a malformed message: %s", err)
                self._send(identity, error_message(err.code, str(err), mid, job))
                continue
            self._sender = _client_of(identity, frames)
            try:
                self._dispatch(identity, msg)
            except Anim4DError as err:
                self._send(identity, msg.error_reply(err.code, str(err)))
            except Exception as err:  # noqa: BLE001 - a handler bug must not stop the server
                log.exception("handling %s failed", msg.type)
                self._send(identity, msg.error_reply("internal", f"server error: {err}"))

    def _dispatch(self, identity: bytes, msg: Message) -> None:
        handler = getattr(self, f"_on_{msg.type}", None)
        if msg.status is not None:
            raise ProtocolError(f"a {msg.type!r} with status {msg.status!r} is a reply or an "
                                "event; a server accepts only requests (status null)")
        if handler is None:
            raise ProtocolError(f"{msg.type!r} is not a request a server accepts")
        if msg.job is not None and msg.type != "submit" and (
                msg.job not in self.engine.records
                or not self._may_see(self.engine.records[msg.job])):
            raise Anim4DError(f"no job {msg.job} on this server (it may have been deleted)",
                              "unknown_job")
        handler(identity, msg)

    def _may_see(self, rec: JobRecord) -> bool:
        """With CURVE keys a client sees (lists, watches, fetches, cancels, deletes, uses as a
        source) only its own jobs, an admin key every job; without keys everyone sees all."""
        return (not self.config.curve_keys or rec.client == self._sender
                or self._sender in self.admins)

    def _visible(self) -> dict[str, JobRecord]:
        if not self.config.curve_keys or self._sender in self.admins:
            return self.engine.records
        return {j: r for j, r in self.engine.records.items() if r.client == self._sender}

    # ---- handlers ------------------------------------------------------------------------
    def _on_hello(self, identity: bytes, msg: Message) -> None:
        # a 1.0 client cannot read the 1.1 parameter types: it is not offered those kinds
        self._send(identity, msg.reply(content={
            "server": "anim4d", "server_version": __version__, "protocol": PROTOCOL_VERSION,
            "kinds": [k.spec.to_json() for k in self.kinds.values()
                      if k.spec.protocol_minor <= msg.version[1]],
            "models": self.models.to_json(), "pretrained": self.pretrained,
            "limits": {"max_message_bytes": self.config.max_message_bytes,
                       "inline_input_bytes": INLINE_INPUT_LIMIT,
                       "upload_chunk_bytes": UPLOAD_CHUNK_BYTES,
                       "result_chunk_bytes": self.config.chunk_bytes,
                       "heartbeat_s": self.config.heartbeat_s},
            "workers": self.engine.slots, "curve": bool(self.config.curve_keys),
            "executor": self.config.executor,
        }))

    def _on_ping(self, identity: bytes, msg: Message) -> None:
        self._send(identity, msg.reply(content={"time": time.time()}))

    def _on_upload(self, identity: bytes, msg: Message) -> None:
        c = msg.content
        data = msg.arrays.get("data")
        if data is None or data.dtype != "uint8" or data.ndim != 1:
            raise ProtocolError("upload: needs one 1-D uint8 array named 'data'")
        done = self.uploads.add(c["upload"], c["index"], c["count"], c["size"], data.data)
        self._send(identity, msg.reply(content={"upload": c["upload"], "index": c["index"],
                                                "complete": done}))

    def _on_submit(self, identity: bytes, msg: Message) -> None:
        name = msg.content["kind"]
        kind = self.kinds.get(name)
        if kind is None:
            raise ParamError(f"unknown job kind {name!r}; this server offers: "
                             + ", ".join(sorted(self.kinds)), "unknown_kind")
        params = kind.spec.validate_params(msg.content["params"])
        params = resolve_job_params(kind.spec, params, self._visible())
        priority = _priority(msg.content.get("priority", 0))
        self.engine.check_limits(self._sender)
        wait_s = self.submit_rate.take(self._sender)
        if wait_s:
            limit = self.submit_rate.per_minute
            raise Anim4DError(f"too many submits: this server takes at most {limit} per minute "
                              f"from each client (--max-submits-per-minute {limit}); try again "
                              f"in {wait_s:.0f} s", "rate_limited")
        inputs = self._check_inputs(kind, msg)
        job_id = uuid.uuid4().hex
        record = JobRecord(id=job_id, kind=name, params=params, inputs=[n for n, _ in inputs],
                           client=self._sender, priority=priority)
        self.store.create(record)
        try:
            for fname, source in inputs:
                dest = self.store.inputs_dir(job_id) / fname
                dest.parent.mkdir(parents=True, exist_ok=True)
                if isinstance(source, str):
                    self.uploads.take(source, dest)
                else:
                    dest.write_bytes(source)
        except Exception:
            self.store.delete(job_id)
            raise
        self.engine.records[job_id] = record
        self._send(identity, msg.reply(content={"job": record.info()}, job=job_id))
        self.subs.setdefault(job_id, {})[identity] = msg.id
        self.sub_minor[identity] = msg.version[1]
        self.engine.submit(record)

    def _check_inputs(self, kind: JobKind, msg: Message) -> list[tuple[str, object]]:
        """(stored name, bytes or upload id) per file. A file may name the kind's input it is
        for (``"input"``, since 1.1; default the first): the first input's files are stored by
        their name, another input's as ``<input>/<name>`` (see :func:`inputs_by_slot`)."""
        given = msg.content["inputs"]
        specs = kind.spec.inputs
        allowed = 0 if not specs else sum(1000 if s.multiple else 1 for s in specs)
        required = sum(1 for s in specs if s.required)
        if not required <= len(given) <= allowed:
            want = f"{required}" if required == allowed else f"{required} to {allowed}"
            raise ParamError(f"{kind.name}: takes {want} input file(s), got {len(given)}",
                             "bad_input")
        by_name = {s.name: s for s in specs}
        counts = dict.fromkeys(by_name, 0)
        out, seen = [], set()
        for i, item in enumerate(given):
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                raise ProtocolError(f"submit: inputs[{i}] must be {{name, array|upload}}")
            fname = item["name"]
            slot = item.get("input", specs[0].name if specs else None)
            if not isinstance(slot, str):
                raise ProtocolError(f"submit: inputs[{i}].input must be the name of one of the "
                                    "kind's inputs (a string)")
            if slot not in by_name:
                raise ParamError(f"{kind.name}: input file {fname!r} is for the input {slot!r}; "
                                 f"this kind's inputs: {', '.join(by_name) or 'none'}",
                                 "bad_input")
            spec = by_name[slot]
            if not SAFE_NAME.match(fname) or (slot, fname) in seen:
                raise ParamError(f"input file name {fname!r} is not accepted: use a plain, "
                                 "unique file name (letters, digits, space . _ - ( ) +)",
                                 "bad_input")
            seen.add((slot, fname))
            counts[slot] += 1
            exts = {e.lower() for e in spec.extensions}
            if exts and Path(fname).suffix.lower() not in exts:
                raise ParamError(f"{kind.name}: input {fname!r} has an unsupported type"
                                 + (f" for the input {slot!r}" if len(specs) > 1 else "")
                                 + f"; accepted: {', '.join(sorted(exts))}", "bad_input")
            stored = fname if slot == specs[0].name else f"{slot}/{fname}"
            if isinstance(item.get("upload"), str):
                self._check_size(kind, spec, fname, self.uploads.size(item["upload"]),
                                 item["upload"])
                out.append((stored, item["upload"]))
            elif isinstance(item.get("array"), str) and item["array"] in msg.arrays:
                arr = msg.arrays[item["array"]]
                if arr.dtype != "uint8" or arr.ndim != 1:
                    raise ProtocolError(f"submit: input {fname!r} must be a 1-D uint8 array")
                self._check_size(kind, spec, fname, arr.nbytes)
                out.append((stored, arr.data))
            else:
                raise ProtocolError(f"submit: inputs[{i}] names neither an upload nor an array")
        for spec in specs:
            if spec.required and not counts[spec.name]:
                raise ParamError(f"{kind.name}: needs its {spec.name!r} input "
                                 f"({', '.join(spec.extensions) or 'any file'}); got none",
                                 "bad_input")
            if not spec.multiple and counts[spec.name] > 1:
                raise ParamError(f"{kind.name}: its {spec.name!r} input takes one file, got "
                                 f"{counts[spec.name]}", "bad_input")
        return out

    def _check_size(self, kind: JobKind, spec, fname: str, size: int,
                    upload: str | None = None) -> None:
        """Refuse (``too_large``) a file over its input's ``max_bytes`` or the server's
        ``max_input_bytes``; a refused upload is discarded at once (its disk space freed)."""
        limits = [b for b in (spec.max_bytes, self.config.max_input_bytes) if b > 0]
        if not limits or size <= min(limits):
            return
        if upload is not None:
            self.uploads.discard(upload)
        limit = min(limits)
        whose = (f"the {spec.name!r} input of {kind.name}" if limit == spec.max_bytes
                 else "this server (--max-input-mb)")
        raise ParamError(f"{kind.name}: input file {fname!r} is {size / 1e6:.1f} MB; "
                         f"{whose} takes at most {limit / 1e6:.1f} MB", "too_large")

    def _on_watch(self, identity: bytes, msg: Message) -> None:
        rec = self.engine.records[msg.job]
        self._send(identity, msg.reply(content={"job": self.engine.info(rec.id)}))
        if rec.terminal:
            self._send(identity, msg.reply("done", {"state": rec.state,
                                                    "job": self.engine.info(rec.id)}))
        else:
            self.subs.setdefault(rec.id, {})[identity] = msg.id
            self.sub_minor[identity] = msg.version[1]

    def _on_cancel(self, identity: bytes, msg: Message) -> None:
        rec = self.engine.cancel(msg.job)
        self._send(identity, msg.reply(content={"job": self.engine.info(rec.id)}))

    def _on_jobs(self, identity: bytes, msg: Message) -> None:
        jobs = [self.engine.info(j) for j in self._visible()]
        self._send(identity, msg.reply(content={"jobs": jobs}))

    def _on_job(self, identity: bytes, msg: Message) -> None:
        self._send(identity, msg.reply(content={"job": self.engine.info(msg.job)}))

    def _on_delete(self, identity: bytes, msg: Message) -> None:
        rec = self.engine.records[msg.job]
        if not rec.terminal:
            raise Anim4DError(f"job {rec.id} is {rec.state}; cancel it before deleting it",
                              "job_active")
        users = dependents(rec.id, self.engine.records, self.kinds)
        if users:
            raise Anim4DError(f"job {rec.id} is the source of {len(users)} queued or running "
                              f"job(s) ({', '.join(u[:12] for u in users)}); delete it when "
                              "they have ended", "job_active")
        self.streams = [s for s in self.streams if s.job_id != rec.id]
        self.engine.delete(rec.id)
        self.subs.pop(rec.id, None)
        self._send(identity, msg.reply(content={"deleted": rec.id}))

    def _on_fetch(self, identity: bytes, msg: Message) -> None:
        rec = self.engine.records[msg.job]
        if rec.state != "done":
            raise Anim4DError(f"job {rec.id} is {rec.state}; only finished jobs have results",
                              "not_done")
        reader = ResultReader(self.store.result_dir(rec.id), self.config.chunk_bytes)
        if reader.manifest.representation == "video" and msg.version[1] < 1:
            raise Anim4DError(f"job {rec.id}'s result is a video, which needs protocol 1.1; "
                              f"this client speaks {msg.version[0]}.{msg.version[1]}: update it",
                              "version_mismatch")
        start = msg.content["from_chunk"]
        if not 0 <= start <= reader.count:
            raise ProtocolError(f"fetch: from_chunk {start} out of range [0, {reader.count}]")
        self._send(identity, msg.reply(content={"count": reader.count, "from_chunk": start}))
        self.streams.append(_Stream(identity, msg.id, rec.id, reader, start))

    # ---- events --------------------------------------------------------------------------
    def _on_job_change(self, rec: JobRecord, event: str) -> None:
        subs = self.subs.get(rec.id)
        if not subs:
            return
        if event == "preview":
            content, arrays = self.engine.previews.get(rec.id, ({}, {}))
            for identity, req_id in subs.items():
                if self.sub_minor.get(identity, 0) >= 1:
                    msg = Message("preview", content, arrays, reply_to=req_id, job=rec.id,
                                  status="ok")
                    self.pending_previews[(identity, rec.id)] = [identity, *encode(msg)]
            self._pump_previews()
            return
        if rec.terminal:  # a preview not delivered by now is stale
            for identity in subs:
                self.pending_previews.pop((identity, rec.id), None)
        info = self.engine.info(rec.id)
        for identity, req_id in list(subs.items()):
            progress = Message("progress", {"state": rec.state, "stage": rec.stage,
                                            "fraction": rec.fraction, "message": rec.message,
                                            "queue_position": info["queue_position"],
                                            "job": info},
                               reply_to=req_id, job=rec.id, status="ok")
            self._send(identity, progress, critical=event == "state")
            if rec.terminal:
                self._send(identity, Message("done", {"state": rec.state, "job": info},
                                             reply_to=req_id, job=rec.id, status="ok"))
        if rec.terminal:
            self.subs.pop(rec.id, None)

    def _pump_previews(self) -> None:
        """Send each pending preview once its peer has room (never queued: a later one
        replaces it in :attr:`pending_previews`)."""
        for key, frames in list(self.pending_previews.items()):
            if key[0] in self.outbox:
                continue
            if self._send_frames(key[0], frames, False) or key[0] not in self.sub_minor:
                self.pending_previews.pop(key, None)

    def _pump_streams(self) -> None:
        for stream in list(self.streams):
            while stream.next <= stream.reader.count:
                if stream.pending is None:
                    if stream.next == stream.reader.count:
                        msg = Message("done", {"state": "done", "count": stream.reader.count},
                                      reply_to=stream.request_id, job=stream.job_id, status="ok")
                    else:
                        chunk = stream.reader.chunk(stream.next)
                        msg = Message("result", chunk.content, chunk.arrays,
                                      reply_to=stream.request_id, job=stream.job_id, status="ok")
                    stream.pending = [stream.identity, *encode(msg)]
                if (stream.identity in self.outbox
                        or not self._send_frames(stream.identity, stream.pending, False)):
                    break
                stream.pending = None
                stream.next += 1
            if stream.next > stream.reader.count and stream in self.streams:
                self.streams.remove(stream)

    def _heartbeat(self) -> None:
        now = time.monotonic()
        if now - self._last_heartbeat < self.config.heartbeat_s:
            return
        self._last_heartbeat = now
        peers = {i for subs in self.subs.values() for i in subs}
        peers |= {s.identity for s in self.streams}
        for identity in peers:
            self._send(identity, Message("heartbeat", {
                "time": time.time(), "running": len(self.engine.running),
                "queued": len(self.engine.queue)}, status="ok"), critical=False)
