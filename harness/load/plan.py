"""The `load:` section of a scenario: how many traders, which personas, how they behave.

    load:
      protocol: perpdex      # how traders talk to the target (l2chaos.load.protocols)
      users: 60              # concurrent Locust users, one seeded account each
      spawn_rate: 20         # users started per second
      workers: 2             # 0: one Locust process; N: a master and N worker processes
      personas: {maker: 6, taker: 30, leveraged: 18, bridger: 6}   # weights
      leveraged: {leverage: [12, 19], long_ratio: 0.9}            # per persona settings
      taker: {size_usd: [100, 2000], think: [200ms, 1s]}

`parse_load` validates it (every problem one `ScenarioError` naming file, line, field
and what is allowed) into a frozen `LoadPlan`. Weights become exact user counts per
persona by the largest-remainder method, so the same section always gives the same
counts. `LOAD_PARAMS` and each protocol's `personas` document every key for
`l2chaos list`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import UsageError
from ..params import Param, Where, bind_params
from ..safety import require_host
from ..yamlsrc import LocDict, line_of
from .rate import RatePlan, parse_rate

__all__ = [
    "LOAD_PARAMS",
    "LoadPlan",
    "PersonaPlan",
    "parse_load",
    "split_counts",
]

_S = 1_000_000_000
_MS = 1_000_000

LOAD_PARAMS: tuple[Param, ...] = (
    Param(
        "protocol", "str", "",
        "how traders talk to the target (perpdex, evm, starknet, or a plugin); default: the "
        "stack file's load.protocol, else perpdex",
    ),
    Param("users", "int", 10, "concurrent Locust users; each gets its own seeded account; 0: no load", min=0, max=100_000),
    Param("spawn_rate", "float", 10.0, "users started per second", min=0.01, max=10_000),
    Param(
        "workers", "int", 0,
        "0: one standalone Locust process; N: a Locust master and N worker processes here",
        min=0, max=64,
    ),
    Param(
        "remote_workers", "int", 0,
        "extra workers expected to join the master from other machines (docs/load.md)",
        min=0, max=1024,
    ),
    Param(
        "master_bind_host", "str", "127.0.0.1",
        "address the Locust master listens on for workers (with workers or remote_workers)",
    ),
    Param("master_port", "int", 0, "port of the Locust master; 0 picks a free one", min=0, max=65535),
    Param(
        "personas", "mapping", {},
        "weight per persona of the protocol (perpdex: maker 2, taker 4, leveraged 3, bridger 1, "
        "reader 2; evm: sender 3, reader 2; starknet: reader); 0 leaves one out",
    ),
    Param(
        "request_timeout", "duration", 5 * _S,
        "client timeout of one request; a timed-out operation is recorded as info (unknown)",
        min=10 * _MS,
    ),
    Param(
        "stop_timeout", "duration", 2 * _S,
        "at the end, how long users may finish the operation in flight", min=0,
    ),
    Param(
        "grace", "duration", 20 * _S,
        "after the scenario's duration, how long Locust may take to stop before it is killed",
        min=1 * _S,
    ),
    Param(
        "start_timeout", "duration", 30 * _S,
        "how long Locust processes may take to start (and workers to join the master)",
        min=1 * _S,
    ),
    Param(
        "rate", "mapping", {},
        "open loop: a target arrival rate of steps across all workers, e.g. {shape: constant, "
        "ops: 100}; shapes constant, ramp, spike, csv (docs/load.md, 'Open-loop rate'); "
        "users are then the pool of operations in flight and think times are not used",
    ),
    Param(
        "trace_decisions", "bool", False,
        "write every persona decision to load/decisions/worker-<n>.jsonl (replay debugging)",
    ),
)  # fmt: skip

_TOP_NAMES = {p.name for p in LOAD_PARAMS}


@dataclass(frozen=True)
class PersonaPlan:
    """One persona: its weight, the exact number of users it gets, and its settings."""

    name: str
    weight: float
    count: int
    settings: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "weight": self.weight,
            "count": self.count,
            "settings": _plain(self.settings),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PersonaPlan:
        return cls(
            name=str(data["name"]),
            weight=float(data["weight"]),
            count=int(data["count"]),
            settings=dict(data["settings"]),
        )


@dataclass(frozen=True)
class LoadPlan:
    """A validated load section. Durations are nanoseconds; JSON-serialisable."""

    seed: int
    users: int
    spawn_rate: float
    workers: int
    remote_workers: int
    master_bind_host: str
    master_port: int
    request_timeout_ns: int
    stop_timeout_ns: int
    grace_ns: int
    start_timeout_ns: int
    trace_decisions: bool
    personas: tuple[PersonaPlan, ...]
    protocol: str = "perpdex"
    rate: RatePlan | None = None  # open loop: the target arrival rate (else closed loop)

    @property
    def distributed(self) -> bool:
        """Whether Locust runs as a master with workers (else one standalone process)."""
        return self.workers > 0 or self.remote_workers > 0

    @property
    def total_workers(self) -> int:
        """Processes that run users: local workers plus those joining from other machines
        (a standalone Locust counts as one, worker 0)."""
        return self.workers + self.remote_workers if self.distributed else 1

    @property
    def counts(self) -> dict[str, int]:
        return {p.name: p.count for p in self.personas}

    def persona(self, name: str) -> PersonaPlan:
        for p in self.personas:
            if p.name == name:
                return p
        raise KeyError(name)

    def max_users_per_worker(self) -> int:
        """Locust's dispatcher hands users to workers round robin: at most this many each."""
        return math.ceil(self.users / self.total_workers)

    def with_overrides(
        self,
        *,
        users: int | None = None,
        workers: int | None = None,
        spawn_rate: float | None = None,
    ) -> LoadPlan:
        """The plan with command-line overrides (``--users``, ``--workers``); counts are
        recomputed from the weights. Raises UsageError for out-of-range values."""
        for name, value, lo in (("users", users, 1), ("workers", workers, 0)):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < lo
            ):
                raise UsageError(f"expected an integer >= {lo}, got {value!r}", field=f"--{name}")
        if spawn_rate is not None and not (
            isinstance(spawn_rate, (int, float)) and math.isfinite(spawn_rate) and spawn_rate > 0
        ):
            raise UsageError(f"expected a number > 0, got {spawn_rate!r}", field="--spawn-rate")
        new_users = users if users is not None else self.users
        weights = {p.name: p.weight for p in self.personas}
        counts = split_counts(weights, new_users)
        personas = tuple(replace(p, count=counts[p.name]) for p in self.personas)
        return replace(
            self,
            users=new_users,
            workers=workers if workers is not None else self.workers,
            spawn_rate=float(spawn_rate) if spawn_rate is not None else self.spawn_rate,
            personas=personas,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "users": self.users,
            "spawn_rate": self.spawn_rate,
            "workers": self.workers,
            "remote_workers": self.remote_workers,
            "master_bind_host": self.master_bind_host,
            "master_port": self.master_port,
            "request_timeout_ns": self.request_timeout_ns,
            "stop_timeout_ns": self.stop_timeout_ns,
            "grace_ns": self.grace_ns,
            "start_timeout_ns": self.start_timeout_ns,
            "trace_decisions": self.trace_decisions,
            "personas": [p.to_json() for p in self.personas],
            "protocol": self.protocol,
            "rate": self.rate.to_json() if self.rate else None,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LoadPlan:
        return cls(
            seed=int(data["seed"]),
            users=int(data["users"]),
            spawn_rate=float(data["spawn_rate"]),
            workers=int(data["workers"]),
            remote_workers=int(data["remote_workers"]),
            master_bind_host=str(data["master_bind_host"]),
            master_port=int(data["master_port"]),
            request_timeout_ns=int(data["request_timeout_ns"]),
            stop_timeout_ns=int(data["stop_timeout_ns"]),
            grace_ns=int(data["grace_ns"]),
            start_timeout_ns=int(data["start_timeout_ns"]),
            trace_decisions=bool(data["trace_decisions"]),
            personas=tuple(PersonaPlan.from_json(p) for p in data["personas"]),
            protocol=str(data.get("protocol") or "perpdex"),
            rate=RatePlan.from_json(data["rate"]) if data.get("rate") else None,
        )


def split_counts(weights: Mapping[str, float], users: int) -> dict[str, int]:
    """Exact user counts from weights (largest remainder; ties go to the earlier persona).

    The counts always sum to `users`; a persona with weight 0 gets 0.
    """
    total = sum(weights.values())
    if total <= 0:
        raise ValueError("at least one weight must be positive")
    exact = {name: users * w / total for name, w in weights.items()}
    counts = {name: math.floor(v) for name, v in exact.items()}
    left = users - sum(counts.values())
    order = sorted(
        (n for n in weights if weights[n] > 0),
        key=lambda n: (-(exact[n] - counts[n]), list(weights).index(n)),
    )
    for name in order[:left]:
        counts[name] += 1
    return counts


def parse_load(
    section: Mapping[str, Any] | None,
    where: Where,
    seed: int,
    *,
    default_protocol: str = "perpdex",
) -> LoadPlan:
    """Validate a scenario's `load:` section (None: all defaults) into a LoadPlan.

    The personas and their settings are those of the chosen protocol (`protocol`, else
    `default_protocol`). A scenario without `load:` (or `load: none`, or `users: 0`)
    runs no load: the scenario loader does not call this then."""
    from .protocols import protocol as find_protocol
    from .protocols import protocol_names

    if section is None:
        section = {}
    if not isinstance(section, Mapping):
        raise where.error(
            f"expected a mapping (protocol, users, personas, ...) or none, got {section!r}"
        )
    name = section.get("protocol") or default_protocol
    if not isinstance(name, str) or name not in protocol_names():
        raise where.child("protocol").error(
            f"unknown load protocol {name!r}; known: {', '.join(protocol_names())}",
            section,
            "protocol",
        )
    proto = find_protocol(name)
    for key in section:
        if key not in _TOP_NAMES and key not in proto.personas:
            allowed = ", ".join([*sorted(_TOP_NAMES), *proto.personas])
            raise where.child(key).error(
                f"unknown key {key!r} for protocol {name}; allowed: {allowed}", section, key
            )
    top = {k: v for k, v in section.items() if k in _TOP_NAMES}
    if isinstance(section, LocDict) and hasattr(section, "source"):
        top = _sub_locdict(section, top)
    bound = bind_params(LOAD_PARAMS, top, where)
    raw_weights = bound["personas"] or dict(proto.default_weights)
    weights = _weights(raw_weights, list(proto.personas), where, section)
    users = int(bound["users"])

    counts = split_counts(weights, users)
    personas: list[PersonaPlan] = []
    for persona, params in proto.personas.items():
        given = section.get(persona)
        pw = where.child(persona)
        if given is not None and not isinstance(given, Mapping):
            raise pw.error(
                f"expected a mapping of {persona} settings, got {given!r}", section, persona
            )
        settings = bind_params(params, given, pw)
        proto.check_persona(persona, settings, given, pw)
        personas.append(
            PersonaPlan(persona, weights.get(persona, 0.0), counts.get(persona, 0), settings)
        )

    if bound["workers"] > 0 or bound["remote_workers"] > 0:
        host = bound["master_bind_host"]
        w = where.child("master_bind_host")
        if not host:
            raise w.error(
                "expected an address to listen on, e.g. 127.0.0.1", section, "master_bind_host"
            )
        # Listening beyond loopback opens the master to the network: the user's call.
        require_host(
            host,
            "the Locust master's listen address",
            file=w.file,
            line=line_of(section, "master_bind_host"),
            field=w.path,
        )
    return LoadPlan(
        seed=int(seed),
        users=users,
        spawn_rate=float(bound["spawn_rate"]),
        workers=int(bound["workers"]),
        remote_workers=int(bound["remote_workers"]),
        master_bind_host=str(bound["master_bind_host"]),
        master_port=int(bound["master_port"]),
        request_timeout_ns=int(bound["request_timeout"]),
        stop_timeout_ns=int(bound["stop_timeout"]),
        grace_ns=int(bound["grace"]),
        start_timeout_ns=int(bound["start_timeout"]),
        trace_decisions=bool(bound["trace_decisions"]),
        personas=tuple(personas),
        protocol=name,
        rate=parse_rate(section["rate"], where.child("rate")) if "rate" in section else None,
    )


def _sub_locdict(src: LocDict, items: Mapping[str, Any]) -> LocDict:
    out = LocDict(items)
    out.source = src.source
    out.line = src.line
    out.key_lines = {k: src.line_of(k) for k in items}
    return out


def _weights(
    raw: Mapping[str, Any], known: Sequence[str], where: Where, section: Mapping[str, Any]
) -> dict[str, float]:
    pw = where.child("personas")
    container: Any = section.get("personas", section)
    weights: dict[str, float] = {}
    for name, w in raw.items():
        if name not in known:
            raise pw.child(name).error(
                f"unknown persona {name!r}; allowed: {', '.join(known)}", container, name
            )
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
            raise pw.child(name).error(
                f"expected a weight (a number >= 0), got {w!r}", container, name
            )
        weights[name] = float(w)
    if not weights or sum(weights.values()) <= 0:
        raise pw.error(
            "expected at least one persona with a positive weight, e.g. {taker: 3, maker: 1}",
            section,
            "personas",
        )
    return weights


def _plain(v: Any) -> Any:
    if isinstance(v, Mapping):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v
