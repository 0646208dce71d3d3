"""Which backend addresses the add-on may contact (Blender's "Allow Online Access" rule).

Loopback addresses (``127.0.0.0/8``, ``::1``, ``localhost``) and ``ipc://`` / ``inproc://`` never
leave the computer and are always allowed. Any other address needs ``bpy.app.online_access``. In
background mode (``blender -b`` and the ``bpy`` module) online access is always off, so a script
may opt in with the environment variable ``ANIM4D_ALLOW_NETWORK=1``.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping

from ._shared import errors

ALLOW_ENV = "ANIM4D_ALLOW_NETWORK"
_TCP = re.compile(r"^tcp://(\[(?P<v6>[0-9a-fA-F:.]+)\]|(?P<host>[^:/\[\]]+)):(?P<port>\d+|\*)$")


class NetworkNotAllowed(errors.Anim4DError):
    """The address is off this computer and online access is not allowed."""

    code = "offline"


def host_of(address: str) -> str | None:
    """The host part of a ``tcp://`` address (None for ipc/inproc or unparsable text)."""
    m = _TCP.match(address.strip())
    if m is None:
        return None
    return m.group("v6") or m.group("host")


def is_loopback(address: str) -> bool:
    """True when ``address`` cannot leave this computer."""
    address = address.strip()
    if address.startswith(("ipc://", "inproc://")):
        return True
    host = host_of(address)
    if host is None:
        return False
    if host.lower() in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a DNS name other than localhost: assume it is remote


def check_address(address: str, online_access: bool, background: bool,
                  environ: Mapping[str, str] | None = None) -> None:
    """Raise :class:`NetworkNotAllowed` (with the fix in the message) if ``address`` is refused."""
    if is_loopback(address):
        return
    if online_access:
        return
    env = os.environ if environ is None else environ
    if background and env.get(ALLOW_ENV, "") == "1":
        return
    if background:
        raise NetworkNotAllowed(
            f"{address} is not on this computer and Blender runs in background mode, where "
            f"online access is always off; set {ALLOW_ENV}=1 to allow this address")
    raise NetworkNotAllowed(
        f"{address} is not on this computer and online access is off: enable Preferences > "
        f"System > Network > Allow Online Access (or, for background scripts, set "
        f"{ALLOW_ENV}=1), or use a local backend (tcp://127.0.0.1:5555)")
