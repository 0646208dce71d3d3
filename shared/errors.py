"""Error types shared by the backend, the CLI and the add-on.

Every error carries a stable ``code`` (for programs) and a human ``message`` (for artists): the
message says what was wrong, where, and what is accepted.
"""

from __future__ import annotations


class Anim4DError(Exception):
    """Base class: ``code`` is a stable identifier, ``str(err)`` the human message."""

    code = "error"

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class ProtocolError(Anim4DError):
    """A message that does not follow ``shared/PROTOCOL.md``."""

    code = "bad_message"


class VersionError(ProtocolError):
    """The peer speaks a protocol major version we do not understand."""

    code = "version_mismatch"


class ParamError(Anim4DError):
    """A job parameter that is unknown, of the wrong type or out of range."""

    code = "bad_param"


class FormatError(Anim4DError):
    """A file (result, mesh, point cache, splat) that cannot be read as its format."""

    code = "bad_file"


class JobError(Anim4DError):
    """A job that failed, with the reason given by the method or the job engine."""

    code = "job_failed"
