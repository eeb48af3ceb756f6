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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from l2chaos.load.rate import RatePlan
from l2chaos.rundir import blocks as _blocks
from l2chaos.rundir import bridge as _bridge
from l2chaos.rundir import chain as _chain
from l2chaos.rundir.balances import BALANCES as BALANCES_FILE
from l2chaos.rundir.balances import Balance, read_balances
from l2chaos.rundir.blocks import AuditBlock
from l2chaos.rundir.bridge import BridgeMessage, BridgeState, L1Move
from l2chaos.rundir.chain import ChainBlock, Head, Reorg
from l2chaos.rundir.errors import RecordError
from l2chaos.rundir.events import EVENTS as EVENTS_FILE
from l2chaos.rundir.events import Event, read_events
from l2chaos.rundir.faults import FAULTS, FaultLine
from l2chaos.rundir.header import HEADER as HEADER_FILE
from l2chaos.rundir.header import AuditHeader
from l2chaos.rundir.history import HISTORY, HistoryLine, read_history
from l2chaos.rundir.jsonl import read_typed
from l2chaos.rundir.l7 import L7, L7Decision
from l2chaos.rundir.market_state import MARKET_STATE as MARKET_STATE_FILE
from l2chaos.rundir.market_state import MarketRow
from l2chaos.rundir.oracle_reference import ORACLE_REFERENCE, OracleTick
from l2chaos.rundir.probes import PROBES, ProbeLine, Sample
from l2chaos.rundir.run_info import RUN_JSON, RunInfo
from l2chaos.rundir.scenario import SCENARIO_JSON, ResolvedScenario
from l2chaos.rundir.transactions import TRANSACTIONS as TRANSACTIONS_FILE
from l2chaos.rundir.transactions import Transaction

__all__ = [
    "AUDIT",
    "CHAIN",
    "FAULTS",
    "HISTORY",
    "L7",
    "PROBES",
    "AuditHeader",
    "FaultRecord",
    "RecordError",
    "ReferencePrices",
    "RunRecord",
]

T = TypeVar("T")


class AUDIT:
    """Audit export files (under `audit/`)."""

    HEADER = HEADER_FILE
    BLOCKS = _blocks.BLOCKS
    TRANSACTIONS = TRANSACTIONS_FILE
    EVENTS = EVENTS_FILE
    BALANCES = BALANCES_FILE
    MARKET_STATE = MARKET_STATE_FILE
    BRIDGE_L1 = _bridge.BRIDGE_L1
    BRIDGE_MESSAGES = _bridge.BRIDGE_MESSAGES
    BRIDGE_STATE = _bridge.BRIDGE_STATE
    ORACLE = ORACLE_REFERENCE


class CHAIN:
    """The built-in chain record of a JSON-RPC node (under `chain/`, l2chaos.chainrecord)."""

    HEADS = _chain.HEADS
    REORGS = _chain.REORGS
    BLOCKS = _chain.CHAIN_BLOCKS


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
    details: object = None
    heal_details: object = None
    notes: list[FaultLine] = field(default_factory=list)
    params: dict[str, object] = field(default_factory=dict)
    # When it fired: its trigger in words, the chain height then, the height a block or
    # event trigger aimed at; `missed`: why it never fired.
    trigger: dict[str, object] | None = None
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

    def read_json(self, name: str) -> object:
        p = self.dir / name
        try:
            return json.loads(p.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise RecordError(f"invalid JSON: {exc.msg}", file=p, line=exc.lineno) from None
        except OSError as exc:
            raise RecordError(f"cannot read: {exc.strerror or exc}", file=p) from None

    def jsonl(self, name: str, contains: tuple[str, ...] = ()) -> Iterator[dict[str, object]]:
        """Stream any JSON-lines file as JSON objects (for a file without a typed
        reader: plug-ins, load/rate.jsonl). With `contains`, lines that hold none of
        those substrings are skipped without parsing. A missing file yields nothing."""
        return self._read(name, dict[str, object], contains)

    def _read(self, name: str, kind: type[T], contains: tuple[str, ...] = ()) -> Iterator[T]:
        """File `name` as `kind` records (l2chaos.rundir.jsonl.read_typed)."""
        return read_typed(self.dir / name, kind, tuple(c.encode() for c in contains))

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
        return AuditHeader.from_json(self.read_json(AUDIT.HEADER), self.path(AUDIT.HEADER))

    def bridge_state(self) -> BridgeState | None:
        """audit/bridge_state.json (None when absent)."""
        return _bridge.read_bridge_state(self.path(AUDIT.BRIDGE_STATE))

    # --------------------------------------------------------------- streams

    def history(self) -> Iterator[HistoryLine]:
        return read_history(self.path(HISTORY))

    def probes(self) -> Iterator[dict[str, object]]:
        """probes.jsonl as JSON objects (what plug-ins written against it read)."""
        return self.jsonl(PROBES)

    def samples(self) -> Iterator[Sample]:
        """probes.jsonl as the Samples the probe loop wrote (lines without a time skipped)."""
        for line in self._read(PROBES, ProbeLine):
            sample = line.sample()
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

    def blocks(self) -> Iterator[AuditBlock]:
        """audit/blocks.jsonl, parsed once (the chain, coverage and canonical set read it)."""
        return iter(self.memo("blocks", lambda: list(self._read(AUDIT.BLOCKS, AuditBlock))))

    def transactions(self, contains: tuple[str, ...] = ()) -> Iterator[Transaction]:
        """audit/transactions.jsonl; with `contains`, only lines holding one of those
        substrings are decoded (a pre-filter: callers still test what they read)."""
        return self._read(AUDIT.TRANSACTIONS, Transaction, contains)

    def balances(self) -> Iterator[Balance]:
        return read_balances(self.path(AUDIT.BALANCES))

    def market_state(self) -> Iterator[MarketRow]:
        return self._read(AUDIT.MARKET_STATE, MarketRow)

    def bridge_l1(self) -> Iterator[L1Move]:
        return self._read(AUDIT.BRIDGE_L1, L1Move)

    def bridge_messages(self) -> Iterator[BridgeMessage]:
        return self._read(AUDIT.BRIDGE_MESSAGES, BridgeMessage)

    def l7_decisions(self) -> Iterator[L7Decision]:
        return self._read(L7, L7Decision)

    def oracle_reference(self) -> Iterator[OracleTick]:
        return self._read(AUDIT.ORACLE, OracleTick)

    def chain_heads(self) -> Iterator[Head]:
        """Each new head the probes saw, in time order."""
        return self._read(CHAIN.HEADS, Head)

    def chain_reorgs(self) -> Iterator[Reorg]:
        """Each step back or rewrite of the head the probes saw."""
        return self._read(CHAIN.REORGS, Reorg)

    def chain_blocks(self) -> Iterator[ChainBlock]:
        """The node's final canonical chain."""
        return self._read(CHAIN.BLOCKS, ChainBlock)

    # ----------------------------------------------------------- derived data

    def faults(self) -> list[FaultRecord]:
        """The fault log folded per fault: inject, heal and notes (by fault_id)."""
        return self.memo("faults", self._load_faults)

    def _load_faults(self) -> list[FaultRecord]:
        by_id: dict[int, FaultRecord] = {}
        for rec in self._read(FAULTS, FaultLine):
            fid = rec.fault_id
            fr = by_id.get(fid)
            if fr is None:
                fr = by_id[fid] = FaultRecord(
                    fault_id=fid,
                    label=rec.label or rec.name or f"fault-{fid}",
                    name=rec.name,
                    target=rec.target,
                    params=rec.params or {},
                )
            action = rec.action
            if rec.error:
                fr.errors.append(f"{action}: {rec.error}")
            if action == "inject":
                fr.scheduled_ns, fr.inject_ok = rec.scheduled_ns, rec.ok
                fr.inject_t_ns, fr.inject_done_t_ns = rec.t_ns, rec.done_t_ns
                fr.lateness_ms, fr.details, fr.trigger = rec.lateness_ms, rec.details, _trigger(rec)
                fr.block, fr.target_block = rec.block, rec.target_block
                fr.lateness_blocks = rec.lateness_blocks
            elif action == "missed":
                fr.trigger = _trigger(rec)
                fr.missed = rec.error or "never fired"
            elif action == "heal":
                fr.heal_scheduled_ns, fr.heal_ok = rec.scheduled_ns, rec.ok
                fr.heal_t_ns, fr.heal_done_t_ns = rec.t_ns, rec.done_t_ns
                fr.heal_details = rec.details
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
            times = [s.t_ns for s in self.samples()]
            times += [f.t_ns for f in self._read(FAULTS, FaultLine) if f.t_ns is not None]
            end = max(times, default=None)
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
            for tick in self.oracle_reference():
                price, t, market = tick.model_price, tick.host_ts_ns, tick.market
                if price is not None and t is not None and market is not None:
                    ref.add(market, t, price)
            return ref

        return self.memo("reference_prices", compute)

    def canonical_seqs(self) -> frozenset[int] | None:
        """`seq` of every canonical block (None without blocks.jsonl)."""

        def compute() -> frozenset[int] | None:
            if not self.has(AUDIT.BLOCKS):
                return None
            return frozenset(b.seq for b in self.blocks() if b.canonical and b.seq is not None)

        return self.memo("canonical_seqs", compute)

    def declared_rollbacks(self) -> list[FaultRecord]:
        """Rollbacks the scenario declared (chain.rollback faults that were injected)."""
        return [f for f in self.faults() if f.name == "chain.rollback" and f.injected]


def _trigger(rec: FaultLine) -> dict[str, object] | None:
    """A fault record's trigger with its text (`{"kind": "block", ..., "text": "block +50"}`)."""
    if rec.trigger is None:
        return None
    return {**rec.trigger, "text": rec.trigger_text}
