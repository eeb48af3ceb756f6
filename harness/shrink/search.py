"""The search for a smaller failing schedule: pure logic over candidates and a `run`.

A candidate is an explicit timeline (entries with a time, a window and parameters)
and a run length. `Search.shrink` keeps the smallest candidate seen failing and tries,
in order:

1. fewer entries: delta debugging (ddmin, Zeller and Hildebrandt 2002) over the
   entries in time order: halves, then quarters, ... and their complements;
2. a shorter run: the entries moved to start at `lead` and the run ended `tail` after
   the last heal (else only the tail cut);
3. shorter windows: each `for` halved while it still fails (down to `min_window`);
4. smaller numbers: each numeric parameter (a latency, a downtime, a toxicity) halved
   while it still fails, at most `max_halvings` times.

Flaky candidates: a failure is evidence (the invariant has a violation), so one failing
run accepts a candidate. A passing run is not: a race may simply not have happened, so a
candidate that passed is run again (`retries`, default 1) and is rejected only when
every run passed. Every run counts against the budget (`Budget`: runs and time); when it
is spent the search stops and the smallest failing candidate so far is the answer.
Candidates that cannot run (validation refuses them) cost nothing. Results are cached by
candidate, so no candidate runs twice.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from l2chaos.durations import format_duration, parse_duration

__all__ = [
    "Budget",
    "BudgetSpent",
    "Candidate",
    "Entry",
    "Outcome",
    "Search",
    "halve",
]

MS = 1_000_000


class Outcome(Enum):
    FAILS = "fails"  # the same invariant failed again
    PASSES = "passes"  # it did not
    BROKE = "broke"  # no verdict (the harness or the stack broke): counts as not failing
    INVALID = "invalid"  # validation refused the candidate; it never ran


@dataclass(frozen=True)
class Entry:
    """One explicit timeline entry, as it will be written (times before time scaling)."""

    label: str
    fault: str
    at_ns: int
    for_ns: int | None = None
    target: Any = None
    params: Mapping[str, Any] = field(default_factory=dict)

    def knobs(self) -> list[str]:
        """The parameters `halve` can make smaller."""
        return [k for k, v in self.params.items() if halve(v) is not None]


@dataclass(frozen=True)
class Candidate:
    entries: tuple[Entry, ...]
    duration_ns: int

    def key(self) -> str:
        return json.dumps(
            [
                self.duration_ns,
                [[e.label, e.at_ns, e.for_ns, dict(e.params)] for e in self.entries],
            ],
            sort_keys=True,
            default=str,
        )

    def end_ns(self) -> int:
        return max((e.at_ns + (e.for_ns or 0) for e in self.entries), default=0)


def halve(value: Any) -> Any:
    """Half of a numeric parameter (a duration string, an int, a float), or None when
    it is not a number or cannot get usefully smaller."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value // 2 if value >= 2 else None
    if isinstance(value, float):
        return round(value / 2, 6) if value >= 0.02 else None
    if isinstance(value, str):
        try:
            ns = parse_duration(value)
        except ValueError:
            return None
        half = (ns // 2) // MS * MS
        return format_duration(half) if half >= MS else None
    return None


class BudgetSpent(Exception):
    """No runs or time left."""


@dataclass
class Budget:
    max_runs: int
    max_time_s: float
    clock: Callable[[], float] = time.monotonic
    runs: int = 0
    started: float | None = None

    def check(self) -> None:
        """Raise BudgetSpent when no further run may start."""
        if self.started is None:
            self.started = self.clock()
        if self.runs >= self.max_runs:
            raise BudgetSpent(f"{self.runs} runs (--max-runs)")
        if self.clock() - self.started >= self.max_time_s:
            raise BudgetSpent(f"{self.elapsed_s():.0f}s (--max-time)")

    def elapsed_s(self) -> float:
        return 0.0 if self.started is None else self.clock() - self.started


Report = Callable[[str, Candidate, Outcome, int], None]


@dataclass
class Search:
    """Runs candidates through `run` under a budget; `shrink` returns the smallest
    candidate seen failing (the initial one when nothing smaller failed)."""

    run: Callable[[Candidate], Outcome]
    budget: Budget
    retries: int = 1
    report: Report = lambda step, cand, outcome, attempt: None
    min_window_ns: int = 500 * MS
    lead_ns: int = 15_000 * MS
    tail_ns: int = 20_000 * MS
    max_halvings: int = 4
    best: Candidate | None = None
    spent: str | None = None  # why the search stopped early
    _cache: dict[str, bool] = field(default_factory=dict)

    # ------------------------------------------------------------------ testing

    def fails(self, cand: Candidate, step: str) -> bool:
        key = cand.key()
        if key not in self._cache:
            self._cache[key] = self._try(cand, step)
        if self._cache[key] and (self.best is None or _smaller(cand, self.best)):
            self.best = cand
        return self._cache[key]

    def _try(self, cand: Candidate, step: str) -> bool:
        for attempt in range(1, self.retries + 2):
            self.budget.check()
            outcome = self.run(cand)
            if outcome is not Outcome.INVALID:
                self.budget.runs += 1
            self.report(step, cand, outcome, attempt)
            if outcome is Outcome.FAILS:
                return True
            if outcome is Outcome.INVALID:
                return False
        return False

    # ------------------------------------------------------------------ passes

    def shrink(self, initial: Candidate) -> Candidate | None:
        """None when the initial candidate did not fail (nothing to shrink)."""
        try:
            if not self.fails(initial, "reproduce"):
                return None
            for step in (self._ddmin, self._shorter_run, self._windows, self._knobs):
                assert self.best is not None
                step(self.best)
        except BudgetSpent as exc:
            self.spent = str(exc)
        return self.best

    def _ddmin(self, start: Candidate) -> None:
        entries = list(start.entries)
        n = 2
        while len(entries) >= 2:
            chunks = _split(entries, n)
            reduced = False
            subsets = [(c, "subset") for c in chunks]
            if n > 2:  # with two chunks each complement is the other chunk
                subsets += [([e for e in entries if e not in c], "complement") for c in chunks]
            for subset, kind in subsets:
                if self.fails(replace(start, entries=tuple(subset)), f"ddmin {kind}"):
                    entries = subset
                    n = 2 if kind == "subset" else max(n - 1, 2)
                    reduced = True
                    break
            if not reduced:
                if n >= len(entries):
                    return
                n = min(2 * n, len(entries))

    def _shorter_run(self, start: Candidate) -> None:
        if not start.entries:
            return
        shift = max(0, min(e.at_ns for e in start.entries) - self.lead_ns)
        moved = tuple(replace(e, at_ns=e.at_ns - shift) for e in start.entries)
        for entries in (moved, start.entries) if shift else (start.entries,):
            cand = Candidate(entries, _end(entries) + self.tail_ns)
            if cand.duration_ns < start.duration_ns and self.fails(cand, "shorter run"):
                return

    def _windows(self, start: Candidate) -> None:
        for i in range(len(start.entries)):
            for _ in range(32):  # bounded: halving reaches the minimum long before
                cur = self.best
                assert cur is not None
                entry = cur.entries[i]
                if entry.for_ns is None or entry.for_ns <= self.min_window_ns:
                    break
                shorter = max(self.min_window_ns, entry.for_ns // 2 // (100 * MS) * 100 * MS)
                if not self.fails(_with_entry(cur, i, replace(entry, for_ns=shorter)), "window"):
                    break

    def _knobs(self, start: Candidate) -> None:
        for i in range(len(start.entries)):
            for knob in start.entries[i].knobs():
                for _ in range(self.max_halvings):
                    cur = self.best
                    assert cur is not None
                    entry = cur.entries[i]
                    smaller = halve(entry.params[knob])
                    if smaller is None:
                        break
                    params = {**entry.params, knob: smaller}
                    if not self.fails(
                        _with_entry(cur, i, replace(entry, params=params)), "smaller"
                    ):
                        break


def _split(items: Sequence[Entry], n: int) -> list[list[Entry]]:
    size, extra = divmod(len(items), n)
    out: list[list[Entry]] = []
    start = 0
    for i in range(n):
        end = start + size + (1 if i < extra else 0)
        out.append(list(items[start:end]))
        start = end
    return [c for c in out if c]


def _end(entries: Sequence[Entry]) -> int:
    return max((e.at_ns + (e.for_ns or 0) for e in entries), default=0)


def _with_entry(cand: Candidate, i: int, entry: Entry) -> Candidate:
    return replace(cand, entries=(*cand.entries[:i], entry, *cand.entries[i + 1 :]))


def _smaller(a: Candidate, b: Candidate) -> bool:
    """Whether `a` is simpler than `b`: fewer entries, then a shorter run, then shorter
    windows, then smaller numbers."""
    return _size(a) < _size(b)


def _size(c: Candidate) -> tuple[int, int, int, float]:
    windows = sum(e.for_ns or 0 for e in c.entries)
    numbers = sum(_magnitude(v) for e in c.entries for v in e.params.values())
    return (len(c.entries), c.duration_ns, windows, numbers)


def _magnitude(value: Any) -> float:
    if isinstance(value, bool):
        return 0.0
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(parse_duration(value))
        except ValueError:
            return 0.0
    return 0.0
