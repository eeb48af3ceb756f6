"""Writing run records by hand, in the documented formats (docs/architecture.md).

`RecordWriter` is for tests of checkers and reports, here and in plugins: it writes
scenario.resolved.json, run.json, faults.jsonl, probes.jsonl, history.jsonl and the
audit export line by line, with block hashes computed as the contract says. Times are
given in seconds since the run's time zero. `generate_run` (in `l2chaos.invariants.
simulate`) builds a large consistent record from a small exchange model.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TextIO

import msgspec
from l2chaos.rundir.balances import BALANCES, Balance
from l2chaos.rundir.bridge import BRIDGE_L1, L1Move
from l2chaos.rundir.json_types import JsonObject, JsonValue
from l2chaos.rundir.market_state import MARKET_STATE, MarketRow
from l2chaos.rundir.probes import Sample
from l2chaos.rundir.run_info import RECORD_VERSION

from .ledger import block_hash

__all__ = ["DEFAULT_HEADER", "FORMULAS", "RecordWriter", "block_hash"]

T0_NS = 1_768_800_000_000_000_000

# The value formulas of docs/architecture.md, as the reference stack states them.
FORMULAS: JsonObject = {
    "funding_index": {
        "on": "price_update",
        "period_ns": 8 * 3600 * 1_000_000_000,
        "premium_cap_bps": 50,
        "rounding": "floor",
    },
    "funding_settlement": {"rounding": "floor", "remainder_to": "dust"},
    "fee": {"rounding": "ceil"},
    "liquidation": {"price": "mark", "fee_rounding": "ceil", "fee_cap": "equity"},
}


def _market(size_decimals: int) -> dict[str, int]:
    """A market as the audit header lists it: only its size decimals differ here."""
    return {
        "size_decimals": size_decimals,
        "price_decimals": 0,
        "imf_bps": 500,
        "mmf_bps": 300,
        "maker_fee_bps": 1,
        "taker_fee_bps": 4,
        "liquidation_fee_bps": 100,
        "band_bps": 500,
    }


DEFAULT_HEADER: JsonObject = {
    "format": "l2chaos-audit/1",
    "stack": "synthetic",
    "scales": {"quote_decimals": 6, "funding_index_scale": 1_000_000},
    "markets": {"BTC-USD-PERP": _market(size_decimals=6), "ETH-USD-PERP": _market(size_decimals=5)},
    "system_accounts": {"fees": -1, "insurance": -2, "liquidator": -3, "dust": -4},
    "switches": {},
    "formulas": FORMULAS,
}


class RecordWriter:
    """Writes one run directory. Use as a context manager (or call `close`)."""

    def __init__(self, run_dir: Path | str, t0_ns: int = T0_NS) -> None:
        self.dir = Path(run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "audit").mkdir(exist_ok=True)
        self.t0_ns = t0_ns
        self._files: dict[str, TextIO] = {}
        # (t_ns, a completion?, line): invokes first among lines of the same time
        self._history: list[tuple[int, bool, JsonObject]] = []
        self._event_seq = 0
        self._block_seq = 0
        self.head_hash = "0x" + "0" * 64

    # ---------------------------------------------------------------- basics

    def t(self, seconds: float) -> int:
        return self.t0_ns + round(seconds * 1e9)

    def write_json(self, name: str, data: JsonValue) -> Path:
        p = self.dir / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        return p

    def append(self, name: str, record: Mapping[str, JsonValue]) -> None:
        self._file(name).write(json.dumps(record, separators=(",", ":")) + "\n")

    def append_record(self, name: str, record: msgspec.Struct) -> None:
        """A line of a typed record (`l2chaos.rundir`), encoded as its reader decodes it."""
        self._file(name).write(msgspec.json.encode(record).decode() + "\n")

    def touch(self, name: str) -> None:
        """Create an empty file (the record has it, with nothing in it)."""
        self._file(name)

    def _file(self, name: str) -> TextIO:
        fh = self._files.get(name)
        if fh is None:
            p = self.dir / name
            p.parent.mkdir(parents=True, exist_ok=True)
            fh = self._files[name] = p.open("a", encoding="utf-8")
        return fh

    def close(self) -> None:
        if self._history:
            self._history.sort(key=lambda h: (h[0], h[1]))
            with (self.dir / "history.jsonl").open("a", encoding="utf-8") as fh:
                for _, _, r in self._history:
                    fh.write(json.dumps(r, separators=(",", ":")) + "\n")
            self._history.clear()
        for f in self._files.values():
            f.close()
        self._files.clear()

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------- run files

    def scenario(
        self,
        *,
        name: str = "synthetic",
        profile: str | None = "hardened",
        invariants: Sequence[Mapping[str, JsonValue]] | None = None,
        sometimes: Sequence[Mapping[str, JsonValue]] | None = None,
        expect: Mapping[str, JsonValue] | None = None,
        timeline: Sequence[Mapping[str, JsonValue]] | None = None,
        seed: int = 1,
        backend: str = "local",
        load: Mapping[str, JsonValue] | None = None,
    ) -> None:
        self.write_json(
            "scenario.resolved.json",
            {
                "name": name,
                "description": "a hand-written run record",
                "tags": [],
                "seed": seed,
                "profile": profile,
                "backend": backend,
                "timeline": timeline or [],
                "invariants": invariants if invariants is not None else [],
                "sometimes": sometimes or [],
                "expect": expect or {},
                "load": load,
            },
        )

    def run(self, *, end_s: float | None = None, **fields: JsonValue) -> None:
        data: JsonObject = {
            "record_version": RECORD_VERSION,
            "run_id": self.dir.name,
            "t0_ns": self.t0_ns,
            "started_t_ns": self.t0_ns,
            "phase": "checked",
            "backend": "local",
            "seed": 1,
        }
        if end_s is not None:
            data["ended_t_ns"] = self.t(end_s)
        data.update(fields)
        self.write_json("run.json", data)

    def header(self, **overrides: JsonValue) -> None:
        data: JsonObject = json.loads(json.dumps(DEFAULT_HEADER))
        data.update(overrides)
        data.setdefault("exported_t_ns", self.t0_ns)
        self.write_json("audit/header.json", data)

    def fault(
        self,
        fault_id: int,
        name: str,
        *,
        inject_s: float,
        heal_s: float | None,
        target: str = "db",
        label: str | None = None,
        scheduled_s: float | None = None,
        inject_ok: bool = True,
        heal_ok: bool = True,
        details: JsonValue = None,
        error: str | None = None,
    ) -> None:
        base: JsonObject = {
            "fault_id": fault_id,
            "label": label or f"{name}@{fault_id}",
            "name": name,
            "target": target,
            "params": {},
        }

        def action(what: str, sched_s: float, at_s: float, ok: bool, details: JsonValue) -> None:
            self.append(
                "faults.jsonl",
                {
                    **base,
                    "action": what,
                    "scheduled_ns": round(sched_s * 1e9),
                    "t_ns": self.t(at_s),
                    "mono_ns": round(at_s * 1e9),
                    "lateness_ms": round((at_s - sched_s) * 1e3, 3),
                    "took_ms": 0.0,
                    "ok": ok,
                    "error": None if ok else (error or f"{what} failed"),
                    "details": details,
                },
            )

        action(
            "inject", inject_s if scheduled_s is None else scheduled_s, inject_s, inject_ok, details
        )
        if heal_s is not None:
            action("heal", heal_s, heal_s, heal_ok, None)

    def probe(
        self,
        t_s: float,
        *,
        healthy: bool = True,
        height: int | None = None,
        order_ok: bool | None = True,  # None: the stack has no order probe
        services: tuple[str, ...] = ("db", "sequencer", "rpc"),
    ) -> None:
        sample = Sample(
            t_ns=self.t(t_s),
            mono_ns=round(t_s * 1e9),
            health=dict.fromkeys(services, healthy),
            ready=dict.fromkeys(services, healthy),
            block_height=height,
            order_ok=order_ok,
            order_ms=20.0 if order_ok else None,
            order_error="503" if order_ok is False else None,
        )
        self.append("probes.jsonl", sample.to_json())

    def op(
        self,
        op_id: str,
        op: str,
        *,
        invoke_s: float,
        done_s: float | None,
        outcome: str = "ok",
        account: int = 1,
        result: Mapping[str, JsonValue] | None = None,
        args: Mapping[str, JsonValue] | None = None,
        persona: str = "taker",
        process: str | None = None,
        write: bool = False,
    ) -> None:
        """An operation: its invoke and (unless done_s is None) its completion; `write`
        marks it a write as the load does for any protocol's writes."""
        proc = process or f"p-{op_id}"
        common: JsonObject = {
            "op_id": op_id,
            "process": proc,
            "worker": 0,
            "persona": persona,
            "account": account,
            "op": op,
        }
        if write:
            common["write"] = True
        t_inv = self.t(invoke_s)
        self._history.append(
            (
                t_inv,
                False,
                {"type": "invoke", **common, "args": args or {}, "t_ns": t_inv, "mono_ns": 0},
            )
        )
        if done_s is not None:
            t_done = self.t(done_s)
            self._history.append(
                (
                    t_done,
                    outcome != "invoke",
                    {
                        "type": outcome,
                        **common,
                        "result": result,
                        "error": None if outcome == "ok" else "error",
                        "t_ns": t_done,
                        "mono_ns": 0,
                        "latency_ms": round((done_s - invoke_s) * 1e3, 3),
                    },
                )
            )

    # --------------------------------------------------------------- audit

    def block(
        self,
        number: int,
        *,
        host_s: float,
        state_root: str = "0x" + "ab" * 32,
        parent_hash: str | None = None,
        canonical: bool = True,
        tx_count: int = 0,
        mode: str = "normal",
        tx_root: str = "0x" + "cd" * 32,
        seq: int | None = None,
    ) -> JsonObject:
        """Append a block (its hash computed), chaining on the last one by default."""
        parent = self.head_hash if parent_hash is None else parent_hash
        chain_ts = self.t(host_s)
        h = block_hash(number, parent, state_root, tx_root, chain_ts)
        s = self._block_seq if seq is None else seq
        self._block_seq = s + 1
        rec: JsonObject = {
            "seq": s,
            "number": number,
            "hash": h,
            "parent_hash": parent,
            "state_root": state_root,
            "tx_root": tx_root,
            "chain_ts_ns": chain_ts,
            "host_ts_ns": self.t(host_s),
            "tx_count": tx_count,
            "canonical": canonical,
            "mode": mode,
        }
        self.append("audit/blocks.jsonl", rec)
        self.head_hash = h
        return rec

    def event(
        self,
        kind: str,
        *,
        block: int,
        block_seq: int,
        host_s: float,
        data: Mapping[str, JsonValue] | None = None,
        ledger: Mapping[str, JsonValue] | None = None,
        tx: str | None = None,
    ) -> JsonObject:
        rec: JsonObject = {
            "seq": self._event_seq,
            "block": block,
            "block_seq": block_seq,
            "host_ts_ns": self.t(host_s),
            "chain_ts_ns": self.t(host_s),
            "kind": kind,
            "tx": tx,
            "data": data or {},
        }
        if ledger is not None:
            rec["ledger"] = ledger
        self._event_seq += 1
        self.append("audit/events.jsonl", rec)
        return rec

    def balance(
        self,
        *,
        block_seq: int,
        block: int,
        account: int,
        cash: int,
        positions: dict[str, list[int]] | None = None,
    ) -> None:
        self.append_record(
            BALANCES,
            Balance(
                block_seq=block_seq,
                block=block,
                account=account,
                cash=cash,
                positions=positions or {},
            ),
        )

    def market_state(
        self,
        *,
        block_seq: int,
        block: int,
        market: str,
        index_price: int,
        mark_price: int | None = None,
        funding_index: int = 0,
        index_ts_ns: int | None = None,
    ) -> None:
        mark = index_price if mark_price is None else mark_price
        row = MarketRow(block_seq, block, market, index_price, mark, funding_index, index_ts_ns)
        self.append_record(MARKET_STATE, row)

    def tx(
        self,
        hash: str,
        *,
        block: int,
        block_seq: int,
        status: str = "accepted",
        kind: str = "place_order",
        account: int = 1,
        order_id: JsonValue = None,
        nonce: JsonValue = None,
    ) -> None:
        self.append(
            "audit/transactions.jsonl",
            {
                "hash": hash,
                "block": block,
                "block_seq": block_seq,
                "kind": kind,
                "account": account,
                "status": status,
                "reason": None if status == "accepted" else "rejected",
                "order_id": order_id,
                "client_id": None,
                "nonce": nonce,
            },
        )

    def bridge_l1(
        self, kind: str, *, seq: int, nonce: int, account: int, amount: int, host_s: float
    ) -> None:
        move = L1Move(seq, self.t(host_s), kind, nonce, account, amount)
        self.append_record(BRIDGE_L1, move)

    def bridge_state(self, escrow_balance: int, event_cursor: int | None = None) -> None:
        state: JsonObject = {"escrow_balance": escrow_balance}
        if event_cursor is not None:
            state["event_cursor"] = event_cursor
        self.write_json("audit/bridge_state.json", state)

    def bridge_message(
        self,
        nonce: JsonValue,
        *,
        account: int,
        amount: int,
        status: str,
        l2_block_seq: int | None = None,
        attempts: int = 1,
        direction: str = "l1_to_l2",
    ) -> None:
        self.append(
            "audit/bridge_messages.jsonl",
            {
                "nonce": nonce,
                "direction": direction,
                "account": account,
                "amount": amount,
                "status": status,
                "l2_tx": None,
                "l2_block": None,
                "l2_block_seq": l2_block_seq,
                "attempts": attempts,
            },
        )

    def oracle(
        self,
        t_s: float,
        market: str,
        model_price: int,
        published_price: int | None = None,
        mode: str = "normal",
    ) -> None:
        self.append(
            "audit/oracle_reference.jsonl",
            {
                "host_ts_ns": self.t(t_s),
                "market": market,
                "model_price": model_price,
                "published_price": model_price if published_price is None else published_price,
                "observed_ts_ns": self.t(t_s),
                "mode": mode,
            },
        )

    def l7(self, t_s: float, rule: str, *, hit: bool = True, effect: str = "corrupted") -> None:
        """One decision of the L7 proxy (l7.jsonl) on a JSON-RPC call."""
        self.append(
            "l7.jsonl",
            {
                "t_ns": self.t(t_s),
                "link": "oracle->pricefeed",
                "rule": rule,
                "fault": "rpc.corrupt",
                "action": "rpc.corrupt",
                "hit": hit,
                "effect": effect if hit else "pass",
                "call": {"id": 1, "method": "feed_getPrices"},
            },
        )
