"""The shrinking search, with a fake `run` that fails exactly when its rule says so
(the pure logic beside the real runs): ddmin finds the culprits, windows and numbers
shrink to the boundary, flaky candidates get a second run, the budget holds."""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st
from l2chaos.durations import parse_duration
from l2chaos.shrink.search import Budget, Candidate, Entry, Outcome, Search, halve

S = 1_000_000_000


def timeline(n: int, **params: object) -> Candidate:
    entries = tuple(
        Entry(
            f"e{i}", "network.latency", at_ns=(20 + 10 * i) * S, for_ns=8 * S, params=dict(params)
        )
        for i in range(n)
    )
    return Candidate(entries, 300 * S)


class Fake:
    """Fails when `rule(candidate)`; records every call."""

    def __init__(self, rule: Callable[[Candidate], bool]) -> None:
        self.rule = rule
        self.calls: list[Candidate] = []

    def __call__(self, cand: Candidate) -> Outcome:
        self.calls.append(cand)
        return Outcome.FAILS if self.rule(cand) else Outcome.PASSES


def has(*labels: str) -> Callable[[Candidate], bool]:
    return lambda c: set(labels) <= {e.label for e in c.entries}


def search(run: Callable[[Candidate], Outcome], max_runs: int = 1000, retries: int = 0) -> Search:
    return Search(run=run, budget=Budget(max_runs, 3600.0), retries=retries)


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=1, max_value=24), st.data())
def test_ddmin_finds_exactly_the_culprits(n: int, data: st.DataObject) -> None:
    culprits = data.draw(
        st.sets(st.integers(min_value=0, max_value=n - 1), min_size=1, max_size=min(n, 3))
    )
    labels = sorted(f"e{i}" for i in culprits)
    best = search(Fake(has(*labels))).shrink(timeline(n))
    assert best is not None
    assert sorted(e.label for e in best.entries) == labels


def test_a_timeline_that_does_not_fail_again_has_nothing_to_shrink() -> None:
    fake = Fake(lambda c: False)
    s = search(fake, retries=1)
    assert s.shrink(timeline(5)) is None
    assert len(fake.calls) == 2  # a pass is run once more before it counts


def test_the_run_is_moved_earlier_and_cut_after_the_last_heal() -> None:
    best = search(Fake(has("e3"))).shrink(timeline(6))
    assert best is not None
    (entry,) = best.entries
    assert entry.at_ns == 15 * S  # the first fault at `lead`
    assert best.duration_ns == 15 * S + 8 * S + 20 * S  # `tail` after the heal
    assert entry.for_ns == 500_000_000  # then the window: down to the minimum


def test_windows_and_numbers_shrink_to_the_smallest_that_still_fails() -> None:
    def rule(c: Candidate) -> bool:
        return any(
            e.label == "e1"
            and (e.for_ns or 0) >= 2 * S
            and parse_duration(str(e.params["latency"])) >= 100_000_000
            and e.params["toxicity"] >= 0.3
            for e in c.entries
        )

    best = search(Fake(rule)).shrink(timeline(3, latency="400ms", toxicity=1.0, stream="both"))
    assert best is not None
    (entry,) = best.entries
    assert entry.for_ns == 2 * S  # 8s, 4s, 2s fail; 1s passes
    assert entry.params == {"latency": "100ms", "toxicity": 0.5, "stream": "both"}


def test_a_flaky_candidate_is_accepted_on_its_second_run() -> None:
    attempts: dict[str, int] = {}

    def flaky(c: Candidate) -> Outcome:  # the culprit alone fails every second time
        key = c.key()
        attempts[key] = attempts.get(key, 0) + 1
        if has("e2")(c) and (len(c.entries) > 1 or attempts[key] % 2 == 0):
            return Outcome.FAILS
        return Outcome.PASSES

    best = search(flaky, retries=1).shrink(timeline(4))
    assert best is not None
    assert [e.label for e in best.entries] == ["e2"]
    assert search(flaky, retries=0).shrink(timeline(4)) is not None


def test_the_budget_stops_the_search_with_the_smallest_failure_so_far() -> None:
    fake = Fake(has("e7"))
    s = search(fake, max_runs=4)
    best = s.shrink(timeline(16))
    assert len(fake.calls) == 4
    assert s.spent == "4 runs (--max-runs)"
    assert best is not None
    assert "e7" in {e.label for e in best.entries}
    assert len(best.entries) <= 8


def test_time_budget_and_invalid_candidates() -> None:
    now = [0.0]

    def run(c: Candidate) -> Outcome:
        now[0] += 100.0
        if len(c.entries) == 2:
            return Outcome.INVALID  # validation refused it: it never ran, costs nothing
        return Outcome.FAILS if has("e0")(c) else Outcome.PASSES

    s = Search(run=run, budget=Budget(100, 250.0, clock=lambda: now[0]))
    best = s.shrink(timeline(4))
    assert s.spent == "300s (--max-time)"
    assert s.budget.runs == 1  # the two halves were refused, not run
    assert best == timeline(4)


def test_halve() -> None:
    assert [halve(v) for v in ("300ms", "1ms", 5, 1, 0.5, 0.01, True, "both", [1, 2])] == [
        "150ms", None, 2, None, 0.25, None, None, None, None,
    ]  # fmt: skip
