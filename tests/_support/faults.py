"""Faults built as a scenario would build them, against the test stacks' shape (services
db, api, front; links api->db, front->api, front->db on either platform)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from l2chaos.faults.base import Fault, Target, TargetKind
from l2chaos.params import Duration
from l2chaos.registry import faults

# process.restart_race's `how` on PostgreSQL, and the line the server logs when it
# starts again after that kind of stop (the same on every platform)
POSTGRES_STOPS = [
    ("fast", "database system was shut down at"),
    ("immediate", "database system was interrupted"),
]


def make_fault(
    name: str, target: Target, params: Mapping[str, object], window: Duration | None
) -> Fault[Any]:
    """The fault a scenario's ``fault: <name>`` builds: found in the registry, its
    parameters bound (scenario-style values, e.g. ``"1s"``) and validated; without
    `window` it lasts what its parameters imply."""
    fault = faults()[name].build(target, params, window)
    assert fault.validate({"db", "api", "front"}, {"api->db", "front->api", "front->db"}) is None
    return fault


def service_fault(
    name: str, service: str, params: Mapping[str, object], window: Duration | None
) -> Fault[Any]:
    """make_fault on one service."""
    target = Target(TargetKind.SERVICE, services=(service,), text=service)
    return make_fault(name, target, params, window)
