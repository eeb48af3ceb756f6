"""A lazy reader of a run directory: the run record every checker reads.

Nothing is loaded up front. JSON-lines files are streamed record by record (a 1M-op
history, 100k blocks), small files (run.json, scenario.resolved.json, the audit
header, the fault log) are read once and cached, and derived data several checkers
share (fault windows, the oracle's reference prices, the canonical block set) is
computed once per record. File formats: docs/architecture.md ("Run directory",
"Audit export").

A malformed line raises `RecordError` naming the file and line: the record is broken,
so no verdict can be given (exit code 3).
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import orjson
from l2chaos.load.rate import RatePlan
from l2chaos.rundir.balances import BALANCES as BALANCES_FILE
from l2chaos.rundir.balances import Balance, read_balances
from l2chaos.rundir.errors import RecordError
from l2chaos.rundir.events import EVENTS as EVENTS_FILE
from l2chaos.rundir.events import Event, read_events
from l2chaos.rundir.probes import Sample
from l2chaos.rundir.run_info import RUN_JSON, RunInfo
from l2chaos.rundir.scenario import SCENARIO_JSON, ResolvedScenario

__all__ = [
    "AUDIT",
    "CHAIN",
    "AuditHeader",
    "FaultRecord",
    "RecordError",
    "ReferencePrices",
    "RunRecord",
]

T = TypeVar("T")

# orjson parses a line about twice as fast as the standard library (bytes in, no
# decoding to str first): the hot path when reading millions of lines.
_loads = orjson.loads

# Run-directory file names (relative paths), as docs/architecture.md pins them.
FAULTS = "faults.jsonl"
PROBES = "probes.jsonl"
HISTORY = "history.jsonl"
L7 = "l7.jsonl"  # the L7 proxy's decisions (docs/l7.md)


class AUDIT:
    """Audit export files (under `audit/`)."""

    HEADER = "audit/header.json"
    BLOCKS = "audit/blocks.jsonl"
    TRANSACTIONS = "audit/transactions.jsonl"
    EVENTS = EVENTS_FILE
    BALANCES = BALANCES_FILE
    MARKET_STATE = "audit/market_state.jsonl"
    BRIDGE_L1 = "audit/bridge_l1.jsonl"
    BRIDGE_MESSAGES = "audit/bridge_messages.jsonl"
    BRIDGE_STATE = "audit/bridge_state.json"
    ORACLE = "audit/oracle_reference.jsonl"


class CHAIN:
    """The built-in chain record of a JSON-RPC node (under `chain/`, l2chaos.chainrecord)."""

    HEADS = "chain/heads.jsonl"
    REORGS = "chain/reorgs.jsonl"
    BLOCKS = "chain/blocks.jsonl"


# Files kept parsed whole once read (RunRecord.events, .blocks): file name -> memo key.
_PARSED_WHOLE = {AUDIT.BLOCKS: "blocks"}


@dataclass(frozen=True)
class AuditHeader:
    """audit/header.json: scales, market parameters, system accounts, switches."""

    stack: str
    quote_decimals: int
    funding_index_scale: int
    markets: dict[str, dict[str, int]]
    system_accounts: dict[str, int]
    switches: dict[str, Any]
    raw: dict[str, Any]

    def account(self, role: str) -> int | None:
        v = self.system_accounts.get(role)
        return int(v) if v is not None else None

    def market(self, name: str) -> dict[str, int] | None:
        return self.markets.get(name)


@dataclass
class FaultRecord:
    """One fault of the timeline as the fault log saw it: inject, heal, notes.

    Times are host UTC ns. The window a fault was active is
    [`start_ns`, `end_ns`]: from the start of its inject to the end of its heal.
    """

    fault_id: int
    label: str
    name: str
    target: str
    scheduled_ns: int | None = None
    inject_t_ns: int | None = None
    inject_done_t_ns: int | None = None
    inject_ok: bool | None = None
    lateness_ms: float | None = None
    heal_t_ns: int | None = None
    heal_done_t_ns: int | None = None
    heal_ok: bool | None = None
    heal_scheduled_ns: int | None = None
    errors: list[str] = field(default_factory=list)
    details: Any = None
    heal_details: Any = None
    notes: list[dict[str, Any]] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    # When it fired: its trigger in words, the chain height then, the height a block or
    # event trigger aimed at; `missed`: why it never fired.
    trigger: dict[str, Any] | None = None
    block: int | None = None
    target_block: int | None = None
    lateness_blocks: int | None = None
    missed: str | None = None

    @property
    def injected(self) -> bool:
        return self.inject_t_ns is not None

    @property
    def healed(self) -> bool:
        return self.heal_done_t_ns is not None and bool(self.heal_ok)

    @property
    def start_ns(self) -> int | None:
        return self.inject_t_ns

    @property
    def end_ns(self) -> int | None:
        return self.heal_done_t_ns

    def window(self, run_end_ns: int) -> tuple[int, int] | None:
        """[start, end] in host ns; a fault never healed lasts to the end of the run."""
        if self.inject_t_ns is None:
            return None
        end = self.heal_done_t_ns if self.heal_done_t_ns is not None else run_end_ns
        return self.inject_t_ns, max(end, self.inject_t_ns)


class ReferencePrices:
    """The oracle's model (reference) price per market over time (host clock)."""

    def __init__(self) -> None:
        self._t: dict[str, list[int]] = {}
        self._p: dict[str, list[int]] = {}
        self.ticks = 0

    def add(self, market: str, t_ns: int, price: int) -> None:
        ts = self._t.setdefault(market, [])
        ps = self._p.setdefault(market, [])
        if ts and t_ns < ts[-1]:  # keep sorted even if the log is slightly out of order
            i = bisect_right(ts, t_ns)
            ts.insert(i, t_ns)
            ps.insert(i, price)
        else:
            ts.append(t_ns)
            ps.append(price)
        self.ticks += 1

    def markets(self) -> list[str]:
        return sorted(self._t)

    def at(self, market: str, t_ns: int) -> tuple[int, int] | None:
        """(price, tick time) of the latest tick at or before `t_ns`; the first tick if
        `t_ns` is before every tick; None if the market has no ticks."""
        ts = self._t.get(market)
        if not ts:
            return None
        i = bisect_right(ts, t_ns) - 1
        i = max(i, 0)
        return self._p[market][i], ts[i]

    def series(self, market: str) -> tuple[list[int], list[int]]:
        return self._t.get(market, []), self._p.get(market, [])


class RunRecord:
    """A run directory, read lazily. Checkers never need the stack to be up."""

    def __init__(self, run_dir: Path | str) -> None:
        self.dir = Path(run_dir)
        self._memo: dict[str, Any] = {}

    # ------------------------------------------------------------------ files

    def path(self, name: str) -> Path:
        return self.dir / name

    def has(self, name: str) -> bool:
        return (self.dir / name).is_file()

    def missing(self, names: tuple[str, ...] | list[str]) -> list[str]:
        return [n for n in names if not self.has(n)]

    def read_json(self, name: str) -> Any:
        p = self.dir / name
        try:
            return json.loads(p.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise RecordError(f"invalid JSON: {exc.msg}", file=p, line=exc.lineno) from None
        except OSError as exc:
            raise RecordError(f"cannot read: {exc.strerror or exc}", file=p) from None

    def jsonl(self, name: str, contains: tuple[str, ...] = ()) -> Iterator[dict[str, Any]]:
        """Stream a JSON-lines file. With `contains`, lines that hold none of those
        substrings are skipped without parsing (a fast pre-filter; callers still test
        the parsed record). A missing file yields nothing. A file another reader has
        already parsed whole (events, blocks) is served from memory, every record of it
        (callers test what they read, so a pre-filter need not be applied again)."""
        parsed = self._memo.get(_PARSED_WHOLE.get(name, ""))
        if parsed is not None:
            return iter(parsed)
        return self._stream(name, contains)

    def _stream(self, name: str, contains: tuple[str, ...]) -> Iterator[dict[str, Any]]:
        p = self.dir / name
        if not p.is_file():
            return
        needles = tuple(c.encode() for c in contains)
        one = needles[0] if len(needles) == 1 else None
        with p.open("rb") as fh:
            for lineno, line in enumerate(fh, 1):
                if one is not None:
                    if one not in line:
                        continue
                elif needles and not any(c in line for c in needles):
                    continue
                try:
                    rec = _loads(line)
                except orjson.JSONDecodeError as exc:
                    if not line.strip():
                        continue
                    raise RecordError(
                        f"invalid JSON line: {exc.msg}", file=p, line=lineno
                    ) from None
                if type(rec) is not dict:
                    raise RecordError(
                        f"expected a JSON object, got {type(rec).__name__}", file=p, line=lineno
                    )
                yield rec

    def memo(self, key: str, compute: Callable[[], T]) -> T:
        """Derived data shared between checkers, computed once per record."""
        if key not in self._memo:
            self._memo[key] = compute()
        value: T = self._memo[key]
        return value

    # ------------------------------------------------------------- small files

    @property
    def run_info(self) -> RunInfo:
        """run.json (empty when absent); RecordVersionError for a format it cannot read."""

        def load() -> RunInfo:
            data = self.read_json(RUN_JSON) if self.has(RUN_JSON) else {}
            return RunInfo.from_json(data, self.path(RUN_JSON))

        return self.memo("run_info", load)

    @property
    def scenario(self) -> ResolvedScenario:
        """scenario.resolved.json (empty when absent); UsageError for a wrong shape."""

        def load() -> ResolvedScenario:
            if not self.has(SCENARIO_JSON):
                return ResolvedScenario()
            return ResolvedScenario.from_json(
                self.read_json(SCENARIO_JSON), self.path(SCENARIO_JSON)
            )

        return self.memo("scenario", load)

    @property
    def header(self) -> AuditHeader | None:
        return self.memo("header", self._load_header)

    def _load_header(self) -> AuditHeader | None:
        if not self.has(AUDIT.HEADER):
            return None
        raw = self.read_json(AUDIT.HEADER)
        p = self.path(AUDIT.HEADER)
        if not isinstance(raw, dict):
            raise RecordError("expected a JSON object", file=p)
        scales = raw.get("scales", {})
        markets = raw.get("markets", {})
        if not isinstance(markets, dict) or not all(isinstance(m, dict) for m in markets.values()):
            raise RecordError("markets: expected an object of market objects", file=p)
        return AuditHeader(
            stack=str(raw.get("stack", "")),
            quote_decimals=int(scales.get("quote_decimals", 6)),
            funding_index_scale=int(scales.get("funding_index_scale", 1_000_000)),
            markets={k: dict(v) for k, v in markets.items()},
            system_accounts={k: int(v) for k, v in dict(raw.get("system_accounts", {})).items()},
            switches=dict(raw.get("switches", {})),
            raw=raw,
        )

    def bridge_state(self) -> dict[str, Any] | None:
        if not self.has(AUDIT.BRIDGE_STATE):
            return None
        data = self.read_json(AUDIT.BRIDGE_STATE)
        return data if isinstance(data, dict) else None

    # --------------------------------------------------------------- streams

    def history(self) -> Iterator[dict[str, Any]]:
        return self.jsonl(HISTORY)

    def probes(self) -> Iterator[dict[str, Any]]:
        """probes.jsonl as JSON objects (what plug-ins written against it read)."""
        return self.jsonl(PROBES)

    def samples(self) -> Iterator[Sample]:
        """probes.jsonl as the Samples the probe loop wrote (lines without a time skipped)."""
        for rec in self.jsonl(PROBES):
            sample = Sample.from_json(rec)
            if sample is not None:
                yield sample

    def events(self, kinds: tuple[str, ...] = ()) -> Iterator[Event]:
        """audit/events.jsonl as typed Events, optionally only the given kinds. The
        whole log is decoded once and kept: four checkers replay every event (the
        ledgers, the roots, funding and value flows), and decoding is most of a pass.
        Before that, a read of some kinds decodes only the lines that name one."""
        parsed: list[Event] | None = self._memo.get("events")
        if not kinds:
            if parsed is None:
                parsed = self.memo("events", lambda: list(read_events(self.path(AUDIT.EVENTS))))
            return iter(parsed)
        wanted = frozenset(kinds)
        if parsed is None:
            needles = tuple(f'"{k}"'.encode() for k in kinds)
            return (ev for ev in read_events(self.path(AUDIT.EVENTS), needles) if ev.kind in wanted)
        return (ev for ev in parsed if ev.kind in wanted)

    def events_mentioning(self, text: str) -> Iterator[Event]:
        """Events whose line holds `text` (from the parsed log once there is one, every
        event: callers test what they read). Lines without it are never decoded."""
        parsed: list[Event] | None = self._memo.get("events")
        if parsed is not None:
            return iter(parsed)
        return read_events(self.path(AUDIT.EVENTS), (text.encode(),))

    def blocks(self) -> Iterator[dict[str, Any]]:
        """audit/blocks.jsonl, parsed once (the chain, coverage and canonical set read it)."""
        return iter(self.memo("blocks", lambda: list(self._stream(AUDIT.BLOCKS, ()))))

    def transactions(self) -> Iterator[dict[str, Any]]:
        return self.jsonl(AUDIT.TRANSACTIONS)

    def balances(self) -> Iterator[Balance]:
        return read_balances(self.path(AUDIT.BALANCES))

    def market_state(self) -> Iterator[dict[str, Any]]:
        return self.jsonl(AUDIT.MARKET_STATE)

    def bridge_l1(self) -> Iterator[dict[str, Any]]:
        return self.jsonl(AUDIT.BRIDGE_L1)

    def bridge_messages(self) -> Iterator[dict[str, Any]]:
        return self.jsonl(AUDIT.BRIDGE_MESSAGES)

    def l7_decisions(self) -> Iterator[dict[str, Any]]:
        return self.jsonl(L7)

    def oracle_reference(self) -> Iterator[dict[str, Any]]:
        return self.jsonl(AUDIT.ORACLE)

    # ----------------------------------------------------------- derived data

    def faults(self) -> list[FaultRecord]:
        """The fault log folded per fault: inject, heal and notes (by fault_id)."""
        return self.memo("faults", self._load_faults)

    def _load_faults(self) -> list[FaultRecord]:
        by_id: dict[int, FaultRecord] = {}
        for rec in self.jsonl(FAULTS):
            fid = int(rec.get("fault_id", -1))
            fr = by_id.get(fid)
            if fr is None:
                fr = by_id[fid] = FaultRecord(
                    fault_id=fid,
                    label=str(rec.get("label") or rec.get("name") or f"fault-{fid}"),
                    name=str(rec.get("name", "")),
                    target=str(rec.get("target", "")),
                    params=dict(rec.get("params") or {}),
                )
            action = rec.get("action")
            t = _int_or_none(rec.get("t_ns"))
            took_ns = round(float(rec.get("took_ms") or 0.0) * 1e6)
            if rec.get("error"):
                fr.errors.append(f"{action}: {rec['error']}")
            if action == "inject":
                fr.scheduled_ns = _int_or_none(rec.get("scheduled_ns"))
                fr.inject_t_ns = t
                fr.inject_done_t_ns = None if t is None else t + took_ns
                fr.inject_ok = bool(rec.get("ok", True))
                fr.lateness_ms = rec.get("lateness_ms")
                fr.details = rec.get("details")
                fr.trigger = _trigger(rec)
                fr.block = _int_or_none(rec.get("block"))
                fr.target_block = _int_or_none(rec.get("target_block"))
                fr.lateness_blocks = _int_or_none(rec.get("lateness_blocks"))
            elif action == "missed":
                fr.trigger = _trigger(rec)
                fr.missed = str(rec.get("error") or "never fired")
            elif action == "heal":
                fr.heal_scheduled_ns = _int_or_none(rec.get("scheduled_ns"))
                fr.heal_t_ns = t
                fr.heal_done_t_ns = None if t is None else t + took_ns
                fr.heal_ok = bool(rec.get("ok", True))
                fr.heal_details = rec.get("details")
            else:
                fr.notes.append(rec)
        return [by_id[k] for k in sorted(by_id)]

    def run_bounds(self) -> tuple[int | None, int | None]:
        """(start, end) of the run in host ns, from run.json, else from the records."""
        return self.memo("run_bounds", self._run_bounds)

    def _run_bounds(self) -> tuple[int | None, int | None]:
        info = self.run_info
        start = info.t0_ns or info.started_t_ns
        end = info.ended_t_ns
        if end is None:
            last: int | None = None
            for name in (PROBES, FAULTS):
                for rec in self.jsonl(name):
                    t = _int_or_none(rec.get("t_ns"))
                    if t is not None and (last is None or t > last):
                        last = t
            end = last
        return start, end

    def fault_windows(self) -> list[tuple[FaultRecord, int, int]]:
        """Each injected fault with its [start, end] window in host ns."""

        def compute() -> list[tuple[FaultRecord, int, int]]:
            _, run_end = self.run_bounds()
            out: list[tuple[FaultRecord, int, int]] = []
            for fr in self.faults():
                w = fr.window(run_end if run_end is not None else (fr.inject_t_ns or 0))
                if w is not None:
                    out.append((fr, w[0], w[1]))
            return out

        return self.memo("fault_windows", compute)

    def load_spikes(self) -> list[tuple[int, int]]:
        """[start, end] in host ns of each spike of the open-loop rate (`load.rate`
        shape `spike`), from the resolved scenario and the run's time zero."""
        rate = (self.scenario.load or {}).get("rate")
        t0 = self.run_info.t0_ns
        if not isinstance(rate, dict) or t0 is None:
            return []
        try:
            plan = RatePlan.from_json(rate)
        except (KeyError, TypeError, ValueError) as exc:
            raise RecordError(f"load.rate: {exc!r}", file=self.path(SCENARIO_JSON)) from None
        return [(t0 + round(a * 1e9), t0 + round(b * 1e9)) for a, b in plan.spikes()]

    def reference_prices(self) -> ReferencePrices | None:
        """The oracle's model prices per market (None without oracle_reference.jsonl)."""

        def compute() -> ReferencePrices | None:
            if not self.has(AUDIT.ORACLE):
                return None
            ref = ReferencePrices()
            for rec in self.oracle_reference():
                price = rec.get("model_price")
                t = _int_or_none(rec.get("host_ts_ns"))
                market = rec.get("market")
                if isinstance(price, int) and t is not None and isinstance(market, str):
                    ref.add(market, t, price)
            return ref

        return self.memo("reference_prices", compute)

    def canonical_seqs(self) -> frozenset[int] | None:
        """`seq` of every canonical block (None without blocks.jsonl)."""

        def compute() -> frozenset[int] | None:
            if not self.has(AUDIT.BLOCKS):
                return None
            return frozenset(int(b["seq"]) for b in self.blocks() if b.get("canonical", True))

        return self.memo("canonical_seqs", compute)

    def chain_heads(self) -> Iterator[dict[str, Any]]:
        """chain/heads.jsonl: each new head the probes saw, in time order."""
        return self.jsonl(CHAIN.HEADS)

    def chain_reorgs(self) -> Iterator[dict[str, Any]]:
        """chain/reorgs.jsonl: each step back or rewrite of the head the probes saw."""
        return self.jsonl(CHAIN.REORGS)

    def chain_blocks(self) -> Iterator[dict[str, Any]]:
        """chain/blocks.jsonl: the node's final canonical chain, in number order."""
        return self.jsonl(CHAIN.BLOCKS)

    def declared_rollbacks(self) -> list[FaultRecord]:
        """Rollbacks the scenario declared (chain.rollback faults that were injected)."""
        return [f for f in self.faults() if f.name == "chain.rollback" and f.injected]


def _trigger(rec: Mapping[str, Any]) -> dict[str, Any] | None:
    """A fault record's trigger with its text (`{"kind": "block", ..., "text": "block +50"}`)."""
    trig = rec.get("trigger")
    if not isinstance(trig, Mapping):
        return None
    return {**trig, "text": rec.get("trigger_text")}


def _int_or_none(v: Any) -> int | None:
    if v is None or isinstance(v, bool):
        return None
    try:
        return int(v)
    except (TypeError, ValueError):
        return None
