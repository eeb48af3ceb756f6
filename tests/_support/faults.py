"""Faults built as a scenario would build them, against the test stacks' shape (services
db, api, front; links api->db, front->api, front->db on either platform)."""

from __future__ import annotations

from typing import Any

from l2chaos.faults.base import Fault, Target
from l2chaos.params import Where, bind_params


def make_fault(
    cls: type[Fault], target: Target, params: dict[str, Any], for_ns: int | None
) -> Fault:
    """The fault with its parameters bound and validated; without `for_ns` it lasts what
    its parameters imply."""
    fault = cls(target, bind_params(cls.params, params, Where(None, "with")), for_ns)
    if for_ns is None:
        fault.duration_ns = fault.implied_duration_ns()
    assert fault.validate({"db", "api", "front"}, {"api->db", "front->api", "front->db"}) is None
    return fault
