"""One timeline entry: ``{at, fault, target, for, with, name}`` → a `FaultUse`.

The scenario's timeline and a nemesis's list of faults to draw from are both made of
these entries, so both validate them here: when it fires (`at`, a time or a trigger:
`l2chaos.triggers`), the fault's name against the registry, its target against the
stack, its `with` against the fault's parameter model (scaled by the time scale), and
its hooks against the stack's. Every problem is one `ScenarioError` naming the file,
line, field path and what is allowed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from l2chaos.faults.base import Fault, Target, TargetKind, Window

from .durations import Duration, format_duration, parse_duration
from .eventsource import stack_event_names
from .params import JsonValue, Where, bind, scaled, to_json
from .registry import faults as fault_registry
from .safety import require_exec
from .stackspec import StackSpec, parse_link
from .triggers import AtTime, Trigger, parse_at
from .yamlsrc import LocList, line_of

__all__ = ["FaultUse", "parse_fault_entry"]

_ENTRY_KEYS = ("at", "fault", "target", "for", "with", "name")
_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+-]{0,79}")


@dataclass(frozen=True)
class FaultUse:
    """One timeline entry: a constructed fault and when it acts (after time scaling)."""

    index: int
    label: str
    fault: Fault[Any]
    at_ns: int
    for_ns: int | None  # None: instant; heal at `at` (+ the inject's own time)
    line: int | None = None
    # When it fires; None or AtTime: at `at_ns`. For the other triggers `at_ns` is 0 and
    # the time is known only when it fires.
    trigger: Trigger | None = None

    @property
    def timed(self) -> bool:
        """Fires at a time known before the run (not at a block, event or other entry)."""
        return self.trigger is None or isinstance(self.trigger, AtTime)

    @property
    def name(self) -> str:
        return self.fault.name

    @property
    def end_ns(self) -> int:
        return self.at_ns + (self.for_ns or 0)

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "index": self.index,
            "label": self.label,
            "fault": self.name,
            "target": str(self.fault.target),
            "at_ns": self.at_ns,
            "for_ns": self.for_ns,
            "params": to_json(self.fault.p),
            "trigger": None if self.trigger is None else self.trigger.to_json(),
        }


def parse_fault_entry(
    entry: Any,
    where: Where,
    spec: StackSpec,
    scale: float = 1.0,
    *,
    index: int = 0,
    container: Any = None,
    need_at: bool = True,
    window_given: bool = False,
) -> FaultUse:
    """Validate one `{at, fault, target, for, with, name}` entry and construct its fault.

    `window_given`: the caller decides how long the fault lasts (a nemesis's hold time,
    a test's `with` block), so a fault that needs a window does not need `for`."""
    if not isinstance(entry, dict):
        raise where.error(
            f"expected a mapping with at, fault, target, for and with, got {entry!r}",
            container,
            index,
        )
    for key in entry:
        if key not in _ENTRY_KEYS:
            raise where.child(key).error(
                f"unknown key {key!r}; allowed: {', '.join(_ENTRY_KEYS)}", entry, key
            )
    if "fault" not in entry:
        raise where.error("missing required key 'fault' (a name such as network.latency)", entry)
    if need_at and "at" not in entry:
        raise where.error("missing required key 'at' (when to inject, e.g. 30s)", entry)
    fname = entry["fault"]
    catalogue = fault_registry()
    if fname not in catalogue:
        raise where.child("fault").error(_unknown_fault(fname, catalogue), entry, "fault")
    cls = catalogue[fname]
    if cls.runs_commands:
        require_exec(
            fname, file=where.file, line=line_of(entry, "fault"), field=where.child("fault").path
        )
    trigger: Trigger | None = None
    if "at" in entry:
        trigger = parse_at(
            entry,
            where,
            scale,
            has_heights="block_height" in spec.probes,
            events=stack_event_names(spec),
        )
    at_ns = trigger.at_ns if isinstance(trigger, AtTime) else 0  # scaled
    target = _target(entry, where, cls, spec)
    params = scaled(bind(cls.params_model(), entry.get("with"), where.child("with")), scale)
    window: Duration | None = None
    if "for" in entry:
        if cls.window is Window.INSTANT:
            raise where.child("for").error(
                f"{fname} happens at an instant and takes no 'for'", entry, "for"
            )
        window = Duration(_entry_duration(entry, "for", where)) * scale
    fault = cls(target, params, window)
    implied = fault.implied_duration()
    if window is None and implied is not None:
        fault.duration = window = implied
    if window is None and cls.window is Window.REQUIRED and not window_given:
        raise where.error(f"{fname} lasts over a window: give 'for' (e.g. for: 10s)", entry)
    fault.prepare(spec, where.child("with"), scale)
    problem = fault.validate(set(spec.services), set(spec.link_names))
    if problem:
        raise where.error(problem, entry)
    for hook in cls.needs_hooks:
        if hook not in spec.hooks:
            raise where.child("fault").error(
                f"{fname} needs the stack hook {hook!r}, which stack {spec.name!r} does not provide "
                f"(it has: {', '.join(spec.hooks) or 'none'})",
                entry,
                "fault",
            )
    if isinstance(trigger, AtTime):  # as written, before time scaling
        default = format_duration(parse_duration(entry["at"]))
    else:
        default = "0s" if trigger is None else trigger.short()
    label = entry.get("name", f"{fname}@{default}")
    if not isinstance(label, str) or not _LABEL.fullmatch(label):
        raise where.child("name").error(
            "expected a name of ASCII letters, digits, '.', '_', ':', '@', '+' and '-' "
            f"(at most 80), got {label!r}",
            entry,
            "name",
        )
    return FaultUse(
        index=index,
        label=label,
        fault=fault,
        at_ns=at_ns,
        for_ns=None if window is None else window.ns,
        line=getattr(entry, "line", None),
        trigger=trigger,
    )


def _unknown_fault(fname: object, catalogue: Mapping[str, object]) -> str:
    names = list(catalogue)
    family = str(fname).split(".", 1)[0] if isinstance(fname, str) else ""
    near = [n for n in names if n.startswith(family + ".")] if family else []
    shown = ", ".join(near or names)
    return f"unknown fault {fname!r}; {'in that family: ' if near else 'known: '}{shown} (see l2chaos list faults)"


def _entry_duration(
    entry: Mapping[str, Any], key: str, where: Where, *, allow_zero: bool = False
) -> int:
    v = entry[key]
    try:
        ns = parse_duration(v)
    except ValueError as exc:
        raise where.child(key).error(str(exc), entry, key) from None
    if ns < 0 or (ns == 0 and not allow_zero):
        raise where.child(key).error(
            f"must be {'zero or more' if allow_zero else 'a positive duration'}, got {v!r}",
            entry,
            key,
        )
    return ns


def _target(
    entry: Mapping[str, Any], where: Where, cls: type[Fault[Any]], spec: StackSpec
) -> Target:
    kind = cls.target_kind
    raw = entry.get("target")
    w = where.child("target")
    services = list(spec.services)
    links = spec.link_names
    if kind is TargetKind.NONE:
        if raw is not None:
            raise w.error(
                f"{cls.name} acts on the whole stack and takes no target", entry, "target"
            )
        return Target(kind)
    if raw is None:
        wanted = {
            TargetKind.SERVICE: f"a service ({', '.join(services)})",
            TargetKind.LINK: f"a link ({', '.join(links)})",
            TargetKind.LINKS: f"a list of links ({', '.join(links)})",
            TargetKind.SERVICE_OR_LINKS: "a service or a list of links",
        }[kind]
        raise where.error(f"{cls.name} needs a target: {wanted}", entry)
    if kind is TargetKind.SERVICE:
        if raw not in spec.services:
            raise w.error(
                f"unknown service {raw!r}; services: {', '.join(services)}", entry, "target"
            )
        return Target(kind, services=(raw,), text=raw)
    if kind is TargetKind.SERVICE_OR_LINKS and isinstance(raw, str) and raw in spec.services:
        own = tuple(lk.name for lk in spec.links_of(raw))
        if not own:
            raise w.error(f"service {raw!r} has no links", entry, "target")
        return Target(kind, services=(raw,), links=own, text=raw)
    items = raw if isinstance(raw, list) else [raw]
    if kind is TargetKind.LINK and isinstance(raw, list):
        raise w.error(f"{cls.name} acts on one link, got a list", entry, "target")
    names: list[str] = []
    for j, item in enumerate(items):
        parsed = parse_link(item) if isinstance(item, str) else None
        where_item = w.child(j) if isinstance(raw, list) else w
        cont, key = (raw, j) if isinstance(raw, LocList) else (entry, "target")
        if parsed is None:
            hint = " or a service" if kind is TargetKind.SERVICE_OR_LINKS else ""
            raise where_item.error(
                f"expected a link such as 'ui-api->rpc'{hint}, got {item!r}", cont, key
            )
        name = f"{parsed[0]}->{parsed[1]}"
        if name not in links:
            raise where_item.error(f"unknown link {name!r}; links: {', '.join(links)}", cont, key)
        if name in names:
            raise where_item.error(f"link {name!r} listed twice", cont, key)
        names.append(name)
    return Target(kind, links=tuple(names), text=", ".join(names))
