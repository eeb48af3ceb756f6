"""Admission control (the `admission_control` switch): a bounded queue in front of work
that costs, and how long a refused client should wait before it tries again.

Without it a service takes every request it is sent: under a load spike past its
capacity the requests queue in its event loop (and the mempool behind it) without
bound, each waits longer than its client does, and the stack keeps working off requests
nobody waits for long after the spike. With it, a request past `limit` in flight is
answered at once with 503 and a `Retry-After` of the time the queue ahead of it takes to
drain at the rate requests have been completing. A request also waits before its
handler starts (read and parsed by an event loop that is behind: the edge itself is
the bottleneck), which no count of handlers in flight sees; so a request is refused as
well while the loop runs more than `max_lag_ns` behind (`LoopLag`, measured by a timer
that should fire every few milliseconds), which keeps that wait bounded too.

Pure logic (the clock is passed in); the services wire it in common/http.py, the rpc and
the sequencer.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

__all__ = ["Admission", "DrainMeter", "LoopLag", "retry_after_s"]

RETRY_AFTER_MIN_S = 1  # Retry-After is whole seconds (RFC 9110)
RETRY_AFTER_MAX_S = 30


def retry_after_s(
    waiting: int, drain_per_s: float, lo: int = RETRY_AFTER_MIN_S, hi: int = RETRY_AFTER_MAX_S
) -> int:
    """Whole seconds until `waiting` requests ahead have drained at `drain_per_s`, within
    [lo, hi]; `hi` when nothing has drained lately (the queue is not moving)."""
    if waiting <= 0:
        return lo
    if drain_per_s <= 0:
        return hi
    return max(lo, min(hi, math.ceil(waiting / drain_per_s)))


@dataclass
class DrainMeter:
    """Completions per second over the last `window_ns` (a sliding window of times)."""

    window_ns: int = 2_000_000_000
    _done: deque[tuple[int, int]] = field(default_factory=deque)
    _total: int = 0

    def add(self, now_ns: int, n: int = 1) -> None:
        if n > 0:
            self._done.append((now_ns, n))
            self._total += n
        self._trim(now_ns)

    def rate(self, now_ns: int) -> float:
        self._trim(now_ns)
        return self._total * 1e9 / self.window_ns

    def _trim(self, now_ns: int) -> None:
        done, horizon = self._done, now_ns - self.window_ns
        while done and done[0][0] <= horizon:
            self._total -= done.popleft()[1]


@dataclass
class LoopLag:
    """How far an event loop runs behind: a timer due at `due_ns` that has not fired by
    `now` is `now - due_ns` late; the last one that fired was `last_ns` late."""

    due_ns: int | None = None
    last_ns: int = 0

    def fired(self, due_ns: int, now_ns: int) -> None:
        self.last_ns = max(0, now_ns - due_ns)
        self.due_ns = None

    def behind(self, now_ns: int) -> int:
        late = 0 if self.due_ns is None else now_ns - self.due_ns
        return max(self.last_ns, late)


@dataclass
class Admission:
    """At most `limit` requests in flight, none while the loop is more than `max_lag_ns`
    behind; `enter` says whether one more may start."""

    limit: int
    max_lag_ns: int = 500_000_000
    inflight: int = 0
    admitted: int = 0
    refused: int = 0
    meter: DrainMeter = field(default_factory=DrainMeter)
    lag: LoopLag = field(default_factory=LoopLag)

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError(f"an admission limit must be at least 1, got {self.limit}")

    def enter(self, now_ns: int) -> bool:
        if self.inflight >= self.limit or self.lag.behind(now_ns) > self.max_lag_ns:
            self.refused += 1
            return False
        self.inflight += 1
        self.admitted += 1
        return True

    def leave(self, now_ns: int) -> None:
        self.inflight -= 1
        self.meter.add(now_ns)

    def retry_after(self, now_ns: int) -> int:
        """Seconds a refused request should wait: the queue ahead of it drained."""
        return retry_after_s(self.inflight, self.meter.rate(now_ns))
