"""A large, consistent run record from a small exchange model, for the checker
benchmark and report tests.

`generate_run(run_dir, ops=..., blocks=..., seed=...)` writes a complete run directory
in the documented formats: genesis deposits through the bridge, fills with fees between
random accounts and a market maker, lazy funding settlements with dust, a leveraged
"whale" liquidated after a scripted price drop (justified, insurance cover when its
equity went negative), deposits and withdrawals released on L1, a declared rollback of
a few blocks, a post-only period after a database restart fault, fault windows, probes
and a Jepsen-style client history. Every invariant holds on it; tests break it on
purpose. Deterministic for a seed; memory stays bounded (records are streamed).
"""

from __future__ import annotations

import heapq
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import msgspec
from l2chaos.registry import checkers
from l2chaos.rundir.balances import BALANCES, Balance
from l2chaos.rundir.bridge import BRIDGE_L1, L1Move
from l2chaos.rundir.events import Ledger
from l2chaos.rundir.json_types import JsonObject, JsonValue
from l2chaos.rundir.market_state import MARKET_STATE, MarketRow
from l2chaos.rundir.probes import Sample
from l2chaos.rundir.run_info import RECORD_VERSION

from .formulas import Formulas, div
from .ledger import IncrementalRoot, LedgerState, block_hash
from .synth import DEFAULT_HEADER, FORMULAS, T0_NS

__all__ = ["SimStats", "generate_run"]

BTC, ETH = "BTC-USD-PERP", "ETH-USD-PERP"
FEES, INS, LIQ, DUST = -1, -2, -3, -4
MICRO = 1_000_000
BLOCK_S = 0.1
MAKER_FEE_BPS, TAKER_FEE_BPS, LIQ_FEE_BPS, MMF_BPS = 1, 4, 100, 300
WRITES = ("place_order", "place_order", "place_order", "cancel_order")
READS = ("get_account", "get_positions", "rpc_block_number")


@dataclass
class SimStats:
    """What was generated, to compare with what the checkers counted."""

    ops: int = 0
    blocks: int = 0
    canonical_blocks: int = 0
    events: int = 0
    fills: int = 0
    liquidations: int = 0
    acked_writes: int = 0
    rolled_back_writes: int = 0
    faults: int = 0
    records: int = 0
    files: dict[str, int] = field(default_factory=dict)


@dataclass
class _Message:
    """The bridge's message of a deposit: credited in block `credited` (a seq) or pending."""

    account: int
    amount: int
    credited: int | None = None


def _ledger_json(ledger: Ledger) -> JsonObject:
    """The ledger as the event log holds it: only the parts an event moved."""
    out: JsonObject = {}
    if ledger.cash is not None:
        out["cash"] = ledger.cash
    if ledger.pos is not None:
        out["pos"] = ledger.pos
    if ledger.dust_micro is not None:
        out["dust_micro"] = ledger.dust_micro
    return out


class _Out:
    """Append-only JSON-lines files with record counting."""

    def __init__(self, root: Path, stats: SimStats) -> None:
        self.root = root
        self.stats = stats
        self._fh: dict[str, TextIO] = {}

    def write(self, name: str, rec: JsonObject) -> None:
        self._line(name, json.dumps(rec, separators=(",", ":")))

    def write_record(self, name: str, rec: msgspec.Struct) -> None:
        """A typed record (`l2chaos.rundir`), encoded as its reader decodes it."""
        self._line(name, msgspec.json.encode(rec).decode())

    def _line(self, name: str, line: str) -> None:
        fh = self._fh.get(name)
        if fh is None:
            p = self.root / name
            p.parent.mkdir(parents=True, exist_ok=True)
            fh = self._fh[name] = p.open("w", encoding="utf-8", buffering=1 << 20)
        fh.write(line)
        fh.write("\n")
        self.stats.records += 1
        self.stats.files[name] = self.stats.files.get(name, 0) + 1

    def close(self) -> None:
        for fh in self._fh.values():
            fh.close()


class _Sim:
    def __init__(self, run_dir: Path, ops: int, blocks: int, seed: int, accounts: int) -> None:
        self.dir = run_dir
        self.rng = random.Random(seed)
        self.n_ops = ops
        self.n_blocks = blocks
        self.n_accounts = accounts
        self.maker = accounts + 1
        self.stats = SimStats()
        self.out = _Out(run_dir, self.stats)
        self.st = LedgerState(DUST)
        self.root = IncrementalRoot(self.st)
        self.price = {BTC: 90_000, ETH: 30_000}  # the oracle's model price
        # market data in force: index price, mark, funding index and its accrual time
        self.index_price = {BTC: 0, ETH: 0}
        self.mark = {BTC: 0, ETH: 0}
        self.index = {BTC: 400_000_000, ETH: 150_000_000}
        self.funding_ts = {BTC: T0_NS + 10**9, ETH: T0_NS + 10**9}
        rule = Formulas.from_header(FORMULAS).funding
        assert rule is not None, "FORMULAS states the funding rule"
        self.rule = rule
        self.ev_seq = 0
        self.seq = 0
        self.number = 0
        self.head = "0x" + "0" * 64
        self.hash_by_number: dict[int, str] = {}
        self.root_by_number: dict[int, str] = {}
        self.touched: set[int] = set()
        self.block_events = 0
        self.nonce = 0
        self.l1_seq = 0
        self.escrow = 0
        self.pending_credit: list[tuple[int, int, int, int]] = []  # (due block, nonce, acct, amt)
        self.messages: dict[int, _Message] = {}  # per deposit nonce
        self.pending_release: list[tuple[int, int, int, int]] = []
        self.history: list[tuple[int, int, JsonObject]] = []
        self.hseq = 0
        self.op_id = 0
        self.pending_tx: dict[int, list[tuple[str, int]]] = {}
        self.ops_budget = 0.0
        self.mode = "normal"
        self.orphan: tuple[int, int] | None = None  # production indexes orphaned later
        self.whale = 10_000

    # ------------------------------------------------------------- helpers

    def t_ns(self, s: float) -> int:
        return T0_NS + round(s * 1e9)

    def emit(self, kind: str, t: float, data: JsonObject, ledger: Ledger | None = None) -> None:
        rec: JsonObject = {
            "seq": self.ev_seq,
            "block": self.number,
            "block_seq": self.seq,
            "host_ts_ns": self.t_ns(t),
            "chain_ts_ns": self.t_ns(t),
            "kind": kind,
            "tx": None,
            "data": data,
        }
        if ledger is not None:
            rec["ledger"] = _ledger_json(ledger)
            d = self.st.apply(ledger)
            changed = set(d.by_account) | {e[0] for e in ledger.pos or ()}
            if d.dust_micro:
                changed.add(DUST)
            self.touched |= changed
            self.root.touch(changed)
        self.ev_seq += 1
        self.block_events += 1
        self.stats.events += 1
        self.out.write("audit/events.jsonl", rec)

    def size(self, a: int, m: str) -> tuple[int, int]:
        return self.st.positions.get(a, {}).get(m, (0, 0))

    def settle(self, a: int, m: str, t: float) -> None:
        size, cached = self.size(a, m)
        idx = self.index[m]
        if size == 0 or cached == idx:
            return
        payment = -size * (idx - cached)
        q = payment // MICRO
        r = payment - q * MICRO
        self.emit(
            "funding_settlement",
            t,
            {"account": a, "market": m, "size": size, "index_from": cached, "index_to": idx},
            Ledger(cash=[(a, q)], pos=[(a, m, size, idx)], dust_micro=r),
        )

    def fill(self, buyer: int, seller: int, m: str, qty: int, price: int, t: float) -> None:
        self.settle(buyer, m, t)
        self.settle(seller, m, t)
        notional = qty * price
        fee_b = div(notional * TAKER_FEE_BPS, 10_000, "ceil")
        fee_s = div(notional * MAKER_FEE_BPS, 10_000, "ceil")
        idx = self.index[m]
        b_after = self.size(buyer, m)[0] + qty
        s_after = self.size(seller, m)[0] - qty
        self.emit(
            "fill",
            t,
            {
                "market": m,
                "price": price,
                "size": qty,
                "buyer": buyer,
                "seller": seller,
                "maker": seller,
                "taker": buyer,
                "maker_fee": fee_s,
                "taker_fee": fee_b,
                "mode": self.mode,
            },
            Ledger(
                cash=[
                    (buyer, -notional - fee_b),
                    (seller, notional - fee_s),
                    (FEES, fee_b + fee_s),
                ],
                pos=[(buyer, m, b_after, idx), (seller, m, s_after, idx)],
            ),
        )
        self.stats.fills += 1

    def lock(self, acct: int, amount: int, t: float, credit_in: int) -> None:
        self.nonce += 1
        self.l1_seq += 1
        self.escrow += amount
        self.out.write_record(
            BRIDGE_L1, L1Move(self.l1_seq, self.t_ns(t), "lock", self.nonce, acct, amount)
        )
        self.pending_credit.append((self.seq + credit_in, self.nonce, acct, amount))
        self.messages[self.nonce] = _Message(acct, amount)

    def credit(self, nonce: int, acct: int, amount: int, t: float) -> None:
        self.messages[nonce].credited = self.seq
        self.emit(
            "deposit_credited",
            t,
            {"nonce": nonce, "account": acct, "amount": amount},
            Ledger(cash=[(acct, amount)]),
        )

    # ------------------------------------------------------------- blocks

    def seal(self, t: float, canonical: bool, extra: JsonObject | None = None) -> None:
        root = self.root.root()
        tx_root = "0x" + format(self.seq, "064x")
        h = block_hash(self.number, self.head, root, tx_root, self.t_ns(t))
        self.out.write(
            "audit/blocks.jsonl",
            {
                "seq": self.seq,
                "number": self.number,
                "hash": h,
                "parent_hash": self.head,
                "state_root": root,
                "tx_root": tx_root,
                "chain_ts_ns": self.t_ns(t),
                "host_ts_ns": self.t_ns(t),
                "tx_count": self.block_events,
                "canonical": canonical,
                "mode": self.mode,
                **(extra or {}),
            },
        )
        for a in sorted(self.touched):
            pos = {m: [s, c] for m, (s, c) in self.st.account_positions(a).items()}
            cash = self.st.account_cash(a)
            self.out.write_record(BALANCES, Balance(self.seq, self.number, a, cash, pos))
        for h_tx, acct in self.pending_tx.pop(self.seq, []):
            self.out.write(
                "audit/transactions.jsonl",
                {
                    "hash": h_tx,
                    "block": self.number,
                    "block_seq": self.seq,
                    "kind": "order",
                    "account": acct,
                    "status": "accepted",
                    "reason": None,
                    "order_id": None,
                    "client_id": None,
                    "nonce": None,
                },
            )
        self.touched = set()
        self.block_events = 0
        self.hash_by_number[self.number] = h
        self.root_by_number[self.number] = root
        self.head = h
        self.stats.blocks += 1
        if canonical:
            self.stats.canonical_blocks += 1
        self.seq += 1
        self.number += 1

    # -------------------------------------------------------------- history

    def hist(self, t_ns: int, rec: JsonObject) -> None:
        self.hseq += 1
        heapq.heappush(self.history, (t_ns, self.hseq, rec))

    def flush_history(self, before_ns: int) -> None:
        while self.history and self.history[0][0] < before_ns:
            self.out.write("history.jsonl", heapq.heappop(self.history)[2])

    def ops_in_block(self, k: int, t: float, windows: list[tuple[float, float]]) -> None:
        self.ops_budget += self.n_ops / self.n_blocks
        n = int(self.ops_budget)
        self.ops_budget -= n
        rng = self.rng
        for _ in range(n):
            inv = t + rng.random() * BLOCK_S
            in_fault = any(s <= inv <= e + 1.0 for s, e in windows)
            # near the end a write could not be committed before the last block: reads only
            write = rng.random() < 0.6 and k < self.n_blocks - 25
            op_name = rng.choice(WRITES) if write else rng.choice(READS)
            r = rng.random()
            if in_fault and r < 0.3:
                outcome, lat = "info", 1.0 + rng.random()
            elif r < 0.0005:
                outcome, lat = "info", 0.5
            elif r < 0.03:
                outcome, lat = "fail", 0.005 + rng.random() * 0.01
            else:
                outcome, lat = "ok", min(1.2, rng.lognormvariate(-4.2, 0.5))
            self.op_id += 1
            oid = f"w{self.op_id % 4}-{self.op_id}"
            acct = rng.randint(1, self.n_accounts)
            common: JsonObject = {
                "op_id": oid,
                "process": f"p{acct}",
                "worker": self.op_id % 4,
                "persona": "taker",
                "account": acct,
                "op": op_name,
            }
            t_inv = self.t_ns(inv)
            t_done = self.t_ns(inv + lat)
            self.hist(
                t_inv,
                {"type": "invoke", **common, "args": {}, "t_ns": t_inv, "mono_ns": t_inv - T0_NS},
            )
            result: JsonObject | None = None
            if outcome == "ok" and op_name in WRITES:
                due = self.seq + int((inv + lat - t) / BLOCK_S) + 1
                h_tx = f"0x{self.op_id:064x}"
                self.pending_tx.setdefault(due, []).append((h_tx, acct))
                result = {"tx_hash": h_tx, "order_id": self.op_id, "status": "accepted"}
                self.stats.acked_writes += 1
                if self.orphan is not None and self.orphan[0] <= due < self.orphan[1]:
                    self.stats.rolled_back_writes += 1
            self.hist(
                t_done,
                {
                    "type": outcome,
                    **common,
                    "result": result,
                    "error": None if outcome == "ok" else "error",
                    "t_ns": t_done,
                    "mono_ns": t_done - T0_NS,
                    "latency_ms": round(lat * 1e3, 3),
                },
            )
            self.stats.ops += 1

    # ------------------------------------------------------------------ run

    def run(self) -> SimStats:
        rng = self.rng
        n = self.n_blocks
        end_s = 1.0 + n * BLOCK_S + 2.0
        # four fault windows of 3 s; the first is a database restart followed by post-only
        starts = [1.0 + n * BLOCK_S * f for f in (0.15, 0.35, 0.55, 0.8)]
        windows = [(s, s + 3.0) for s in starts]
        names = ["process.restart_race", "network.latency", "oracle.stale", "process.pause"]
        targets = ["db", "ui-api->rpc", "", "rpc"]
        post_only = (windows[0][1], windows[0][1] + 2.0)
        orphan_len = 5
        rb_at = int(n * 0.65)  # production index where the rollback happens
        self.orphan = (rb_at - orphan_len, rb_at) if n > 50 else None
        whale_every = max(50, n // 6)
        whale_state: tuple[int, int] | None = None  # (account, stage)
        base_dep = 1_000_000_000_000  # $1M per account

        # genesis: everyone funded through the bridge, credited in block 0
        t = 1.0
        self.emit("genesis", t, {"funding_index": dict(self.index)})
        for a in [*range(1, self.n_accounts + 1), INS, LIQ]:
            self.lock(a, base_dep, t - 0.5, 0)
        self.lock(self.maker, 1_000 * base_dep, t - 0.5, 0)
        snapshot: tuple[LedgerState, dict[int, str]] | None = None

        for k in range(n):
            t = 1.0 + k * BLOCK_S
            self.ops_in_block(k, t, windows)
            self.flush_history(self.t_ns(t - 5.0))
            orphaned = self.orphan is not None and self.orphan[0] <= self.seq < self.orphan[1]
            if self.orphan is not None and self.seq == self.orphan[0]:
                snapshot = (self.st.copy(), dict(self.hash_by_number))
                markets = self._market_data()
                back_to = self.number - 1
            extra_rollback: JsonObject | None = None
            if self.orphan is not None and self.seq == self.orphan[1] and snapshot is not None:
                # the declared rollback: state back to block `back_to`, production goes on
                self.st = snapshot[0]
                self.index_price, self.mark, self.index, self.funding_ts = markets
                self.root = IncrementalRoot(self.st)
                self.root.touch(self.st.accounts())
                orphan_seqs = list(range(self.orphan[0], self.orphan[1]))
                self.number = back_to + 1
                self.head = self.hash_by_number[back_to]
                extra_rollback = {
                    "to_block": back_to,
                    "to_seq": self.orphan[0] - 1,
                    "to_hash": self.head,
                    "state_root": self.root_by_number[back_to],
                    "orphaned": orphan_seqs,
                }
                self.out.write(
                    "faults.jsonl",
                    self._fault_rec(
                        4,
                        "chain.rollback",
                        "",
                        "inject",
                        t - 0.05,
                        {"declared": {"to_block": back_to}},
                    ),
                )
                self.out.write(
                    "faults.jsonl", self._fault_rec(4, "chain.rollback", "", "heal", t - 0.05, None)
                )
                self.stats.faults += 1
            if extra_rollback is not None:
                self.emit("rollback", t, extra_rollback)
            # bridge: credits due now (never inside the orphaned range)
            if not orphaned:
                due = [p for p in self.pending_credit if p[0] <= self.seq]
                self.pending_credit = [p for p in self.pending_credit if p[0] > self.seq]
                for _, nonce, acct, amount in due:
                    self.credit(nonce, acct, amount, t)
                rel = [p for p in self.pending_release if p[0] <= self.seq]
                self.pending_release = [p for p in self.pending_release if p[0] > self.seq]
                for _, nonce, acct, amount in rel:
                    self.l1_seq += 1
                    self.escrow -= amount
                    move = L1Move(self.l1_seq, self.t_ns(t), "release", nonce, acct, amount)
                    self.out.write_record(BRIDGE_L1, move)
            # oracle tick every 5 blocks: the reference moves, the exchange follows
            if k % 5 == 0:
                for m in (BTC, ETH):
                    self.price[m] = max(1_000, round(self.price[m] * (1 + rng.gauss(0, 0.0008))))
                    self._tick(m, t)
            # modes around the database restart
            if post_only[0] <= t < post_only[0] + BLOCK_S:
                self._mode("post_only", t)
            if post_only[1] <= t < post_only[1] + BLOCK_S:
                self._mode("normal", t)
            # trading
            for _ in range(rng.randint(0, 2)):
                m = BTC if rng.random() < 0.6 else ETH
                a = rng.randint(1, self.n_accounts)
                qty = rng.randint(1, 20) * 100
                px = round(self.price[m] * (1 + rng.uniform(-0.002, 0.002)))
                if rng.random() < 0.5:
                    self.fill(a, self.maker, m, qty, px, t)
                else:
                    self.fill(self.maker, a, m, qty, px, t)
            if not orphaned and rng.random() < 0.01:
                a = rng.randint(1, self.n_accounts)
                if rng.random() < 0.5:
                    self.lock(a, 5_000_000, t, 3)
                else:
                    amount = 1_000_000
                    self.nonce += 1
                    self.emit(
                        "withdrawal",
                        t,
                        {"nonce": self.nonce, "account": a, "amount": amount},
                        Ledger(cash=[(a, -amount)]),
                    )
                    self.pending_release.append((self.seq + 30, self.nonce, a, amount))
            # the whale: funded, leveraged 25x, crashed, liquidated (justified)
            if (
                not orphaned
                and self.orphan is not None
                and self.orphan[0] - 5 <= self.seq < self.orphan[1] + 5
            ):
                pass  # keep the whale away from the rollback
            elif whale_state is None and k % whale_every == whale_every // 2 and not orphaned:
                self.whale += 1
                whale_state = (self.whale, 0)
                self.lock(self.whale, 36_000_000_000, t, 0)  # $36,000 credited now
                self.credit(self.nonce, self.whale, 36_000_000_000, t)
                self.pending_credit = [p for p in self.pending_credit if p[1] != self.nonce]
            elif whale_state is not None and not orphaned:
                w, stage = whale_state
                if stage == 0:
                    self.fill(
                        w, self.maker, BTC, 10_000_000, self.price[BTC], t
                    )  # 10 BTC, 4% margin
                    whale_state = (w, 1)
                elif stage == 1:
                    self.price[BTC] = round(self.price[BTC] * 0.96)  # the crash
                    self._tick(BTC, t)
                    whale_state = (w, 2)
                else:
                    self._liquidate(w, t)
                    whale_state = None
            self.seal(t, canonical=not orphaned)
        # anything still in flight is written; the probes and the fault log
        self.flush_history(2**63)
        self._faults_and_probes(windows, names, targets, end_s)
        self._run_files(end_s)
        self.out.close()
        with (self.dir / "audit/bridge_messages.jsonl").open("w", encoding="utf-8") as fh:
            for nonce, message in sorted(self.messages.items()):
                at = message.credited
                msg = {
                    "nonce": nonce,
                    "direction": "l1_to_l2",
                    "account": message.account,
                    "amount": message.amount,
                    "status": "pending" if at is None else "credited",
                    "l2_block_seq": at,
                    "attempts": 1,
                }
                fh.write(json.dumps(msg) + "\n")
        (self.dir / "audit/bridge_state.json").write_text(
            json.dumps({"escrow_balance": self.escrow, "event_cursor": self.ev_seq - 1}) + "\n",
            encoding="utf-8",
        )
        return self.stats

    def _market_data(self) -> tuple[dict[str, int], ...]:
        return dict(self.index_price), dict(self.mark), dict(self.index), dict(self.funding_ts)

    def _tick(self, m: str, t: float) -> None:
        """An oracle tick: funding accrues (the documented formula) and the price and a
        mark a little off it come into force."""
        p = self.price[m]
        now = self.t_ns(t)
        self.index[m] += self.rule.delta(
            self.mark[m], self.index_price[m], now - self.funding_ts[m], MICRO
        )
        self.funding_ts[m] = max(self.funding_ts[m], now)
        self.index_price[m] = p
        self.mark[m] = round(p * (1 + self.rng.uniform(-0.003, 0.003)))
        self.out.write(
            "audit/oracle_reference.jsonl",
            {
                "host_ts_ns": now,
                "market": m,
                "model_price": p,
                "published_price": p,
                "observed_ts_ns": now,
                "mode": "normal",
            },
        )
        row = MarketRow(
            block_seq=self.seq,
            block=self.number,
            market=m,
            index_price=p,
            mark_price=self.mark[m],
            funding_index=self.index[m],
            index_ts_ns=now,
            funding_ts_ns=self.funding_ts[m],
        )
        self.out.write_record(MARKET_STATE, row)
        self.emit(
            "price_update",
            t,
            {"market": m, "price": p, "mark_price": self.mark[m], "funding_index": self.index[m]},
        )

    def _mode(self, mode: str, t: float) -> None:
        self.emit(
            "mode_change",
            t,
            {"mode": mode, "market": None, "from": self.mode, "reason": "staged_reopen"},
        )
        self.mode = mode

    def _liquidate(self, w: int, t: float) -> None:
        st = self.st
        cash = st.account_cash(w)
        positions = {m: [s, c] for m, (s, c) in st.account_positions(w).items()}
        markets = {
            m: {
                "index_price": self.index_price[m],
                "mark_price": self.mark[m],
                "funding_index": self.index[m],
            }
            for m in positions
        }
        eq = cash + sum(
            s * self.mark[m] + (-s * (self.index[m] - c)) // MICRO
            for m, (s, c) in positions.items()
        )
        mm = sum(
            div(abs(s) * self.mark[m] * MMF_BPS, 10_000, "ceil") for m, (s, _) in positions.items()
        )
        budget = max(0, eq)
        for m in sorted(positions):
            self.settle(w, m, t)
            self.settle(LIQ, m, t)
            size = self.size(w, m)[0]
            price = self.mark[m]
            notional = size * price
            fee = min(div(abs(size) * price * LIQ_FEE_BPS, 10_000, "ceil"), budget)
            budget -= fee
            vault_after = self.size(LIQ, m)[0] + size
            self.emit(
                "liquidation",
                t,
                {
                    "account": w,
                    "market": m,
                    "size": size,
                    "price": price,
                    "oracle_price": self.index_price[m],
                    "mark_price": price,
                    "guard": None,
                    "cash": cash,
                    "positions": positions,
                    "markets": markets,
                    "equity": eq,
                    "maintenance": mm,
                    "fee": fee,
                },
                Ledger(
                    cash=[(w, notional - fee), (LIQ, -notional), (INS, fee)],
                    pos=[(w, m, 0, self.index[m]), (LIQ, m, vault_after, self.index[m])],
                ),
            )
            self.stats.liquidations += 1
        left = st.account_cash(w)
        if left < 0:
            self.emit(
                "insurance_cover",
                t,
                {"account": w, "deficit": -left, "covered": -left},
                Ledger(cash=[(INS, left), (w, -left)]),
            )

    def _fault_rec(
        self, fid: int, name: str, target: str, action: str, t: float, details: JsonValue
    ) -> JsonObject:
        return {
            "fault_id": fid,
            "label": f"{name}#{fid}",
            "name": name,
            "target": target,
            "action": action,
            "params": {},
            "scheduled_ns": round(t * 1e9),
            "t_ns": self.t_ns(t),
            "mono_ns": round(t * 1e9),
            "done_mono_ns": round(t * 1e9),
            "lateness_ms": 0.0,
            "took_ms": 0.0,
            "ok": True,
            "error": None,
            "details": details,
        }

    def _faults_and_probes(
        self, windows: list[tuple[float, float]], names: list[str], targets: list[str], end_s: float
    ) -> None:
        for i, (s, e) in enumerate(windows):
            self.out.write(
                "faults.jsonl", self._fault_rec(i, names[i], targets[i], "inject", s, None)
            )
            self.out.write(
                "faults.jsonl", self._fault_rec(i, names[i], targets[i], "heal", e, None)
            )
            self.stats.faults += 1
        t = 0.5
        while t < end_s:
            bad = any(s <= t < e + 1.0 for s, e in windows)
            height = max(0, min(self.n_blocks - 1, int((t - 1.0) / BLOCK_S)))
            sample = Sample(
                t_ns=self.t_ns(t),
                mono_ns=round(t * 1e9),
                health={"db": not bad, "sequencer": not bad},
                ready={"db": not bad, "sequencer": not bad},
                block_height=height,
                order_ok=not bad,
                order_ms=12.0,
                order_error=None,
            )
            self.out.write("probes.jsonl", sample.to_json())
            t = round(t + 0.25, 6)

    def _run_files(self, end_s: float) -> None:
        header: JsonObject = json.loads(json.dumps(DEFAULT_HEADER))
        header["exported_t_ns"] = self.t_ns(end_s)
        (self.dir / "audit/header.json").write_text(json.dumps(header, indent=1), encoding="utf-8")
        (self.dir / "run.json").write_text(
            json.dumps(
                {
                    "record_version": RECORD_VERSION,
                    "run_id": self.dir.name,
                    "scenario": "synthetic",
                    "profile": "hardened",
                    "backend": "local",
                    "seed": 1,
                    "t0_ns": T0_NS,
                    "started_t_ns": T0_NS,
                    "ended_t_ns": self.t_ns(end_s),
                    "phase": "checked",
                    "problems": [],
                },
                indent=1,
            ),
            encoding="utf-8",
        )
        from l2chaos.stacks.perpdex import STACK_FILE

        logs = self.dir / "logs"
        logs.mkdir(exist_ok=True)
        (logs / "sequencer.log").write_text(
            json.dumps({"level": "info", "service": "sequencer", "msg": "state loaded"}) + "\n"
        )

        invariants = [{"name": n, "params": {}} for n in checkers()]
        (self.dir / "scenario.resolved.json").write_text(
            json.dumps(
                {
                    "name": "synthetic",
                    "description": "a generated run record",
                    "tags": ["synthetic"],
                    "seed": 1,
                    "profile": "hardened",
                    "backend": "local",
                    "stack": {"ref": "perpdex", "name": "perpdex", "path": str(STACK_FILE)},
                    "timeline": [],
                    "invariants": invariants,
                    "sometimes": [
                        {
                            "during": "all_faults",
                            "fault_index": None,
                            "count": "ops",
                            "at_least": 1,
                            "at_most": None,
                            "extend_ns": 0,
                            "profiles": None,
                        }
                    ],
                    "expect": {"hardened": {"all_hold": True}},
                },
                indent=1,
            ),
            encoding="utf-8",
        )


def generate_run(
    run_dir: Path | str,
    *,
    ops: int = 10_000,
    blocks: int = 1_000,
    seed: int = 1,
    accounts: int = 200,
) -> SimStats:
    """Write a consistent run record with `ops` client operations and `blocks` blocks."""
    path = Path(run_dir)
    path.mkdir(parents=True, exist_ok=True)
    (path / "audit").mkdir(exist_ok=True)
    return _Sim(path, ops, blocks, seed, accounts).run()
