"""What a message-level fault asks the L7 proxy to do: a `Rule` (which calls, how often,
what action), as the faults build it and the control API carries it (JSON).

A rule belongs to one link. Its `match` picks calls: for the ``rpc`` family, JSON-RPC
calls whose method matches one of `methods` (shell globs; none = every method), each
call of a batch on its own; for the ``http`` family, requests whose path matches one of
`paths` (globs; none = every path) and whose verb is in `verbs` (none = any). A matching
call is hit with `probability`, drawn from ``random.Random(seed)`` in the order calls
reach the proxy, so a run with the same seed and the same call order makes the same
draws.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

from .jsonpath import JsonPath, JsonPathError

__all__ = [
    "ACTIONS",
    "FAMILIES",
    "Action",
    "Corrupt",
    "Delay",
    "DropResponse",
    "Error",
    "Match",
    "Rule",
    "RuleError",
    "StaleHead",
    "Status",
]

FAMILIES = ("rpc", "http")
WHEN = ("before", "after")
DROP_MODES = ("drop", "cut")
CORRUPT_IN = ("response", "request")
FLAVORS = ("auto", "evm", "starknet")
# Head queries a lagging replica answers from its own (old) head.
HEAD_METHODS = (
    "eth_blockNumber",
    "starknet_blockNumber",
    "starknet_blockHashAndNumber",
    "*_getBlockByNumber",
    "starknet_getBlockWith*",
    "starknet_getStateUpdate",
)


class RuleError(ValueError):
    """A rule that cannot be carried out, with the reason in words."""


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise RuleError(message)


def _one_of(what: str, value: object, allowed: tuple[str, ...]) -> None:
    words = " or ".join(allowed) if len(allowed) == 2 else "one of " + ", ".join(allowed)
    _check(value in allowed, f"{what}: expected {words}, got {value!r}")


def _strings(value: Any, what: str) -> tuple[str, ...]:
    _check(
        isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value),
        f"{what}: expected a list of strings, got {value!r}",
    )
    return tuple(value)


@dataclass(frozen=True)
class Match:
    methods: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ()

    def method(self, name: str) -> bool:
        return not self.methods or any(fnmatch.fnmatchcase(name, g) for g in self.methods)

    def request(self, verb: str, path: str) -> bool:
        verb_ok = not self.verbs or verb.upper() in self.verbs
        return verb_ok and (not self.paths or any(fnmatch.fnmatchcase(path, g) for g in self.paths))

    @classmethod
    def from_json(cls, d: Any) -> Match:
        _check(isinstance(d, Mapping), f"match: expected a mapping, got {d!r}")
        unknown = set(d) - {"methods", "paths", "verbs"}
        _check(not unknown, f"match: unknown keys {sorted(unknown)}")
        return cls(
            methods=_strings(d.get("methods", []), "match.methods"),
            paths=_strings(d.get("paths", []), "match.paths"),
            verbs=tuple(v.upper() for v in _strings(d.get("verbs", []), "match.verbs")),
        )


@dataclass(frozen=True)
class Action:
    """Base of the actions; `kind` names it in JSON, `families` where it applies."""

    kind: ClassVar[str]
    families: ClassVar[tuple[str, ...]] = FAMILIES

    def check(self) -> None:
        """Raise RuleError when a value is out of range."""

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, **asdict(self)}


@dataclass(frozen=True)
class Error(Action):
    """Answer a JSON-RPC error instead of the result, before or after forwarding."""

    kind: ClassVar[str] = "error"
    families: ClassVar[tuple[str, ...]] = ("rpc",)
    code: int = -32603
    message: str = "internal error"
    when: str = "before"

    def check(self) -> None:
        _one_of("when", self.when, WHEN)


@dataclass(frozen=True)
class Delay(Action):
    kind: ClassVar[str] = "delay"
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    when: str = "before"

    def check(self) -> None:
        _one_of("when", self.when, WHEN)
        _check(
            self.latency_ms >= 0 and self.jitter_ms >= 0,
            "latency_ms and jitter_ms must be >= 0",
        )

    def draw_s(self, u: float) -> float:
        """The delay for a uniform draw `u` in [0, 1): latency ± jitter, never negative."""
        return max(0.0, self.latency_ms + self.jitter_ms * (2 * u - 1)) / 1000


@dataclass(frozen=True)
class DropResponse(Action):
    """Forward the call, then close the client's connection without the answer (drop)
    or after half of it (cut)."""

    kind: ClassVar[str] = "drop_response"
    mode: str = "drop"

    def check(self) -> None:
        _one_of("mode", self.mode, DROP_MODES)


@dataclass(frozen=True)
class StaleHead(Action):
    """Answer head queries from the head seen at injection, as a lagging replica."""

    kind: ClassVar[str] = "stale_head"
    families: ClassVar[tuple[str, ...]] = ("rpc",)
    flavor: str = "auto"
    path: str = "/"  # where the upstream answers JSON-RPC (for the snapshot)

    def check(self) -> None:
        _one_of("flavor", self.flavor, FLAVORS)
        _check(
            self.path.startswith("/"), f"path: expected a path starting with /, got {self.path!r}"
        )


@dataclass(frozen=True)
class Corrupt(Action):
    """Set JSON paths of matching answers (or requests) to given values.

    For rpc rules a path starts at the call's own object (``result.price`` in an answer,
    ``params.block_id`` in a request); for http rules at the body's root."""

    kind: ClassVar[str] = "corrupt"
    set: tuple[tuple[str, Any], ...] = ()
    target: str = "response"

    def check(self) -> None:
        _check(bool(self.set), "set: name at least one path to rewrite")
        _one_of("in", self.target, CORRUPT_IN)
        for path, _ in self.set:
            try:
                JsonPath.parse(path)
            except JsonPathError as exc:
                raise RuleError(f"set: {exc}") from None

    def paths(self) -> list[tuple[JsonPath, Any]]:
        return [(JsonPath.parse(p), v) for p, v in self.set]

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "set": [list(kv) for kv in self.set], "target": self.target}


@dataclass(frozen=True)
class Status(Action):
    """Answer an HTTP status without forwarding."""

    kind: ClassVar[str] = "status"
    families: ClassVar[tuple[str, ...]] = ("http",)
    status: int = 503
    retry_after_s: int | None = None
    body: str = ""

    def check(self) -> None:
        _check(100 <= self.status <= 599, f"status: expected 100-599, got {self.status}")
        _check(
            self.retry_after_s is None or self.retry_after_s >= 0,
            "retry_after_s must be >= 0",
        )


ACTIONS: dict[str, type[Action]] = {
    a.kind: a for a in (Error, Delay, DropResponse, StaleHead, Corrupt, Status)
}


def _action_from_json(d: Any) -> Action:
    _check(isinstance(d, Mapping), f"action: expected a mapping, got {d!r}")
    kind = d.get("kind")
    cls = ACTIONS.get(str(kind))
    _check(cls is not None, f"action.kind: expected one of {sorted(ACTIONS)}, got {kind!r}")
    assert cls is not None
    values = {k: v for k, v in d.items() if k != "kind"}
    names = {f.name for f in fields(cls)}
    unknown = set(values) - names
    _check(not unknown, f"action {kind}: unknown keys {sorted(unknown)}; allowed {sorted(names)}")
    if cls is Corrupt and "set" in values:
        raw = values["set"]
        _check(
            isinstance(raw, list) and all(isinstance(p, list) and len(p) == 2 for p in raw),
            f"set: expected a list of [path, value] pairs, got {raw!r}",
        )
        values["set"] = tuple((str(p), v) for p, v in raw)
    for f in fields(cls):
        if f.name in values and f.type in ("int", "float", "str"):
            v = values[f.name]
            ok = isinstance(v, (int, float)) and not isinstance(v, bool)
            ok = isinstance(v, str) if f.type == "str" else ok
            ok = ok and (f.type != "int" or isinstance(v, int))
            _check(ok, f"action {kind}: {f.name} must be {f.type}, got {v!r}")
    action = cls(**values)
    action.check()
    return action


@dataclass(frozen=True)
class Rule:
    id: str
    family: str
    action: Action
    match: Match = field(default_factory=Match)
    probability: float = 1.0
    seed: int = 0
    label: str = ""  # the fault it comes from, for the decision log

    def check(self) -> None:
        _one_of("family", self.family, FAMILIES)
        _check(
            self.family in self.action.families,
            f"{self.action.kind} is not an action of the {self.family} family",
        )
        _check(
            isinstance(self.probability, (int, float))
            and math.isfinite(self.probability)
            and 0 <= self.probability <= 1,
            f"probability: expected a number in [0, 1], got {self.probability!r}",
        )
        _check(bool(self.id) and "/" not in self.id, f"id: expected a name, got {self.id!r}")
        self.action.check()

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "family": self.family,
            "action": self.action.to_json(),
            "match": {
                "methods": list(self.match.methods),
                "paths": list(self.match.paths),
                "verbs": list(self.match.verbs),
            },
            "probability": self.probability,
            "seed": self.seed,
            "label": self.label,
        }

    @classmethod
    def from_json(cls, d: Any) -> Rule:
        _check(isinstance(d, Mapping), f"rule: expected a JSON object, got {d!r}")
        unknown = set(d) - {"id", "family", "action", "match", "probability", "seed", "label"}
        _check(not unknown, f"rule: unknown keys {sorted(unknown)}")
        seed = d.get("seed", 0)
        _check(
            isinstance(seed, int) and not isinstance(seed, bool),
            f"seed: expected an integer, got {seed!r}",
        )
        rule = cls(
            id=str(d.get("id", "")),
            family=str(d.get("family", "")),
            action=_action_from_json(d.get("action")),
            match=Match.from_json(d.get("match", {})),
            probability=d.get("probability", 1.0),
            seed=seed,
            label=str(d.get("label", "")),
        )
        rule.check()
        return rule
