"""What the timeline's triggers wait for while a run goes: block heights and events.

`ChainHeights` is fed every observed height (the probe loop publishes each sample's;
see `ProbeLoop.subscribe`) and answers "wait until height N". Near the target it polls
the height itself every few milliseconds, so a `{block: N}` trigger fires within a
block of N although the probe loop samples only every 250 ms.

`EventFeed` is fed named events (the stack's event stream, `l2chaos.eventsource`, and
the probe-derived ones below) and answers "wait for the first X from time T on".

Both work on the run's clock: offsets in ns from time zero.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from .jsonfields import fields_json

__all__ = [
    "ChainHeights",
    "EventFeed",
    "HeightSeen",
    "ProbeEvents",
    "SeenEvent",
    "Signals",
    "probe_event_names",
]

# Heights are polled this often once the target is this close (by the observed rate).
_FAST_POLL_S = 0.02
_NEAR_S = 0.6
_SLOW_WAIT_S = 0.25
_KEEP_EVENTS = 10_000


@dataclass(frozen=True)
class HeightSeen:
    height: int
    mono_ns: int


class ChainHeights:
    """The latest observed block height, and waiting for a height."""

    def __init__(self, poll: Callable[[], int | None] | None = None) -> None:
        self._poll = poll
        self._cond = threading.Condition()
        self._first: HeightSeen | None = None
        self._last: HeightSeen | None = None

    def observe(self, height: int | None, mono_ns: int | None = None) -> None:
        if height is None:
            return
        seen = HeightSeen(height, mono_ns if mono_ns is not None else time.monotonic_ns())
        with self._cond:
            if self._last is not None and seen.mono_ns < self._last.mono_ns:
                return  # an older sample arriving late
            if self._first is None or height < self._first.height:
                self._first = seen  # (re)start the rate after a rollback
            self._last = seen
            self._cond.notify_all()

    def latest(self) -> int | None:
        with self._cond:
            return None if self._last is None else self._last.height

    def fresh(self) -> int | None:
        """The height polled now (the latest observed when there is no poll)."""
        if self._poll is not None:
            self.observe(self._poll(), time.monotonic_ns())
        return self.latest()

    def _eta_s(self, target: int) -> float | None:
        """Seconds until `target` at the observed rate (None: no rate yet)."""
        first, last = self._first, self._last
        if first is None or last is None or last.height <= first.height:
            return None
        rate = (last.height - first.height) / ((last.mono_ns - first.mono_ns) / 1e9)
        return (target - last.height) / rate

    def wait_for(self, target: int, stop: threading.Event) -> HeightSeen | None:
        """Block until a height >= target is observed; None when `stop` is set first."""
        for _ in range(100_000_000):  # bounded; stop ends it
            with self._cond:
                last = self._last
                if last is not None and last.height >= target:
                    return last
                eta = self._eta_s(target)
            if stop.is_set():
                return None
            if self._poll is not None and eta is not None and eta <= _NEAR_S:
                self.observe(self._poll(), time.monotonic_ns())
                stop.wait(_FAST_POLL_S)
                continue
            with self._cond:
                self._cond.wait(_SLOW_WAIT_S if eta is None else min(_SLOW_WAIT_S, eta / 2))
        return None


@dataclass(frozen=True)
class SeenEvent:
    name: str
    offset_ns: int  # when it happened (its own timestamp when the source has one)
    seen_offset_ns: int  # when the harness saw it
    block: int | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {**fields_json(self, omit=("details",), rename={"name": "event"}), **self.details}


class EventFeed:
    """Named events on the run's clock; only the names some trigger waits for are kept."""

    def __init__(self, t0_ns: int, wanted: Collection[str]) -> None:
        self._t0 = t0_ns
        self._wanted = set(wanted)
        self._cond = threading.Condition()
        self._seen: dict[str, deque[SeenEvent]] = {n: deque(maxlen=_KEEP_EVENTS) for n in wanted}

    @property
    def wanted(self) -> set[str]:
        return set(self._wanted)

    def publish(
        self,
        name: str,
        t_ns: int,
        *,
        block: int | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """An event named `name` that happened at `t_ns` (UTC ns)."""
        if name not in self._wanted:
            return
        event = SeenEvent(name, t_ns - self._t0, time.time_ns() - self._t0, block, details or {})
        with self._cond:
            self._seen[name].append(event)
            self._cond.notify_all()

    def wait_for(self, name: str, not_before_ns: int, stop: threading.Event) -> SeenEvent | None:
        """The first `name` event at or after `not_before_ns`; None when `stop` is set first."""
        for _ in range(100_000_000):  # bounded; stop ends it
            with self._cond:
                for event in self._seen.get(name, ()):
                    if event.offset_ns >= not_before_ns:
                        return event
                if stop.is_set():
                    return None
                self._cond.wait(_SLOW_WAIT_S)
        return None


class _Sample(Protocol):
    t_ns: int
    mono_ns: int
    ready: dict[str, bool]
    block_height: int | None
    order_ok: bool | None


def probe_event_names(services: Collection[str], has_order_probe: bool) -> list[str]:
    """Events the probe loop reports for a stack: readiness flips of each service and of
    the order round-trip."""
    names = [f"{kind}.{s}" for s in services for kind in ("not_ready", "ready")]
    if has_order_probe:
        names += ["order_probe_failed", "order_probe_ok"]
    return names


class ProbeEvents:
    """Turns probe samples into events: `not_ready.<service>` when a service stops being
    ready, `ready.<service>` when it is ready again, `order_probe_failed` /
    `order_probe_ok` when the order round-trip starts failing / works again."""

    def __init__(self, feed: EventFeed) -> None:
        self._feed = feed
        self._ready: dict[str, bool] = {}
        self._order: bool | None = None

    def __call__(self, sample: _Sample) -> None:
        for service, ok in sample.ready.items():
            before = self._ready.get(service)
            self._ready[service] = ok
            if before is not None and before != ok:
                name = f"{'ready' if ok else 'not_ready'}.{service}"
                self._feed.publish(name, sample.t_ns, block=sample.block_height)
        if sample.order_ok is not None:
            if self._order is not None and self._order != sample.order_ok:
                name = "order_probe_ok" if sample.order_ok else "order_probe_failed"
                self._feed.publish(name, sample.t_ns, block=sample.block_height)
            self._order = sample.order_ok


@dataclass
class Signals:
    """What a timeline's triggers can wait for during one run."""

    heights: ChainHeights | None = None
    events: EventFeed | None = None
    baseline_height: int | None = None
