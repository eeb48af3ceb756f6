"""What a scenario may do, and where l2chaos may send load and faults.

Scenarios may come from others (a pull request run by CI), so a scenario by itself can
neither run a command on this host nor reach or listen on an address beyond loopback
and the run's own containers. The user opts in on the command line: ``--allow-exec``
lets `exec.command` run, ``--allow-target HOST`` names a host that is theirs. `Trust`
carries those choices; validation asks it (`require_exec`, `require_host`) while a
scenario is read, so a refusal is exit 2 before anything starts, naming the file, line
and field. At run time the load runner and the backends call `ensure_allowed` as the
second line. docs/security.md has the whole threat model.
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from urllib.parse import urlsplit

from .errors import SafetyError, ScenarioError

__all__ = [
    "Trust",
    "ensure_allowed",
    "is_loopback",
    "require_exec",
    "require_host",
    "trusting",
]


@dataclass(frozen=True)
class Trust:
    """What the user allowed on the command line; the default allows nothing extra."""

    allow_exec: bool = False
    allow_targets: tuple[str, ...] = ()

    def allows_host(self, host: str) -> bool:
        h = _host_of(host)
        return is_loopback(h) or h in {_host_of(a) for a in self.allow_targets}


_TRUST: ContextVar[Trust | None] = ContextVar("l2chaos_trust", default=None)


def _current() -> Trust:
    return _TRUST.get() or Trust()


@contextlib.contextmanager
def trusting(trust: Trust | None) -> Iterator[None]:
    """Validation inside this block checks against `trust` (None: the strict default)."""
    token = _TRUST.set(trust or Trust())
    try:
        yield
    finally:
        _TRUST.reset(token)


def require_exec(what: str, *, file: str | None, line: int | None, field: str) -> None:
    """Refuse a scenario entry that runs a command here unless --allow-exec was given."""
    if not _current().allow_exec:
        raise ScenarioError(
            f"{what} runs a command on this host, which a scenario may not do by itself; "
            "pass --allow-exec if you trust this scenario",
            file=file,
            line=line,
            field=field,
        )


def require_host(host: str, what: str, *, file: str | None, line: int | None, field: str) -> None:
    """Refuse an address beyond loopback unless it was named with --allow-target."""
    if not _current().allows_host(host):
        raise ScenarioError(
            f"{what} {host!r} is beyond loopback; only 127.0.0.1/::1 and the run's own "
            f"containers are allowed unless you pass --allow-target {_host_of(host) or host}",
            file=file,
            line=line,
            field=field,
        )


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
