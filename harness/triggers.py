"""When a timeline entry fires: its `at`.

    at: 30s                                          a time after the run's time zero
    at: {block: 1200}                                when the chain reaches height 1200
    at: {block: +50}                                 50 blocks after the baseline height
    at: {after: db-restart, phase: healed, delay: 5s}  5 s after another entry's heal ended
    at: {event: funding_tick, delay: 1s, not_before: 20s}  the first such event from 20 s on

`parse_at` reads one `at` into a `Trigger`; `check_triggers` rejects, over the whole
timeline, triggers that can never fire (an unknown entry, a cycle of `after`, an `after`
whose earliest time is past the end of the run). Time scaling applies to times and
delays, never to block numbers. What waits for a trigger at run time is in
`l2chaos.signals`; the timeline plays them.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .durations import format_duration, parse_duration
from .errors import ScenarioError
from .jsonfields import fields_json
from .params import Where
from .yamlsrc import PlusInt, line_of

__all__ = [
    "PHASES",
    "AfterFault",
    "AtBlock",
    "AtTime",
    "OnEvent",
    "Trigger",
    "check_triggers",
    "parse_at",
]

PHASES = ("injected", "healed")
_MAX_BLOCK = 10**12
_FORMS = (
    "a time (30s), {block: 1200}, {block: +50} (after the baseline height), "
    "{after: <entry name>, phase: injected|healed, delay: 5s} or {event: <name>, delay: 1s}"
)


@dataclass(frozen=True)
class AtTime:
    at_ns: int  # scaled

    def to_json(self) -> dict[str, Any]:
        return {"kind": "time", "at_ns": self.at_ns}

    def describe(self) -> str:
        return format_duration(self.at_ns)

    def short(self) -> str:
        return format_duration(self.at_ns)


@dataclass(frozen=True)
class AtBlock:
    block: int
    relative: bool  # to the baseline height (the last height seen before time zero)
    line: int | None = field(default=None, compare=False)  # where `block:` is written

    def target(self, baseline: int) -> int:
        return baseline + self.block if self.relative else self.block

    def to_json(self) -> dict[str, Any]:
        return {"kind": "block", "block": self.block, "relative": self.relative}

    def describe(self) -> str:
        return f"block +{self.block}" if self.relative else f"block {self.block}"

    def short(self) -> str:
        return f"block+{self.block}" if self.relative else f"block{self.block}"


@dataclass(frozen=True)
class AfterFault:
    label: str
    phase: Literal["injected", "healed"]
    delay_ns: int  # scaled

    def to_json(self) -> dict[str, Any]:
        return {"kind": "after", **fields_json(self, rename={"label": "after"})}

    def describe(self) -> str:
        lead = f"{format_duration(self.delay_ns)} after" if self.delay_ns else "after"
        return f"{lead} {self.label} {self.phase}"

    def short(self) -> str:
        return f"after:{self.label}"


@dataclass(frozen=True)
class OnEvent:
    event: str
    delay_ns: int = 0  # scaled
    not_before_ns: int = 0  # scaled; from the run's time zero

    def to_json(self) -> dict[str, Any]:
        return {"kind": "event", **fields_json(self)}

    def describe(self) -> str:
        text = f"event {self.event}"
        if self.not_before_ns:
            text += f" from {format_duration(self.not_before_ns)}"
        if self.delay_ns:
            text += f" +{format_duration(self.delay_ns)}"
        return text

    def short(self) -> str:
        return f"event:{self.event}"


Trigger = AtTime | AtBlock | AfterFault | OnEvent


# ------------------------------------------------------------------------- parsing


def parse_at(
    entry: Mapping[str, Any],
    where: Where,
    scale: float,
    *,
    has_heights: bool,
    events: Collection[str],
) -> Trigger:
    """`entry["at"]` → a Trigger. `has_heights`: the stack probes its block height;
    `events`: the event names the stack reports (its event stream and its probes)."""
    raw = entry["at"]
    w = where.child("at")
    if isinstance(raw, str):
        return AtTime(round(_duration(raw, w, entry, "at", allow_zero=True) * scale))
    if not isinstance(raw, dict):
        raise w.error(f"expected {_FORMS}, got {raw!r}", entry, "at")
    forms = [k for k in ("block", "after", "event") if k in raw]
    if len(forms) != 1:
        raise w.error(f"expected {_FORMS}, got {dict(raw)!r}", entry, "at")
    form = forms[0]
    allowed = {
        "block": ("block",),
        "after": ("after", "phase", "delay"),
        "event": ("event", "delay", "not_before"),
    }[form]
    for key in raw:
        if key not in allowed:
            raise w.child(key).error(
                f"unknown key {key!r} in an `at: {{{form}: ...}}` trigger; allowed: {', '.join(allowed)}",
                raw,
                key,
            )
    if form == "block":
        return _block(raw, w, has_heights)
    delay = round(_duration(raw.get("delay", "0s"), w.child("delay"), raw, "delay", True) * scale)
    if form == "after":
        label = raw["after"]
        if not isinstance(label, str) or not label:
            raise w.child("after").error(
                f"expected the name of another timeline entry, got {label!r}", raw, "after"
            )
        phase = raw.get("phase", "healed")
        if phase not in PHASES:
            raise w.child("phase").error(
                f"expected one of {', '.join(PHASES)}, got {phase!r}", raw, "phase"
            )
        return AfterFault(label, phase, delay)
    name = raw["event"]
    if not isinstance(name, str) or name not in events:
        known = ", ".join(sorted(events)) or "none (the stack declares no `events:` and no probes)"
        raise w.child("event").error(
            f"unknown event {name!r}; the stack reports: {known}", raw, "event"
        )
    not_before = _duration(
        raw.get("not_before", "0s"), w.child("not_before"), raw, "not_before", True
    )
    return OnEvent(name, delay, round(not_before * scale))


def _block(raw: Mapping[str, Any], w: Where, has_heights: bool) -> AtBlock:
    value = raw["block"]
    relative = isinstance(value, PlusInt)
    if isinstance(value, str) and value.strip().startswith("+") and value.strip()[1:].isdigit():
        value, relative = int(value.strip()[1:]), True
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _MAX_BLOCK:
        raise w.child("block").error(
            f"expected a block height from 1 (e.g. 1200), or +N blocks after the baseline (e.g. +50), got {value!r}",
            raw,
            "block",
        )
    if not has_heights:
        raise w.child("block").error(
            "the stack does not probe its block height (stack.yaml `probes.block_height`), "
            "so a block trigger can never fire",
            raw,
            "block",
        )
    return AtBlock(int(value), relative, line_of(raw, "block"))


def _duration(value: Any, w: Where, container: Any, key: str, allow_zero: bool = False) -> int:
    try:
        ns = parse_duration(value)
    except ValueError as exc:
        raise w.error(str(exc), container, key) from None
    if ns < 0 or (ns == 0 and not allow_zero):
        raise w.error(
            f"must be {'zero or more' if allow_zero else 'positive'}, got {value!r}", container, key
        )
    return ns


# ------------------------------------------------------------------------- whole timeline


@dataclass(frozen=True)
class _Entry:
    """What `check_triggers` needs of a timeline entry."""

    index: int
    label: str
    trigger: Trigger
    for_ns: int | None


def check_triggers(
    entries: Sequence[tuple[int, str, Trigger, int | None]],
    duration_ns: int,
    where: Where,
    raw: Any,
) -> dict[int, int | None]:
    """Reject `after:` triggers that can never fire; return each entry's earliest
    possible inject time (ns from time zero; None when it depends on the chain).

    `entries`: (index, label, trigger, for_ns) per timeline entry, scaled."""
    items = [_Entry(*e) for e in entries]
    by_label = {e.label: e for e in items}
    for e in items:
        t = e.trigger
        if not isinstance(t, AfterFault):
            continue
        if t.label not in by_label:
            raise _at_error(
                where,
                e,
                raw,
                "after",
                f"no timeline entry is named {t.label!r}; names: {', '.join(by_label) or 'none'}",
            )
        if t.label == e.label:
            raise _at_error(where, e, raw, "after", "an entry cannot wait for itself")
    earliest: dict[int, int | None] = {}
    for e in items:
        earliest[e.index] = _earliest(e, by_label, [], where, raw)
        when = earliest[e.index]
        if when is not None and not isinstance(e.trigger, AtTime) and when >= duration_ns:
            raise _at_error(
                where,
                e,
                raw,
                None,
                f"can never fire: {e.trigger.describe()} is at the earliest {format_duration(when)} "
                f"after time zero, at or after the end of the run ({format_duration(duration_ns)})",
            )
    return earliest


def _earliest(
    e: _Entry, by_label: Mapping[str, _Entry], path: list[str], where: Where, raw: Any
) -> int | None:
    t = e.trigger
    if isinstance(t, AtTime):
        return t.at_ns
    if isinstance(t, AtBlock):
        return None
    if isinstance(t, OnEvent):
        return t.not_before_ns + t.delay_ns
    if e.label in path:
        cycle = " -> ".join([*path[path.index(e.label) :], e.label])
        raise _at_error(where, e, raw, "after", f"`after` references form a cycle: {cycle}")
    other = by_label[t.label]
    base = _earliest(other, by_label, [*path, e.label], where, raw)
    if base is None:
        # the chain decides when; the delays still add up
        return None
    if t.phase == "healed":
        base += other.for_ns or 0
    return base + t.delay_ns


def _at_error(where: Where, e: _Entry, raw: Any, key: str | None, problem: str) -> ScenarioError:
    entry = raw[e.index] if isinstance(raw, list) and e.index < len(raw) else None
    w = where.child(e.index).child("at")
    at = entry.get("at") if isinstance(entry, dict) else None
    if key is not None and isinstance(at, dict):
        return w.child(key).error(problem, at, key)
    return w.error(problem, entry, "at")
