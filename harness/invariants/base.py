"""The checker interface and the verdict it returns.

A checker reads a finished run record (never the live stack) and returns a Verdict:
its status, how much it checked, and violations with evidence. Three statuses:

- ``pass``: it checked something and found nothing wrong;
- ``fail``: a violation, or it checked nothing although the run gave it work
  (a vacuous pass is a failure, with a message saying so);
- ``not_applicable``: the stack does not provide the data it needs (with the reason).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from l2chaos.params import Param

if TYPE_CHECKING:
    from .record import RunRecord

__all__ = ["Checker", "Status", "Verdict", "Violation"]

Status = Literal["pass", "fail", "not_applicable"]


@dataclass
class Violation:
    """One thing that broke, with the evidence to find it (block, time, account, values)."""

    message: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"message": self.message, "evidence": self.evidence}


@dataclass
class Verdict:
    """The outcome of one checker over one run."""

    name: str
    status: Status
    checked: dict[str, int] = field(default_factory=dict)
    violations: list[Violation] = field(default_factory=list)
    # Why it failed vacuously or is not applicable; notes such as per-fault recovery times.
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    # Violations beyond the stored ones are counted, not kept (a 1M-op run may have many).
    violation_count: int = 0

    @property
    def ok(self) -> bool:
        return self.status == "pass"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "ok": self.ok,
            "checked": self.checked,
            "violation_count": max(self.violation_count, len(self.violations)),
            "violations": [v.to_json() for v in self.violations],
            "reason": self.reason,
            "details": self.details,
            "params": self.params,
        }


class Checker(ABC):
    """Base class: set `name`, `summary`, `params`; implement `check`."""

    name: ClassVar[str]
    summary: ClassVar[str]
    params: ClassVar[tuple[Param, ...]] = ()
    # Keep at most this many violations with evidence; count the rest.
    max_violations: ClassVar[int] = 100

    def __init__(self, params: dict[str, Any]) -> None:
        self.p = params

    @abstractmethod
    def check(self, record: RunRecord) -> Verdict:
        """Check the run record and return a verdict."""
