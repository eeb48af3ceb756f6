"""Reading a checker's verdict in tests: the violation that says what the test broke."""

from __future__ import annotations

from l2chaos.invariants.base import Verdict, Violation


def violation(v: Verdict, saying: str) -> Violation:
    """The first of `v`'s violations whose message contains `saying`; the assertion
    error lists every message when none does."""
    hits = [x for x in v.violations if saying in x.message]
    assert hits, [x.message for x in v.violations]
    return hits[0]


def not_applicable(v: Verdict, because: str) -> None:
    """`v` is not applicable, and its reason names `because` (the input the run lacked)."""
    assert v.status == "not_applicable", (v.status, v.reason, v.violations[:3])
    assert because in v.reason, v.reason
