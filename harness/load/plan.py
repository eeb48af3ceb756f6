"""The `load:` section of a scenario: how many traders, which personas, how they behave.

    load:
      users: 60              # concurrent Locust users, one seeded account each
      spawn_rate: 20         # users started per second
      workers: 2             # 0: one Locust process; N: a master and N worker processes
      personas: {maker: 6, taker: 30, leveraged: 18, bridger: 6}   # weights
      leveraged: {leverage: [12, 19], long_ratio: 0.9}            # per persona settings
      taker: {size_usd: [100, 2000], think: [200ms, 1s]}

`parse_load` validates it (every problem one `ScenarioError` naming file, line, field
and what is allowed) into a frozen `LoadPlan`. Weights become exact user counts per
persona by the largest-remainder method, so the same section always gives the same
counts. `LOAD_PARAMS` and `PERSONA_PARAMS` document every key for `l2chaos list`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from ..errors import UsageError
from ..params import Param, Where, bind_params
from ..yamlsrc import LocDict

__all__ = [
    "DEFAULT_WEIGHTS",
    "LOAD_PARAMS",
    "PERSONAS",
    "PERSONA_PARAMS",
    "LoadPlan",
    "PersonaPlan",
    "parse_load",
    "split_counts",
]

PERSONAS: tuple[str, ...] = ("maker", "taker", "leveraged", "bridger", "reader")
DEFAULT_WEIGHTS: Mapping[str, float] = MappingProxyType(
    {"maker": 2, "taker": 4, "leveraged": 3, "bridger": 1, "reader": 2}
)
READ_OPS: tuple[str, ...] = ("block_number", "get_block", "get_receipt", "positions")

_S = 1_000_000_000
_MS = 1_000_000

LOAD_PARAMS: tuple[Param, ...] = (
    Param("users", "int", 10, "concurrent Locust users; each gets its own seeded account", min=1, max=100_000),
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
        "personas", "mapping", dict(DEFAULT_WEIGHTS),
        "weight per persona (" + ", ".join(PERSONAS) + "); 0 leaves one out",
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
        "trace_decisions", "bool", False,
        "write every persona decision to load/decisions/worker-<n>.jsonl (replay debugging)",
    ),
)  # fmt: skip

_MARKETS = Param("markets", "str_list", [], "markets to trade; empty: every market the stack lists")


def _price_refresh(default_ns: int) -> Param:
    return Param(
        "price_refresh", "duration", default_ns,
        "re-read prices (GET /v1/markets) before a step when they are older than this",
        min=1 * _MS,
    )  # fmt: skip


PERSONA_PARAMS: Mapping[str, tuple[Param, ...]] = MappingProxyType(
    {
        "maker": (
            _MARKETS,
            _price_refresh(1 * _S),
            Param("size_usd", "range", [200, 2000], "notional of one quote in USD", min=1),
            Param("spread_bps", "range", [5, 50], "distance of a quote from the index price, in bps", min=0, max=5000),
            Param("max_open", "int", 4, "open quotes kept per maker; the oldest is cancelled beyond", min=1, max=1000),
            Param("cancel_ratio", "ratio", 0.25, "share of steps that cancel the oldest quote"),
            Param("refresh_ratio", "ratio", 0.05, "share of steps that re-read open orders"),
            Param("think", "duration_range", [500 * _MS, 2 * _S], "pause between steps", min=0),
        ),
        "taker": (
            _MARKETS,
            _price_refresh(5 * _S),
            Param("size_usd", "range", [50, 500], "notional of one order in USD", min=1),
            Param("market_ratio", "ratio", 0.6, "share of market orders (the rest are crossing limits)"),
            Param("cross_bps", "range", [0, 30], "how far a limit order crosses the index price, in bps", min=0, max=5000),
            Param("close_ratio", "ratio", 0.1, "share of steps that flatten positions (reduce-only)"),
            Param("think", "duration_range", [500 * _MS, 3 * _S], "pause between steps", min=0),
        ),
        "leveraged": (
            _MARKETS,
            _price_refresh(5 * _S),
            Param("leverage", "range", [10, 18], "position notional over equity (capped below the market's limit)", min=1, max=1000),
            Param("long_ratio", "ratio", 0.8, "share of longs (the ones a zero price liquidates)"),
            Param("hold_polls", "range", [5, 20], "position reads while holding, before closing", min=0, max=100_000),
            Param(
                "open_order", "enum", "limit",
                "how a position is opened: a limit at the index that rests until filled, or a market order",
                choices=("limit", "market"),
            ),
            Param("think", "duration_range", [1 * _S, 3 * _S], "pause between steps", min=0),
        ),
        "bridger": (
            Param("deposit_usd", "range", [100, 1000], "amount of one deposit in USD", min=0.01),
            Param("withdraw_usd", "range", [50, 500], "amount of one withdrawal in USD", min=0.01),
            Param("withdraw_ratio", "ratio", 0.4, "share of steps that withdraw"),
            Param("balance_ratio", "ratio", 0.2, "share of steps that read the account"),
            Param("think", "duration_range", [2 * _S, 6 * _S], "pause between steps", min=0),
        ),
        "reader": (
            Param(
                "mix", "mapping", {"block_number": 3, "get_block": 3, "get_receipt": 2, "positions": 2},
                "weights of the reads: " + ", ".join(READ_OPS),
            ),
            Param("blocks_back", "range", [0, 20], "how far behind the head a block read goes", min=0, max=1_000_000),
            Param("think", "duration_range", [200 * _MS, 1 * _S], "pause between steps", min=0),
        ),
    }
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


def parse_load(section: Mapping[str, Any] | None, where: Where, seed: int) -> LoadPlan:
    """Validate a scenario's `load:` section (None: all defaults) into a LoadPlan."""
    if section is None:
        section = {}
    if not isinstance(section, Mapping):
        raise where.error(f"expected a mapping (users, personas, ...), got {section!r}")
    for key in section:
        if key not in _TOP_NAMES and key not in PERSONA_PARAMS:
            allowed = ", ".join([*sorted(_TOP_NAMES), *PERSONAS])
            raise where.child(key).error(f"unknown key {key!r}; allowed: {allowed}", section, key)
    top = {k: v for k, v in section.items() if k in _TOP_NAMES}
    if isinstance(section, LocDict) and hasattr(section, "source"):
        top = _sub_locdict(section, top)
    bound = bind_params(LOAD_PARAMS, top, where)
    weights = _weights(bound["personas"], where, section)
    users = int(bound["users"])

    counts = split_counts(weights, users)
    personas: list[PersonaPlan] = []
    for name in PERSONAS:
        given = section.get(name)
        pw = where.child(name)
        if given is not None and not isinstance(given, Mapping):
            raise pw.error(f"expected a mapping of {name} settings, got {given!r}", section, name)
        settings = bind_params(PERSONA_PARAMS[name], given, pw)
        _check_persona(name, settings, given, pw)
        personas.append(PersonaPlan(name, weights.get(name, 0.0), counts.get(name, 0), settings))

    if bound["workers"] > 0 or bound["remote_workers"] > 0:
        host = bound["master_bind_host"]
        if not host:
            raise where.child("master_bind_host").error(
                "expected an address to listen on, e.g. 127.0.0.1", section, "master_bind_host"
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
    )


def _sub_locdict(src: LocDict, items: Mapping[str, Any]) -> LocDict:
    out = LocDict(items)
    out.source = src.source
    out.line = src.line
    out.key_lines = {k: src.line_of(k) for k in items}
    return out


def _weights(raw: Mapping[str, Any], where: Where, section: Mapping[str, Any]) -> dict[str, float]:
    pw = where.child("personas")
    container: Any = section.get("personas", section)
    weights: dict[str, float] = {}
    for name, w in raw.items():
        if name not in PERSONAS:
            raise pw.child(name).error(
                f"unknown persona {name!r}; allowed: {', '.join(PERSONAS)}", container, name
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


def _check_persona(name: str, s: dict[str, Any], given: Any, where: Where) -> None:
    """Cross-field checks the Param kinds cannot express; normalises whole numbers."""
    if name in ("maker", "taker", "leveraged"):
        markets: Sequence[str] = s["markets"]
        if len(set(markets)) != len(markets):
            raise where.child("markets").error(
                f"lists a market twice: {markets!r}", given, "markets"
            )
    if name == "maker" and s["cancel_ratio"] + s["refresh_ratio"] > 1:
        raise where.child("refresh_ratio").error(
            "cancel_ratio + refresh_ratio must be at most 1", given, "refresh_ratio"
        )
    if name == "bridger" and s["withdraw_ratio"] + s["balance_ratio"] > 1:
        raise where.child("balance_ratio").error(
            "withdraw_ratio + balance_ratio must be at most 1", given, "balance_ratio"
        )
    if name == "leveraged":
        s["hold_polls"] = _whole_range(s, "hold_polls", given, where)
    if name == "reader":
        mix: Mapping[str, Any] = s["mix"]
        mix_container = given.get("mix") if isinstance(given, Mapping) else None
        for op, w in mix.items():
            if op not in READ_OPS:
                raise (
                    where.child("mix")
                    .child(op)
                    .error(
                        f"unknown read {op!r}; allowed: {', '.join(READ_OPS)}", mix_container, op
                    )
                )
            if isinstance(w, bool) or not isinstance(w, (int, float)) or w < 0:
                raise (
                    where.child("mix")
                    .child(op)
                    .error(f"expected a weight (a number >= 0), got {w!r}", mix_container, op)
                )
        if not mix or sum(mix.values()) <= 0:
            raise where.child("mix").error(
                "expected at least one read with a positive weight", given, "mix"
            )
        s["blocks_back"] = _whole_range(s, "blocks_back", given, where)
        s["mix"] = {op: float(w) for op, w in mix.items()}


def _whole_range(s: Mapping[str, Any], key: str, given: Any, where: Where) -> list[int]:
    lo, hi = s[key]
    if lo != int(lo) or hi != int(hi):
        raise where.child(key).error(f"expected whole numbers, got {s[key]!r}", given, key)
    return [int(lo), int(hi)]


def _plain(v: Any) -> Any:
    if isinstance(v, Mapping):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v
