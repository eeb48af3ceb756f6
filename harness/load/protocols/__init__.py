"""Trader protocols: how Locust users talk to a target (see `base.py`).

Built-in: `perpdex` (the reference exchange), `evm` (Ethereum JSON-RPC), `starknet`
(Starknet JSON-RPC reads). Plugins: the entry point group ``l2chaos.protocols``.
`protocol(name)` finds one (UsageError naming the known ones otherwise).
"""

from __future__ import annotations

from l2chaos.errors import UsageError

from .base import Driver, DriverArgs, Prepared, SetupArgs, TraderProtocol

__all__ = [
    "Driver",
    "DriverArgs",
    "Prepared",
    "SetupArgs",
    "TraderProtocol",
    "protocol",
    "protocol_names",
]


def protocol_names() -> list[str]:
    from l2chaos.registry import protocols

    return list(protocols())


def protocol(name: str) -> TraderProtocol:
    """An instance of the protocol registered as `name`."""
    from l2chaos.registry import protocols

    known = protocols()
    cls = known.get(name)
    if cls is None:
        raise UsageError(f"unknown load protocol {name!r}; known: {', '.join(known)}")
    inst: TraderProtocol = cls()
    return inst
