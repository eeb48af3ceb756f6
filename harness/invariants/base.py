"""The checker interface and the verdict it returns.

A checker reads a finished run record (never the live stack) and returns a Verdict:
its status, how much it checked, and violations with evidence. Four statuses:

- ``pass``: it found nothing wrong. Either it checked something, or the run gave it no
  work at all (no liquidation attempt, no fault healed): then `reason` says so and
  `no_work` is true, so a report never mistakes "nothing happened" for "proved";
- ``fail``: a violation, or it checked nothing although the run gave it work
  (a vacuous pass is a failure, with a message saying so);
- ``not_applicable``: the stack does not provide the data it needs (with the reason);
- ``error``: the checker could not read the record (a malformed line, a crash): the
  harness broke, no verdict can be given (exit code 3).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Generic, Literal, TypeVar, cast

from l2chaos.params import NoParams, declared_model, to_json
from l2chaos.rundir.json_types import JsonObject, json_object

if TYPE_CHECKING:
    from l2chaos.rundir.events import Event

    from .record import RunRecord

__all__ = ["Checker", "Findings", "NoParams", "Status", "Verdict", "Violation"]

Status = Literal["pass", "fail", "not_applicable", "error"]


@dataclass
class Violation:
    """One thing that broke, with the evidence to find it (block, time, account, values)."""

    message: str
    evidence: JsonObject = field(default_factory=dict)

    def to_json(self) -> JsonObject:
        return {"message": self.message, "evidence": self.evidence}


@dataclass
class Verdict:
    """The outcome of one checker over one run."""

    name: str
    status: Status
    checked: dict[str, int] = field(default_factory=dict)
    violations: list[Violation] = field(default_factory=list)
    # Why it failed vacuously, is not applicable, or had no work.
    reason: str = ""
    details: JsonObject = field(default_factory=dict)
    params: JsonObject = field(default_factory=dict)
    # Violations beyond the stored ones are counted, not kept (a 1M-op run may have many).
    violation_count: int = 0
    # True when the run gave this checker nothing to check (status is then `pass`).
    no_work: bool = False
    # Wall time the checker took, in seconds (filled by check_run).
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "pass"

    @property
    def total_violations(self) -> int:
        return max(self.violation_count, len(self.violations))

    @property
    def total_checked(self) -> int:
        return sum(self.checked.values())

    def to_json(self) -> JsonObject:
        return {
            "name": self.name,
            "status": self.status,
            "ok": self.ok,
            "checked": self.checked,
            "violation_count": self.total_violations,
            "violations": [v.to_json() for v in self.violations],
            "reason": self.reason,
            "no_work": self.no_work,
            "details": self.details,
            "params": self.params,
            "seconds": round(self.seconds, 6),
        }


class Findings:
    """Collects violations for one checker: keeps the first `limit`, counts the rest."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.kept: list[Violation] = []
        self.count = 0

    def add(self, message: str, **evidence: object) -> None:
        """A violation; its evidence is kept as JSON (values read from the record as they
        were written, anything else as its text)."""
        self.count += 1
        if len(self.kept) < self.limit:
            self.kept.append(Violation(message, json_object(evidence)))

    def at_event(self, ev: Event, message: str, **evidence: object) -> None:
        """A violation about one event: its evidence starts with where the event is."""
        self.add(message, **{**ev.where(), **evidence})

    def __bool__(self) -> bool:
        return self.count > 0


P = TypeVar("P", covariant=True)  # a Checker[X] is a Checker[object]


class Checker(ABC, Generic[P]):
    """Base class: set `name`, `summary` (and `needs`); implement `check`. The type
    argument is the parameter model (`l2chaos.params`; `NoParams` for none), read typed
    as ``self.p.rto``.

    `needs` names the run-directory files (relative paths) without which the checker is
    not applicable; `check_run` tests them before calling `check`.
    """

    name: ClassVar[str]
    summary: ClassVar[str]
    needs: ClassVar[tuple[str, ...]] = ()
    # Keep at most this many violations with evidence; count the rest.
    max_violations: ClassVar[int] = 100

    def __init__(self, params: P) -> None:
        self.p = params

    @classmethod
    def params_model(cls) -> type[P]:
        """The parameter model: the class's type argument."""
        return cast("type[P]", declared_model(cls, Checker))

    def params_json(self) -> JsonObject:
        """The parameters as the verdict records them (durations in ns)."""
        return to_json(self.p)

    def findings(self) -> Findings:
        return Findings(self.max_violations)

    def verdict(
        self,
        checked: dict[str, int],
        found: Findings,
        *,
        work: int,
        what: str,
        details: Mapping[str, object] | None = None,
        attempted: int = 0,
        succeeded: int | None = None,
    ) -> Verdict:
        """The usual verdict: fail on violations; fail vacuously when nothing was
        checked although `work` > 0 (`what` says what the work was), or when the run
        gave it `attempted` > 0 operations and `succeeded` (if given) is 0: a stack that
        failed every operation proved nothing; pass with `no_work` when there was
        nothing to check."""
        v = Verdict(
            name=self.name,
            status="pass",
            checked=checked,
            violations=found.kept,
            violation_count=found.count,
            details=json_object(details) if details else {},
            params=self.params_json(),
        )
        if found:
            v.status = "fail"
        elif attempted > 0 and succeeded == 0:
            v.status = "fail"
            v.reason = f"none of the {attempted} operations the run gave it succeeded"
        elif sum(checked.values()) == 0 and work > 0:
            v.status = "fail"
            v.reason = f"checked nothing although the run had {work} {what}"
        elif sum(checked.values()) == 0:
            v.no_work = True
            v.reason = f"nothing to check: the run had no {what}"
        return v

    def not_applicable(self, reason: str) -> Verdict:
        return Verdict(self.name, "not_applicable", reason=reason, params=self.params_json())

    @abstractmethod
    def check(self, record: RunRecord) -> Verdict:
        """Check the run record and return a verdict."""
