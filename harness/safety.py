"""Where l2chaos may send load and faults.

Only loopback (127.0.0.0/8, ::1) and the run's own containers are allowed, unless the
user names a target explicitly with ``--allow-target``. This is the one place that
decides; the load runner and the backends call `ensure_allowed`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

from .errors import SafetyError

__all__ = ["ensure_allowed", "is_loopback"]


def _host_of(target: str) -> str:
    if "://" in target:
        host = urlsplit(target).hostname or ""
    else:
        host = target.rsplit(":", 1)[0] if target.count(":") == 1 else target
    return host.strip("[]").lower()


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def ensure_allowed(
    target: str, *, own_hosts: Iterable[str] = (), allow: Iterable[str] = (), what: str = "traffic"
) -> None:
    """Raise SafetyError unless `target` (URL or host[:port]) is loopback, one of the
    run's own hosts (its containers), or explicitly allowed."""
    host = _host_of(target)
    if is_loopback(host):
        return
    if host in {h.lower() for h in own_hosts}:
        return
    allowed = {_host_of(a) for a in allow}
    if host in allowed:
        return
    raise SafetyError(
        f"refusing to send {what} to {target!r}: only loopback and the run's own containers "
        f"are allowed; name it with --allow-target {host} if it really is yours"
    )
