"""Scenario files: load, override, validate, scale.

`load_scenario(path, overrides=...)` reads a scenario YAML, applies command-line
overrides (``--set timeline[0].at=10s``, ``--profile``, ``--seed`` ...), validates the
whole thing before anything starts, applies the time scale, and returns a `Scenario`
whose faults are already constructed with bound parameters. Every problem is one
`ScenarioError` naming the file, the line, the field path and what is allowed.

The load section is validated by `l2chaos.load`, the invariants, `sometimes` and
`expect` sections by `l2chaos.invariants`; this module owns the rest.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .durations import format_duration, parse_duration
from .errors import InputError, ScenarioError, StackSpecError
from .fault_entry import FaultUse, parse_fault_entry
from .invariants.coverage import SometimesRule, parse_sometimes
from .invariants.expectations import Expectation, parse_expect
from .invariants.uses import InvariantUse, parse_invariants
from .load.plan import LoadPlan, parse_load
from .params import JsonValue, Where, to_json
from .rundir.scenario import CheckerUse, ResolvedScenario, StackUse
from .safety import Trust, trusting
from .stackspec import NotAStackFile, StackRun, StackSpec, resolve_stack
from .triggers import check_triggers
from .yamlsrc import LocDict, load_yaml, load_yaml_text

__all__ = [
    "FaultUse",  # re-exported: the timeline's entries (l2chaos.fault_entry)
    "Scenario",
    "apply_overrides",
    "load_scenario",
    "load_scenario_text",
    "parse_fault_entry",
    "parse_set_value",
    "parse_stack_section",
]

BACKENDS = ("auto", "local", "docker")
# Names reach file names, result.json, junit.xml and terminals: ASCII only (no look-alike
# letters), no control characters, bounded length.
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,79}")
_MAX_SEED = 2**63 - 1
# Below this a run's schedule collapses (a 10 s fault becomes 0.1 s at 0.01).
MIN_TIME_SCALE = 0.01
MAX_SPAWN_RATE = 10_000.0  # load.spawn_rate's own bound
MAX_TIME_SCALE = 100.0
_TOP_KEYS = (
    "name", "description", "tags", "seed", "stack", "backend", "duration", "time_scale",
    "load", "timeline", "invariants", "sometimes", "expect",
)  # fmt: skip
_STACK_KEYS = ("ref", "profile", "switches", "settings")
# An instant fault still occupies its resources for a moment (the action itself).
_INSTANT_NS = 1_000_000


@dataclass(frozen=True)
class Scenario:
    """A validated scenario, ready to run."""

    path: Path | None
    name: str
    description: str
    tags: tuple[str, ...]
    seed: int
    stack: StackRun
    stack_ref: str
    backend: str
    duration_ns: int
    time_scale: float
    load: LoadPlan | None  # None: no load
    timeline: tuple[FaultUse, ...]
    invariants: tuple[InvariantUse, ...]
    sometimes: tuple[SometimesRule, ...]
    expect: Mapping[str, Expectation]
    overrides: tuple[str, ...] = field(default_factory=tuple)

    @property
    def profile(self) -> str | None:
        return self.stack.profile

    def resolved(self) -> ResolvedScenario:
        """What the runner writes as scenario.resolved.json (checkers read it back)."""
        return ResolvedScenario(
            name=self.name,
            description=self.description,
            tags=list(self.tags),
            source=str(self.path) if self.path else None,
            overrides=list(self.overrides),
            seed=self.seed,
            profile=self.profile,
            stack=StackUse(
                ref=self.stack_ref,
                name=self.stack.spec.name,
                path=str(self.stack.spec.path),
                profile=self.profile,
                switches=dict(self.stack.switches),
                settings={str(k): _jsonable(v) for k, v in self.stack.settings.items()},
            ),
            backend=self.backend,
            duration_ns=self.duration_ns,
            time_scale=self.time_scale,
            load=self.load.to_json() if self.load is not None else None,
            timeline=[f.to_json() for f in self.timeline],
            invariants=[CheckerUse(i.name, to_json(i.params)) for i in self.invariants],
            sometimes=[s.to_json() for s in self.sometimes],
            expect={k: v.to_json() for k, v in self.expect.items()},
        )


def _jsonable(obj: object) -> JsonValue:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


# ------------------------------------------------------------------------ overrides

_TOKEN = re.compile(r"([^\[\]]*)((?:\[\d+\])*)")


def _split_path(path: str) -> list[str | int]:
    """``timeline[0].with.latency`` → ["timeline", 0, "with", "latency"]."""
    parts: list[str | int] = []
    for token in path.split("."):
        m = _TOKEN.fullmatch(token)
        if m is None or not (m.group(1) or m.group(2)):
            raise ValueError(path)
        if m.group(1):
            parts.append(int(m.group(1)) if m.group(1).isdigit() else m.group(1))
        parts.extend(int(x) for x in re.findall(r"\[(\d+)\]", m.group(2)))
    return parts


def parse_set_value(key: str, raw: str, file: str | None = None) -> Any:
    """The VALUE of ``--set KEY=VALUE``: a YAML scalar or flow collection (``30s`` stays
    a string, ``5`` is an int, ``[a, b]`` a list), read by the same bounded loader as a
    scenario. Shared by every command that takes ``--set``."""
    if not raw.strip():
        return ""
    try:
        value = load_yaml_text(raw, "--set")
    except InputError as exc:
        hint = "; quote it to pass a string" if exc.problem.startswith("invalid YAML") else ""
        raise ScenarioError(f"--set {key}: {exc.problem}{hint}", file=file) from None
    return _plain(value)


def parse_stack_settings(spec: StackSpec, pairs: Sequence[str]) -> dict[str, Any]:
    """``--set NAME=VALUE`` pairs naming a stack's own settings (a command that brings a
    stack up without a scenario), each value as the stack gets it: parsed by
    `parse_set_value` and checked by its `SettingSpec` as a scenario's stack.settings are."""
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        setting = spec.settings.get(name)
        if not sep or setting is None:
            raise InputError(
                f"expected NAME=VALUE with NAME one of {', '.join(spec.settings)}, got {pair!r}",
                field="--set",
            )
        try:
            out[name] = setting.coerce(parse_set_value(name, raw))
        except ValueError as exc:
            raise InputError(f"{name}: {exc}", field="--set") from None
    return out


def _plain(value: Any) -> Any:
    """Without the --set text's line numbers (they would point into the scenario)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def apply_overrides(doc: Any, overrides: Sequence[str], file: str) -> None:
    """Apply ``KEY=VALUE`` overrides (dotted paths, ``[i]`` for list items) in place.

    Values are parsed as YAML scalars (``30s`` stays a string, ``5`` is an int)."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ScenarioError(f"--set expects KEY=VALUE, got {item!r}", file=file)
        try:
            parts = _split_path(key.strip())
        except ValueError:
            raise ScenarioError(
                f"--set {key!r}: not a field path (use dots and [i], e.g. timeline[0].at)",
                file=file,
            ) from None
        value = parse_set_value(key.strip(), raw, file)
        node = doc
        for i, part in enumerate(parts[:-1]):
            node = _descend(node, part, parts[: i + 1], file)
        _assign(node, parts[-1], value, parts, file)


def _descend(node: Any, part: str | int, trail: list[str | int], file: str) -> Any:
    shown = _show(trail)
    if isinstance(part, int):
        if not isinstance(node, list) or not 0 <= part < len(node):
            raise ScenarioError(f"--set {shown}: no such list item", file=file)
        return node[part]
    if not isinstance(node, dict):
        raise ScenarioError(f"--set {shown}: the parent is not a mapping", file=file)
    if part not in node or node[part] is None:
        child = LocDict()
        child.line = getattr(node, "line", 0)
        child.key_lines = {}
        node[part] = child
    return node[part]


def _assign(node: Any, part: str | int, value: Any, trail: list[str | int], file: str) -> None:
    if isinstance(part, int):
        if not isinstance(node, list) or not 0 <= part < len(node):
            raise ScenarioError(f"--set {_show(trail)}: no such list item", file=file)
        node[part] = value
    elif isinstance(node, dict):
        node[part] = value
    else:
        raise ScenarioError(f"--set {_show(trail)}: the parent is not a mapping", file=file)


def _show(trail: Sequence[str | int]) -> str:
    out = ""
    for p in trail:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
    return out


# ------------------------------------------------------------------------ validation


def load_scenario(
    path: str | Path,
    overrides: Sequence[str] = (),
    *,
    profile: str | None = None,
    time_scale: float | None = None,
    trust: Trust | None = None,
) -> Scenario:
    """Read, override, validate and scale a scenario file. `trust` is what the user
    allowed on the command line (--allow-exec, --allow-target); None allows nothing."""
    p = Path(path)
    doc = load_yaml(p, what="a scenario (a YAML file)")
    with trusting(trust):
        return _build(doc, str(p), p, overrides, profile, time_scale)


def load_scenario_text(
    text: str,
    name: str = "<scenario>",
    overrides: Sequence[str] = (),
    *,
    base_dir: Path | None = None,
    profile: str | None = None,
    time_scale: float | None = None,
    trust: Trust | None = None,
) -> Scenario:
    """Like `load_scenario`, from text (relative stack paths resolve against base_dir)."""
    doc = load_yaml_text(text, name)
    fake = (base_dir or Path.cwd()) / name
    with trusting(trust):
        return _build(doc, name, fake, overrides, profile, time_scale, from_text=True)


def _build(
    doc: Any,
    file: str,
    path: Path,
    overrides: Sequence[str],
    profile: str | None,
    time_scale: float | None,
    *,
    from_text: bool = False,
) -> Scenario:
    top = Where(file, "")
    if not isinstance(doc, dict):
        raise ScenarioError(
            "expected a mapping with name, stack, duration, timeline and invariants",
            file=file,
            line=1,
        )
    written_users = _users_as_written(doc)
    if isinstance(doc.get("stack"), str):  # so --set stack.settings.x=... finds a mapping
        doc["stack"] = _stack_shorthand(doc, doc["stack"])
    apply_overrides(doc, overrides, file)
    for key in doc:
        if key not in _TOP_KEYS:
            raise top.child(key).error(
                f"unknown key {key!r}; allowed: {', '.join(_TOP_KEYS)}", doc, key
            )
    for key in ("name", "stack", "duration"):
        if key not in doc:
            raise top.error(f"missing required key {key!r}", doc)

    name = _string(doc, "name", top)
    if not _NAME.fullmatch(name):
        raise top.child("name").error(
            "expected a lower-case name of ASCII letters, digits, '.', '_' and '-' "
            f"(at most 80), got {name!r}",
            doc,
            "name",
        )
    description = _string(doc, "description", top, "")
    tags = _tags(doc, top)
    seed = _int(doc, "seed", top, 1, maximum=_MAX_SEED)
    backend = _enum(doc, "backend", top, BACKENDS, "auto")
    scale = _time_scale(doc, top, time_scale)
    duration_ns = _duration(doc, "duration", top)

    stack_ref, stack = parse_stack_section(doc, top, path.parent, seed, profile)
    timeline = _timeline(doc, top, stack.spec, duration_ns, scale)
    duration_ns = round(duration_ns * scale)
    _check_overlaps(timeline, top, doc.get("timeline"))

    load = _load(doc, top, seed, stack.spec.load_protocol, scale)
    load = _keep_ramp(load, written_users, overrides)
    invariants = tuple(parse_invariants(doc.get("invariants"), top.child("invariants")))
    labels = [f.label for f in timeline]
    sometimes = tuple(
        parse_sometimes(
            doc.get("sometimes"), top.child("sometimes"), labels, list(stack.spec.profiles)
        )
    )
    expect = dict(
        parse_expect(
            doc.get("expect"),
            top.child("expect"),
            [i.name for i in invariants],
            list(stack.spec.profiles),
        )
    )
    return Scenario(
        path=None if from_text else path,
        name=name,
        description=description,
        tags=tags,
        seed=seed,
        stack=stack,
        stack_ref=stack_ref,
        backend=backend,
        duration_ns=duration_ns,
        time_scale=scale,
        load=load,
        timeline=tuple(timeline),
        invariants=invariants,
        sometimes=sometimes,
        expect=expect,
        overrides=tuple(overrides),
    )


def _users_as_written(doc: Mapping[str, Any]) -> int | None:
    section = doc.get("load")
    users = section.get("users", 10) if isinstance(section, Mapping) else None
    return users if isinstance(users, int) and not isinstance(users, bool) else None


def _keep_ramp(
    load: LoadPlan | None, written_users: int | None, overrides: Sequence[str]
) -> LoadPlan | None:
    """`--users N` (or ``--set load.users=N``) keeps the scenario's ramp-up time: the
    spawn rate scales with the user count, so 400 users are all running by the time the
    scenario's 60 were, and the first fault meets the load it was written for. An
    explicit ``load.spawn_rate`` override wins."""
    keys = {o.partition("=")[0].strip() for o in overrides}
    if load is None or not written_users or "load.users" not in keys:
        return load
    if "load.spawn_rate" in keys or load.users == written_users:
        return load
    rate = min(MAX_SPAWN_RATE, load.spawn_rate * load.users / written_users)
    return replace(load, spawn_rate=rate)


def _load(
    doc: Mapping[str, Any], top: Where, seed: int, default_protocol: str | None, scale: float
) -> LoadPlan | None:
    """The load plan; None (no Locust at all) when `load:` is absent, empty or `none`,
    or has `users: 0`. An open-loop rate's times follow the time scale."""
    raw = doc.get("load")
    if raw is None or raw == "none":
        return None
    plan = parse_load(raw, top.child("load"), seed, default_protocol=default_protocol or "perpdex")
    if plan.rate is not None and scale != 1.0:
        plan = replace(plan, rate=plan.rate.scaled(scale))
    return plan if plan.users > 0 else None


def _string(d: Mapping[str, Any], key: str, where: Where, default: str | None = None) -> str:
    v = d.get(key, default)
    if not isinstance(v, str):
        raise where.child(key).error(f"expected a string, got {v!r}", d, key)
    return v


def _int(d: Mapping[str, Any], key: str, where: Where, default: int, *, maximum: int) -> int:
    v = d.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int):
        raise where.child(key).error(f"expected an integer, got {v!r}", d, key)
    if not 0 <= v <= maximum:
        raise where.child(key).error(f"expected an integer from 0 to {maximum}, got {v!r}", d, key)
    return v


def _enum(
    d: Mapping[str, Any], key: str, where: Where, allowed: Sequence[str], default: str
) -> str:
    v = d.get(key, default)
    if v not in allowed:
        raise where.child(key).error(f"expected one of {', '.join(allowed)}, got {v!r}", d, key)
    return str(v)


def _tags(d: Mapping[str, Any], where: Where) -> tuple[str, ...]:
    v = d.get("tags", [])
    if not isinstance(v, list) or not all(isinstance(t, str) and _NAME.fullmatch(t) for t in v):
        raise where.child("tags").error(
            f"expected a list of lower-case words, got {v!r}", d, "tags"
        )
    return tuple(v)


def _duration(d: Mapping[str, Any], key: str, where: Where) -> int:
    v = d.get(key)
    try:
        ns = parse_duration(v)  # type: ignore[arg-type]
    except ValueError as exc:
        raise where.child(key).error(str(exc), d, key) from None
    if ns <= 0:
        raise where.child(key).error(f"must be a positive duration, got {v!r}", d, key)
    return ns


def _time_scale(d: Mapping[str, Any], where: Where, override: float | None) -> float:
    v: Any = override if override is not None else d.get("time_scale", 1.0)
    if (
        isinstance(v, bool)
        or not isinstance(v, (int, float))
        or not MIN_TIME_SCALE <= v <= MAX_TIME_SCALE
    ):
        shown = "--time-scale" if override is not None else "time_scale"
        raise where.child("time_scale").error(
            f"expected a number from {MIN_TIME_SCALE:g} to {MAX_TIME_SCALE:g} "
            f"(0.25 runs four times faster), got {v!r} ({shown})",
            d,
            "time_scale",
        )
    return float(v)


def _stack_shorthand(doc: Mapping[str, Any], ref: str) -> LocDict:
    """`stack: perpdex` as the mapping it stands for; errors point at that line."""
    out = LocDict({"ref": ref})
    out.line = doc.line_of("stack") if isinstance(doc, LocDict) else 0
    out.key_lines = {"ref": out.line}
    return out


def parse_stack_section(
    doc: Mapping[str, Any], top: Where, base: Path, seed: int, profile_override: str | None
) -> tuple[str, StackRun]:
    """`doc["stack"]` (a name, or {ref, profile, switches, settings}) → (ref, StackRun).

    Also used for stacks brought up outside a scenario (`l2chaos stack up`, fixtures)."""
    where = top.child("stack")
    raw = doc["stack"]
    if isinstance(raw, str):
        raw = _stack_shorthand(doc, raw)
    if not isinstance(raw, dict):
        raise where.error(
            f"expected a stack name (e.g. perpdex) or a mapping with ref, got {raw!r}", doc, "stack"
        )
    for key in raw:
        if key not in _STACK_KEYS:
            raise where.child(key).error(
                f"unknown key {key!r}; allowed: {', '.join(_STACK_KEYS)}", raw, key
            )
    ref = raw.get("ref")
    if not isinstance(ref, str) or not ref:
        raise where.child("ref").error(f"expected a stack name or path, got {ref!r}", raw, "ref")
    try:
        spec = resolve_stack(ref, base)
    except (NotAStackFile, InputError) as exc:
        if isinstance(exc, StackSpecError) and not isinstance(exc, NotAStackFile) and exc.file:
            raise  # a stack file with a mistake in it: its own file, line and field
        # unknown, unreadable or not a stack file: said at the reference, with the path
        # it resolved to and the reason, never with the file's content
        shown = f"{exc.file}: " if exc.file else ""
        raise where.child("ref").error(f"{shown}{exc.problem}", raw, "ref") from None

    profile = (
        profile_override
        if profile_override is not None
        else raw.get("profile", spec.default_profile)
    )
    switches: dict[str, bool] = {}
    if profile is not None:
        if profile not in spec.profiles:
            shown = "--profile" if profile_override is not None else "stack.profile"
            raise where.child("profile").error(
                f"unknown profile {profile!r} ({shown}); stack {spec.name!r} has: {', '.join(spec.profiles) or 'none'}",
                raw,
                "profile",
            )
        switches.update(spec.profiles[profile])
    for sw in spec.switches:
        switches.setdefault(sw, False)
    sw_raw = raw.get("switches", {})
    if not isinstance(sw_raw, dict):
        raise where.child("switches").error(
            f"expected a mapping of switch: true|false, got {sw_raw!r}", raw, "switches"
        )
    for sw, val in sw_raw.items():
        if sw not in spec.switches:
            raise (
                where.child("switches")
                .child(sw)
                .error(
                    f"unknown switch {sw!r}; stack {spec.name!r} has: {', '.join(spec.switches) or 'none'}",
                    sw_raw,
                    sw,
                )
            )
        if not isinstance(val, bool):
            raise (
                where.child("switches")
                .child(sw)
                .error(f"expected true or false, got {val!r}", sw_raw, sw)
            )
        switches[sw] = val
    settings = _settings(raw, where, spec)
    return ref, StackRun(
        spec=spec, profile=profile, switches=switches, settings=settings, seed=seed
    )


def _settings(raw: Mapping[str, Any], where: Where, spec: StackSpec) -> dict[str, Any]:
    given = raw.get("settings", {})
    w = where.child("settings")
    if not isinstance(given, dict):
        raise w.error(f"expected a mapping of setting: value, got {given!r}", raw, "settings")
    out = {name: s.default for name, s in spec.settings.items()}
    for key, value in given.items():
        s = spec.settings.get(key)
        if s is None:
            raise w.child(key).error(
                f"unknown setting {key!r}; stack {spec.name!r} has: {', '.join(spec.settings) or 'none'}",
                given,
                key,
            )
        try:
            out[key] = s.coerce(value)
        except ValueError as exc:
            raise w.child(key).error(str(exc), given, key) from None
    return out


def _timeline(
    doc: Mapping[str, Any], top: Where, spec: StackSpec, duration_ns: int, scale: float
) -> list[FaultUse]:
    raw = doc.get("timeline", [])
    where = top.child("timeline")
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise where.error(f"expected a list of fault entries, got {raw!r}", doc, "timeline")
    out: list[FaultUse] = []
    labels: set[str] = set()
    for i, entry in enumerate(raw):
        w = where.child(i)
        _check_start(entry, w, duration_ns)
        use = parse_fault_entry(entry, w, spec, scale, index=i, container=raw)
        if use.timed and use.end_ns > round(duration_ns * scale):
            raise w.child("for").error(
                f"ends at {format_duration(round(use.end_ns / scale))}, past the end of the run "
                f"(duration {format_duration(duration_ns)}); shorten it or lengthen the run",
                entry,
                "for" if "for" in entry else "at",
            )
        if use.label in labels:
            raise w.child("name").error(f"duplicate timeline name {use.label!r}", entry, "name")
        labels.add(use.label)
        out.append(use)
    check_triggers(
        [(u.index, u.label, u.trigger, u.for_ns) for u in out if u.trigger is not None],
        round(duration_ns * scale),
        where,
        raw,
    )
    return out


def _check_start(entry: Any, where: Where, duration_ns: int) -> None:
    """An entry that starts at or after the end is refused for its time first (before
    any complaint about its other keys, which would only mislead)."""
    if not isinstance(entry, dict) or "at" not in entry:
        return
    try:
        at_ns = parse_duration(entry["at"])
    except ValueError:
        return  # parse_fault_entry reports it
    if at_ns >= duration_ns:
        raise where.child("at").error(
            f"scheduled at {format_duration(at_ns)}, at or after the end of the run "
            f"(duration {format_duration(duration_ns)}); move it earlier or lengthen the run",
            entry,
            "at",
        )


def _check_overlaps(timeline: Sequence[FaultUse], top: Where, raw: Any) -> None:
    # Entries that fire at a block, an event or another entry are kept apart at run time
    # (an inject waits for the resource's holder to heal).
    spans = [
        (f, f.at_ns, f.at_ns + (f.for_ns or _INSTANT_NS), f.fault.resources())
        for f in timeline
        if f.timed
    ]
    for i, (a, a0, a1, ra) in enumerate(spans):
        for b, b0, b1, rb in spans[i + 1 :]:
            shared = ra & rb
            if shared and a0 < b1 and b0 < a1:
                w = top.child("timeline").child(b.index)
                raise w.error(
                    f"{b.name} on {b.fault.target} overlaps timeline[{a.index}] ({a.name} on {a.fault.target}) "
                    f"and both need {', '.join(sorted(shared))}; they cannot coexist: move one",
                    raw,
                    b.index,
                )
