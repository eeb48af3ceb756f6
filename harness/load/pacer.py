"""The Locust side of an open-loop rate (`rate.py`): one pacer per worker process.

From the test's start (`start`, when users spawn) the pacer wakes every `TICK_S`, adds its share of the target rate over the time since
its last tick to an accumulator and issues the whole arrivals as tokens; a user takes
one token per step (`take`) instead of thinking. A token nobody took within
`max_lag` is dropped and counted. Each whole second since the run's time zero is
written to ``rate-<worker>.jsonl`` once it is over (`flush`), and the rest at `close`.
Imported by the locustfile only (gevent).
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable
from pathlib import Path
from time import time_ns

import gevent
from gevent.event import Event

from .rate import RateCounter, RatePlan, RateSecond

__all__ = ["Pacer"]

TICK_S = 0.005


class Pacer:
    """Issues one worker's share of the target arrivals; users take them."""

    def __init__(self, plan: RatePlan, t0_ns: int, share: float, out: Path) -> None:
        self.plan = plan
        self.t0_ns = t0_ns
        self.share = share  # of the whole rate; the master rebalances it
        self.lag_s = plan.max_lag_ns / 1e9
        self.counter = RateCounter()
        self._tokens: deque[float] = deque()  # issue times, seconds since t0
        self._wake = Event()
        self._acc = 0.0
        self._out = open(out, "w", encoding="utf-8")  # noqa: SIM115
        self._closed = False
        self._greenlet: gevent.Greenlet[[], None] | None = None

    def start(self) -> None:
        """Start issuing arrivals (at the test's start, when users spawn)."""
        if self._greenlet is None and not self._closed:
            self._greenlet = gevent.spawn(self._run)

    def _now(self) -> float:
        return (time_ns() - self.t0_ns) / 1e9

    def _run(self) -> None:
        last = self._now()
        while not self._closed:  # ends at close(), with the Locust process
            gevent.sleep(TICK_S)
            now = self._now()
            self.tick(last, now)
            last = now

    def tick(self, last: float, now: float) -> None:
        """Issue the arrivals due over (last, now]; drop the tokens past their lag."""
        start = max(last, 0.0)  # no arrivals before the run's time zero
        if now > start:
            plan = self.plan
            due = self.share * (plan.target(start) + plan.target(now)) / 2 * (now - start)
            self.counter.add_target(now, due)
            self._acc += due
            n = int(self._acc)
            if n:
                self._acc -= n
                self._tokens.extend([now] * n)
                self.counter.offered(now, n)
        tokens = self._tokens
        while tokens and now - tokens[0] > self.lag_s:
            tokens.popleft()
            self.counter.dropped(now)
        if tokens:
            self._wake.set()

    def take(self, stopping: Callable[[], bool]) -> bool:
        """Block until a token is free and take it (True), or until `stopping` (False)."""
        tokens = self._tokens
        while not stopping() and not self._closed:
            if tokens:
                tokens.popleft()
                self.counter.achieved(self._now())
                return True
            self._wake.clear()
            self._wake.wait(0.1)
        return False

    def flush(self) -> None:
        """Write the seconds that are over."""
        if not self._closed:
            self._write(self.counter.take_before(self._now()))

    def _write(self, seconds: list[RateSecond]) -> None:
        for s in seconds:
            self._out.write(json.dumps(s.to_json()) + "\n")
        self._out.flush()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
        self._wake.set()
        self._write(self.counter.take_before(float("inf")))
        self._out.close()
