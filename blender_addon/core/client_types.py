"""Plain data the client hands to its callers (CLI, add-on worker thread): no sockets here."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ._shared import errors, params

ADDRESS_RE = re.compile(
    r"^(tcp://(\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.\-*]+):(\d{1,5}|\*)|ipc://.+|inproc://.+)$"
)


class ConnectionFailed(errors.Anim4DError):
    """The server could not be reached (code ``refused``, ``timeout`` or ``bad_address``)."""

    code = "refused"


class WaitTimeout(errors.Anim4DError):
    """``Client.wait(timeout=...)`` returned before the job ended; the job goes on."""

    code = "wait_timeout"


class VersionMismatch(errors.Anim4DError):
    code = "version_mismatch"


class AuthRejected(errors.Anim4DError):
    code = "auth_rejected"


class ServerError(errors.Anim4DError):
    """An error reply from the server; ``code`` is the server's."""

    code = "server_error"


def check_address(address: str) -> str:
    address = address.strip()
    if not ADDRESS_RE.match(address):
        raise ConnectionFailed(
            f"{address!r} is not a ZeroMQ address; expected tcp://HOST:PORT "
            "(e.g. tcp://127.0.0.1:5555), ipc://PATH or inproc://NAME", "bad_address")
    return address


@dataclass
class ProgressInfo:
    job_id: str
    state: str
    stage: str
    fraction: float
    message: str = ""
    queue_position: int | None = None


PREVIEW_ARRAYS = ("means", "quats", "log_scales", "opacity_logits", "sh_dc")


@dataclass
class PreviewInfo:
    """A ``preview`` event: the same ``count`` Gaussians at each of ``times`` (seconds).

    ``arrays``: ``means`` [K, N, 3], ``quats`` [K, N, 4], ``log_scales`` [K, N, 3] (per time),
    ``opacity_logits`` [N], ``sh_dc`` [N, 3] (shared), Y-up as in a 3DGS file.
    """

    job_id: str
    stage: str
    step: int
    steps: int
    times: list[float]
    arrays: dict[str, Any]

    @classmethod
    def from_message(cls, job_id: str, content: dict, arrays: dict) -> PreviewInfo:
        times = [float(t) for t in content.get("times", [])]
        missing = [k for k in PREVIEW_ARRAYS if k not in arrays]
        if missing or not times:
            raise ServerError(f"preview of job {job_id}: missing "
                              f"{', '.join(missing) or 'times'}", "bad_message")
        k, n = len(times), int(arrays["opacity_logits"].shape[0])
        want = {"means": (k, n, 3), "quats": (k, n, 4), "log_scales": (k, n, 3),
                "sh_dc": (n, 3)}
        for name, shape in want.items():
            if tuple(arrays[name].shape) != shape:
                raise ServerError(f"preview of job {job_id}: {name} has shape "
                                  f"{tuple(arrays[name].shape)}, expected {shape}",
                                  "bad_message")
        return cls(job_id, str(content.get("stage", "")), int(content.get("step", 0)),
                   int(content.get("steps", 0)), times, dict(arrays))

    @property
    def count(self) -> int:
        return int(self.arrays["opacity_logits"].shape[0])

    def frame(self, i: int) -> dict[str, Any]:
        """The Gaussians at ``times[i]`` as keyword arrays of a 3DGS frame."""
        a = self.arrays
        return {"means": a["means"][i], "quats": a["quats"][i], "log_scales": a["log_scales"][i],
                "opacity_logits": a["opacity_logits"], "sh_dc": a["sh_dc"]}


@dataclass
class JobInfo:
    id: str
    kind: str
    state: str
    params: dict[str, Any] = field(default_factory=dict)
    stage: str = ""
    fraction: float = 0.0
    message: str = ""
    error: dict[str, str] | None = None
    created: float = 0.0
    started: float | None = None
    finished: float | None = None
    result: dict[str, Any] | None = None
    queue_position: int | None = None
    inputs: list[str] = field(default_factory=list)

    @classmethod
    def from_json(cls, d: dict) -> JobInfo:
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in d.items() if k in names})

    @property
    def terminal(self) -> bool:
        return self.state in ("done", "failed", "cancelled", "interrupted")


@dataclass
class HelloInfo:
    server_version: str
    protocol_version: str
    kinds: list[params.KindSpec]
    limits: dict[str, Any]
    workers: int = 1
    curve: bool = False
    models: list[dict[str, Any]] = field(default_factory=list)  # {name, method, sha256, size}
    pretrained: list[dict[str, Any]] = field(default_factory=list)  # {name, method, present, ...}

    def kind(self, name: str) -> params.KindSpec:
        for k in self.kinds:
            if k.name == name:
                return k
        raise ServerError(f"the server offers no job kind {name!r}; it offers: "
                          + ", ".join(k.name for k in self.kinds), "unknown_kind")


@dataclass
class CurveConfig:
    """CurveZMQ keys (Z85 text): the server's public key and this client's key pair."""

    server_public: bytes
    client_public: bytes
    client_secret: bytes

    @classmethod
    def from_files(cls, server_public_file: str, client_secret_file: str) -> CurveConfig:
        from zmq.auth import load_certificate

        try:
            server_public, _ = load_certificate(server_public_file)
            client_public, client_secret = load_certificate(client_secret_file)
        except (OSError, ValueError) as err:
            raise AuthRejected(f"cannot read CURVE keys: {err}", "bad_keys") from None
        if client_secret is None:
            raise AuthRejected(f"{client_secret_file} holds no secret key (use the "
                               "*.key_secret file)", "bad_keys")
        return cls(server_public, client_public, client_secret)
