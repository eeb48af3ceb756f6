"""The exchange state machine: applies transactions in block order, runs the
liquidation engine at the end of every block, and records every state change as an
event with its exact ledger.

Pure: no clock, no I/O. The sequencer calls `begin_block`, `apply` for each
transaction and `end_block`, then seals the `BlockOutput` and persists its `BlockBody`
as it is.

Ledger rules (docs/architecture.md, research domain.md §4):
- every position change first settles funding to the market's current index
  (`funding_settlement`: floor to the account, remainder in micro-quanta to dust);
- a fill moves size*price between buyer and seller and both fees to the fees account,
  all in the fill's own ledger (`maker_fee`, `taker_fee` in its data);
- a liquidation moves the position to the liquidator vault at the mark price, the
  liquidation fee (capped at the remaining equity) to the insurance fund, and a
  negative remainder is covered by the insurance fund (`insurance_cover`) or declared
  (`insurance_shortfall`).
So Σ Q*1e6 + Σ S*c + dust_micro = N*1e6 (N = deposits - withdrawals) holds exactly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from l2chaos.stacks.perpdex.engine.book import Book, Order
from l2chaos.stacks.perpdex.engine.funding import (
    FUNDING_PERIOD_NS,
    PREMIUM_CAP_BPS,
    funding_delta,
    mark_price,
    premium,
)
from l2chaos.stacks.perpdex.engine.margin import (
    equity,
    funding_settlement,
    initial_margin,
    liquidation_price,
    maintenance_margin,
    margin_requirement,
)
from l2chaos.stacks.perpdex.engine.state import (
    Account,
    Event,
    LedgerDelta,
    MarketCache,
    MarketData,
    Position,
)
from l2chaos.stacks.perpdex.engine.stateroot import StateRoot
from l2chaos.stacks.perpdex.engine.txs import MODES, Tx
from l2chaos.stacks.perpdex.markets import (
    BPS,
    DUST,
    FEES,
    INSURANCE,
    LIQUIDATOR,
    MARKET_NAMES,
    MARKETS,
    AccountLayout,
)

__all__ = [
    "FORMULAS",
    "SWITCHES",
    "BlockBody",
    "BlockContext",
    "BlockOutput",
    "Exchange",
    "Guards",
]

SWITCHES = (
    "readiness_gate",
    "price_validation",
    "staleness_guard",
    "post_only_band",
    "staged_reopen",
    "market_data_validation",
)

# The arithmetic above as the audit header states it (docs/architecture.md, "formulas"),
# so checkers recompute every value flow from the stack's own declared rules.
FORMULAS = {
    "funding_index": {
        "on": "price_update",
        "period_ns": FUNDING_PERIOD_NS,
        "premium_cap_bps": PREMIUM_CAP_BPS,
        "rounding": "floor",
    },
    "funding_settlement": {"rounding": "floor", "remainder_to": "dust"},
    "fee": {"rounding": "ceil"},
    "liquidation": {"price": "mark", "fee_rounding": "ceil", "fee_cap": "equity"},
}


@dataclass(frozen=True)
class Guards:
    """The hardening switches and their thresholds."""

    readiness_gate: bool = False
    price_validation: bool = False
    staleness_guard: bool = False
    post_only_band: bool = False
    staged_reopen: bool = False
    market_data_validation: bool = False
    max_price_age_ns: int = 3_000_000_000
    max_price_jump_bps: int = 1000
    max_mark_deviation_bps: int = 100  # price_validation: the mark within ±1% of the index
    break_fee_path: bool = False  # test only: fees charged to traders vanish

    @classmethod
    def from_switches(cls, switches: Mapping[str, bool], **kw: Any) -> Guards:
        return cls(**{k: bool(switches.get(k, False)) for k in SWITCHES}, **kw)

    def switches(self) -> dict[str, bool]:
        return {k: bool(getattr(self, k)) for k in SWITCHES}


@dataclass(frozen=True)
class BlockContext:
    number: int
    seq: int
    chain_ts_ns: int
    host_ts_ns: int
    market_ready: bool = True  # market data loaded and fresh (what the readiness gate needs)


@dataclass
class BlockBody:
    """What one block did, in the order it happened. The exchange fills it while the
    block is open; the sequencer seals it and the database writes it as it is."""

    receipts: list[tuple[Tx, dict[str, Any]]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    # account -> snapshot {cash, positions}, taken when the block ends
    touched: dict[int, dict[str, Any]] = field(default_factory=dict)
    orders: dict[int, Order] = field(default_factory=dict)  # orders created or changed
    fills: list[dict[str, Any]] = field(default_factory=list)
    liquidations: list[dict[str, Any]] = field(default_factory=list)
    funding: list[dict[str, Any]] = field(default_factory=list)
    consumed: list[tuple[int, int, int]] = field(default_factory=list)  # (nonce, account, amount)


@dataclass
class BlockOutput:
    ctx: BlockContext
    body: BlockBody
    state_root: str
    mode: str


@dataclass
class _OpenBlock:
    ctx: BlockContext
    body: BlockBody = field(default_factory=BlockBody)
    touched: set[int] = field(default_factory=set)  # accounts to snapshot at the end


# what a fill event says beyond the block's fill row (the fills table's columns)
_EVENT_ONLY = frozenset({"maker", "taker", "taker_side", "mode"})


class _Reject(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Exchange:
    def __init__(self, layout: AccountLayout, guards: Guards, cache: MarketCache) -> None:
        self.layout = layout
        self.guards = guards
        self.cache = cache
        self.accounts: dict[int, Account] = {}
        self.books: dict[str, Book] = {m: Book(m) for m in MARKET_NAMES}
        self.orders: dict[int, Order] = {}  # open orders
        self.with_positions: set[int] = set()
        self.consumed: dict[int, int] = {}  # deposit message nonce -> block seq credited
        self.mode = "normal"
        self.next_event_seq = 1
        self.next_order_id = 1
        self.next_fill_id = 1
        self.root = StateRoot()
        self._open: _OpenBlock | None = None
        self._last_blocked: dict[int, tuple[Any, ...]] = {}

    # ------------------------------------------------------------------ loading

    def load(
        self,
        accounts: Iterable[Account],
        open_orders: Iterable[Order],
        consumed: Mapping[int, int],
        mode: str,
        next_event_seq: int,
        next_order_id: int,
        next_fill_id: int,
    ) -> None:
        """Replace the whole state (start-up and rollback)."""
        self.accounts = {}
        self.books = {m: Book(m) for m in MARKET_NAMES}
        self.orders = {}
        self.with_positions = set()
        self.root.clear()
        self._last_blocked = {}
        for a in accounts:
            self.accounts[a.id] = a
            if a.positions:
                self.with_positions.add(a.id)
            self.root.update(a.id, a.cash, a.positions_json())
        for o in sorted(open_orders, key=lambda o: o.id):
            self._rest(o)
        self.consumed = dict(consumed)
        self.mode = mode
        self.next_event_seq = next_event_seq
        self.next_order_id = next_order_id
        self.next_fill_id = next_fill_id

    def account(self, aid: int) -> Account:
        a = self.accounts.get(aid)
        if a is None:
            a = self.accounts[aid] = Account(aid)
        return a

    def state_root(self) -> str:
        return self.root.root()

    # ------------------------------------------------------------------ blocks

    def begin_block(self, ctx: BlockContext) -> None:
        assert self._open is None, "previous block not ended"
        self._open = _OpenBlock(ctx)

    def _current(self) -> _OpenBlock:
        assert self._open is not None, "no block open"
        return self._open

    @property
    def block(self) -> BlockBody:
        """The open block's body so far."""
        return self._current().body

    @property
    def ctx(self) -> BlockContext:
        return self._current().ctx

    def end_block(self) -> BlockOutput:
        self._liquidation_pass()
        blk = self._current()
        for aid in sorted(blk.touched):
            a = self.account(aid)
            snap = a.snapshot()
            blk.body.touched[aid] = snap
            self.root.update(aid, a.cash, snap["positions"])
        self._open = None
        return BlockOutput(blk.ctx, blk.body, self.root.root(), self.mode)

    def note(self, kind: str, data: dict[str, Any]) -> Event:
        """Record an event of the block that moves nothing (genesis, rollback)."""
        return self._emit(kind, data)

    def _emit(
        self,
        kind: str,
        data: dict[str, Any],
        *,
        tx: Tx | None = None,
        ledger: LedgerDelta | None = None,
        account: int | None = None,
    ) -> Event:
        ev = Event(self.next_event_seq, kind, data, tx.hash if tx else None, ledger, account)
        self.next_event_seq += 1
        self.block.events.append(ev)
        return ev

    def _touch(self, *aids: int) -> None:
        self._current().touched.update(aids)

    def _view(self) -> dict[str, MarketData]:
        return self.cache.view()

    def _gate_closed(self) -> bool:
        return self.guards.readiness_gate and not self.ctx.market_ready

    # ------------------------------------------------------------------ transactions

    def apply(self, tx: Tx) -> dict[str, Any]:
        """Apply one transaction inside the open block; returns its receipt."""
        receipt: dict[str, Any] = {
            "transaction_hash": tx.hash,
            "kind": tx.kind,
            "account": tx.account,
            "status": "accepted",
            "reason": None,
        }
        if tx.client_id is not None:
            receipt["client_id"] = tx.client_id
        try:
            handler = {
                "order": self._order,
                "cancel": self._cancel,
                "withdraw": self._withdraw,
                "deposit": self._deposit,
                "price": self._prices,
                "mode": self._mode_tx,
            }[tx.kind]
            handler(tx, receipt)
        except _Reject as rej:
            receipt["status"] = "rejected"
            receipt["reason"] = rej.reason
        self.block.receipts.append((tx, receipt))
        return receipt

    def _mode_tx(self, tx: Tx, receipt: dict[str, Any]) -> None:
        assert tx.mode in MODES
        self.set_mode(tx.mode, "admin", tx=tx)
        receipt["mode"] = self.mode

    def set_mode(self, mode: str, reason: str, *, tx: Tx | None = None) -> None:
        if mode == self.mode:
            return
        self._emit(
            "mode_change",
            {"mode": mode, "market": None, "from": self.mode, "reason": reason},
            tx=tx,
        )
        self.mode = mode

    # orders

    def _order(self, tx: Tx, receipt: dict[str, Any]) -> None:
        assert tx.account is not None
        assert tx.market is not None
        assert tx.side is not None
        try:
            self._check_order(tx)
        except _Reject as rej:
            self._emit(
                "order_rejected",
                {
                    "account": tx.account,
                    "market": tx.market,
                    "side": tx.side,
                    "type": tx.type,
                    "size": tx.size,
                    "price": tx.price,
                    "client_id": tx.client_id,
                    "reason": rej.reason,
                },
                tx=tx,
                account=tx.account,
            )
            raise
        acct = self.account(tx.account)
        size = tx.size
        if tx.reduce_only:
            size = min(size, abs(acct.size(tx.market)))
        order = Order(
            id=self.next_order_id,
            account=tx.account,
            market=tx.market,
            side=tx.side,
            type=tx.type or "limit",
            price=tx.price,
            size=size,
            remaining=size,
            post_only=tx.post_only,
            reduce_only=tx.reduce_only,
            client_id=tx.client_id,
            tx=tx.hash,
            created_block_seq=self.ctx.seq,
        )
        self.next_order_id += 1
        self.block.orders[order.id] = order
        data = order.to_json()
        del data["status"], data["reason"]
        data["mode"] = self.mode
        self._emit("order_accepted", data, tx=tx, account=order.account)
        fills: list[dict[str, Any]] = []
        self._match(order, tx, fills)
        if order.remaining > 0:
            if order.type == "limit":
                self._rest(order)
            else:
                reason = "ioc_remainder" if fills else "no_liquidity"
                self._close(order, "cancelled", reason, tx)
        receipt.update(
            order_id=order.id,
            order_status=order.status,
            remaining=order.remaining,
            fills=fills,
        )

    def _check_order(self, tx: Tx) -> None:
        assert tx.account is not None
        assert tx.market is not None
        assert tx.side is not None
        if self._gate_closed():
            raise _Reject("market_data_not_ready")
        mode = self.mode
        if mode == "halted":
            raise _Reject("mode_halted")
        if mode == "cancel_only":
            raise _Reject("mode_cancel_only")
        if mode == "post_only" and not (tx.type == "limit" and tx.post_only):
            raise _Reject("mode_post_only")
        md = self.cache.get(tx.market)
        mk = MARKETS[tx.market]
        if self.guards.post_only_band and mode in ("cancel_only", "post_only"):
            index = md.index_price
            if tx.price is None or index <= 0 or abs(tx.price - index) * BPS > mk.band_bps * index:
                raise _Reject("outside_price_band")
        acct = self.account(tx.account)
        if tx.reduce_only:
            size = acct.size(tx.market)
            if not ((tx.side == "sell" and size > 0) or (tx.side == "buy" and size < 0)):
                raise _Reject("reduce_only_would_increase")
        book = self.books[tx.market]
        if tx.post_only:
            assert tx.price is not None
            if tx.side == "buy":
                ask = book.best_ask()
                if ask is not None and tx.price >= ask:
                    raise _Reject("post_only_would_cross")
            else:
                bid = book.best_bid()
                if bid is not None and tx.price <= bid:
                    raise _Reject("post_only_would_cross")
        if not tx.reduce_only:
            view = self._view()
            before = initial_margin(acct, view)
            after = initial_margin(acct, view, (tx.market, tx.side, tx.size))
            if after > before and equity(acct, view) < after:
                raise _Reject("insufficient_margin")

    def _match(self, taker: Order, tx: Tx, fills: list[dict[str, Any]]) -> None:
        book = self.books[taker.market]
        limit = taker.price
        if taker.type == "market":
            mark = self.cache.get(taker.market).mark_price
            band = MARKETS[taker.market].band_bps
            limit = mark + mark * band // BPS if taker.side == "buy" else mark - mark * band // BPS
        assert limit is not None
        while taker.remaining > 0:
            maker = book.best_resting(taker.side)
            if maker is None:
                break
            assert maker.price is not None
            if (taker.side == "buy" and maker.price > limit) or (
                taker.side == "sell" and maker.price < limit
            ):
                break
            if maker.account == taker.account:
                self._close(maker, "cancelled", "self_trade", tx)
                continue
            qty = min(taker.remaining, maker.remaining)
            if maker.reduce_only:
                msize = self.account(maker.account).size(maker.market)
                reduces = (maker.side == "sell" and msize > 0) or (
                    maker.side == "buy" and msize < 0
                )
                if not reduces:
                    self._close(maker, "cancelled", "reduce_only_no_position", tx)
                    continue
                qty = min(qty, abs(msize))
            fills.append(self._fill(maker, taker, maker.price, qty, tx))

    def _fill(self, maker: Order, taker: Order, price: int, qty: int, tx: Tx) -> dict[str, Any]:
        m = maker.market
        mk = MARKETS[m]
        md = self.cache.get(m)
        idx = md.funding_index
        buy_o, sell_o = (taker, maker) if taker.side == "buy" else (maker, taker)
        buyer, seller = self.account(buy_o.account), self.account(sell_o.account)
        self._settle(buyer, m, idx, tx)
        self._settle(seller, m, idx, tx)
        notional = qty * price
        taker_fee = margin_requirement(qty, price, mk.taker_fee_bps)
        maker_fee = margin_requirement(qty, price, mk.maker_fee_bps)
        fee_b, fee_s = (taker_fee, maker_fee) if taker.side == "buy" else (maker_fee, taker_fee)
        buyer.cash -= notional + fee_b
        seller.cash += notional - fee_s
        cash = [[buyer.id, -notional - fee_b], [seller.id, notional - fee_s]]
        if not self.guards.break_fee_path:
            self.account(FEES).cash += fee_b + fee_s
            cash.append([FEES, fee_b + fee_s])
            self._touch(FEES)
        b_after = self._set_size(buyer, m, buyer.size(m) + qty, idx)
        s_after = self._set_size(seller, m, seller.size(m) - qty, idx)
        fill_id = self.next_fill_id
        self.next_fill_id += 1
        fill = {
            "fill_id": fill_id,
            "market": m,
            "price": price,
            "size": qty,
            "buyer": buyer.id,
            "seller": seller.id,
            "maker": maker.account,
            "taker": taker.account,
            "maker_order": maker.id,
            "taker_order": taker.id,
            "taker_side": taker.side,
            "maker_fee": maker_fee,
            "taker_fee": taker_fee,
            "mode": self.mode,
        }
        self._emit(
            "fill",
            fill,
            tx=tx,
            ledger=LedgerDelta(
                cash=cash,
                pos=[[buyer.id, m, b_after, idx], [seller.id, m, s_after, idx]],
            ),
            account=taker.account,
        )
        self._touch(buyer.id, seller.id)
        maker.remaining -= qty
        taker.remaining -= qty
        mkr = self.account(maker.account)
        side_map = mkr.open_buy if maker.side == "buy" else mkr.open_sell
        side_map[m] -= qty
        if side_map[m] == 0:
            del side_map[m]
        if maker.remaining == 0:
            self.books[m].remove(maker)
            self._finish(maker, "filled", None)
        self.block.orders[maker.id] = maker
        self.block.orders[taker.id] = taker
        if taker.remaining == 0:
            taker.status = "filled"
        self.block.fills.append({k: v for k, v in fill.items() if k not in _EVENT_ONLY})
        return {"fill_id": fill_id, "price": price, "size": qty, "fee": taker_fee, "role": "taker"}

    def _rest(self, order: Order) -> None:
        acct = self.account(order.account)
        self.books[order.market].add(order)
        self.orders[order.id] = order
        acct.orders.add(order.id)
        side_map = acct.open_buy if order.side == "buy" else acct.open_sell
        side_map[order.market] = side_map.get(order.market, 0) + order.remaining

    def _finish(self, order: Order, status: str, reason: str | None) -> None:
        order.status = status
        order.reason = reason
        self.orders.pop(order.id, None)
        self.account(order.account).orders.discard(order.id)

    def _close(self, order: Order, status: str, reason: str, tx: Tx | None) -> None:
        """Take an order off the book (if resting) and record why."""
        if order.id in self.orders:
            self.books[order.market].remove(order)
            acct = self.account(order.account)
            side_map = acct.open_buy if order.side == "buy" else acct.open_sell
            side_map[order.market] -= order.remaining
            if side_map[order.market] == 0:
                del side_map[order.market]
        self._finish(order, status, reason)
        self.block.orders[order.id] = order
        self._emit(
            "order_cancelled",
            {
                "order_id": order.id,
                "account": order.account,
                "market": order.market,
                "remaining": order.remaining,
                "reason": reason,
            },
            tx=tx,
            account=order.account,
        )

    def _cancel(self, tx: Tx, receipt: dict[str, Any]) -> None:
        if self.mode == "halted":
            raise _Reject("mode_halted")
        assert tx.order_id is not None
        order = self.orders.get(tx.order_id)
        if order is None or order.account != tx.account:
            raise _Reject("unknown_order")
        self._close(order, "cancelled", "user", tx)
        receipt.update(order_id=order.id, order_status=order.status, remaining=order.remaining)

    def cancel_all(self, reason: str) -> list[Order]:
        """Cancel every open order (rollback); returns them."""
        out = list(self.orders.values())
        for o in sorted(out, key=lambda o: o.id):
            self._close(o, "cancelled", reason, None)
        return out

    # money in and out

    def _withdraw(self, tx: Tx, receipt: dict[str, Any]) -> None:
        assert tx.account is not None
        if self.mode == "halted":
            raise _Reject("mode_halted")
        if self._gate_closed():
            raise _Reject("market_data_not_ready")
        acct = self.account(tx.account)
        if tx.amount > acct.cash:
            raise _Reject("insufficient_cash")
        view = self._view()
        if equity(acct, view) - tx.amount < initial_margin(acct, view):
            raise _Reject("insufficient_margin")
        acct.cash -= tx.amount
        self._touch(acct.id)
        nonce = self.next_event_seq  # the L2→L1 message nonce: unique, never reused
        self._emit(
            "withdrawal",
            {"account": acct.id, "amount": tx.amount, "nonce": nonce},
            tx=tx,
            ledger=LedgerDelta(cash=[[acct.id, -tx.amount]]),
            account=acct.id,
        )
        receipt["nonce"] = nonce
        receipt["amount"] = tx.amount

    def _deposit(self, tx: Tx, receipt: dict[str, Any]) -> None:
        assert tx.account is not None
        assert tx.nonce is not None
        nonce = int(tx.nonce)
        receipt["nonce"] = nonce
        if nonce in self.consumed:
            receipt["consumed_block_seq"] = self.consumed[nonce]
            raise _Reject("message_already_consumed")
        acct = self.account(tx.account)
        acct.cash += tx.amount
        self.consumed[nonce] = self.ctx.seq
        self.block.consumed.append((nonce, acct.id, tx.amount))
        self._touch(acct.id)
        self._emit(
            "deposit_credited",
            {"account": acct.id, "amount": tx.amount, "nonce": nonce},
            tx=tx,
            ledger=LedgerDelta(cash=[[acct.id, tx.amount]]),
            account=acct.id,
        )
        receipt["amount"] = tx.amount

    # prices and funding

    def _jump_allowance_bps(self, md: MarketData, q: Any) -> int:
        """How far a price may move from the last accepted one: the bound for one price
        age, widened with the square root of the time since (a random walk's spread), so
        a genuine move during an oracle outage is accepted when prices return, while a
        bad tick right after normal prices is not. Integer arithmetic only."""
        gap = max(0, q.observed_ts_ns - md.index_ts_ns)
        ratio_micro = max(10**6, gap * 10**6 // max(1, self.guards.max_price_age_ns))
        return self.guards.max_price_jump_bps * math.isqrt(ratio_micro) // 1000

    def _prices(self, tx: Tx, receipt: dict[str, Any]) -> None:
        ctx = self.ctx
        results: list[dict[str, Any]] = []
        for q in tx.prices:
            md = self.cache.get(q.market)
            reason = None
            if self.guards.price_validation:
                prev = md.index_price
                if q.price <= 0:
                    reason = "non_positive"
                elif (
                    prev > 0 and abs(q.price - prev) * BPS > self._jump_allowance_bps(md, q) * prev
                ):
                    reason = "jump"
            if reason is not None:
                self._emit(
                    "price_rejected",
                    {
                        "market": q.market,
                        "price": q.price,
                        "previous": md.index_price,
                        "observed_ts_ns": q.observed_ts_ns,
                        "reason": reason,
                    },
                    tx=tx,
                )
                results.append({"market": q.market, "status": "rejected", "reason": reason})
                continue
            dt = ctx.chain_ts_ns - md.funding_ts_ns
            delta = funding_delta(md.mark_price, md.index_price, dt)
            book = self.books[q.market]
            bound = self.guards.max_mark_deviation_bps if self.guards.price_validation else None
            mark = mark_price(q.price, book.best_bid(), book.best_ask(), bound)
            new = md.with_(
                index_price=q.price,
                index_ts_ns=q.observed_ts_ns,
                mark_price=mark,
                funding_index=md.funding_index + delta,
                funding_ts_ns=max(ctx.chain_ts_ns, md.funding_ts_ns),
            )
            self.cache.put(new)
            if delta != 0:
                self._emit(
                    "funding_index",
                    {
                        "market": q.market,
                        "delta": delta,
                        "funding_index": new.funding_index,
                        "premium": premium(md.mark_price, md.index_price),
                        "dt_ns": dt,
                    },
                    tx=tx,
                )
            self._emit(
                "price_update",
                {
                    "market": q.market,
                    "price": q.price,
                    "observed_ts_ns": q.observed_ts_ns,
                    "previous": md.index_price,
                    "mark_price": mark,
                    "funding_index": new.funding_index,
                },
                tx=tx,
            )
            results.append({"market": q.market, "status": "accepted", "reason": None})
        receipt["prices"] = results

    def _settle(self, acct: Account, market: str, index: int, tx: Tx | None) -> None:
        pos = acct.positions.get(market)
        if pos is None or pos.cached_index == index:
            return
        cash, rem = funding_settlement(pos.size, pos.cached_index, index)
        before = pos.cached_index
        acct.cash += cash
        pos.cached_index = index
        self.account(DUST).cash += rem
        self._touch(acct.id, DUST)
        ev = self._emit(
            "funding_settlement",
            {
                "account": acct.id,
                "market": market,
                "size": pos.size,
                "index_from": before,
                "index_to": index,
                "payment_micro": -pos.size * (index - before),
                "cash": cash,
                "dust_micro": rem,
            },
            tx=tx,
            ledger=LedgerDelta(
                cash=[[acct.id, cash]], pos=[[acct.id, market, pos.size, index]], dust_micro=rem
            ),
            account=acct.id,
        )
        self.block.funding.append(
            {
                "event_seq": ev.seq,
                "account": acct.id,
                "market": market,
                "size": pos.size,
                "index_from": before,
                "index_to": index,
                "cash": cash,
                "dust_micro": rem,
            }
        )

    def _set_size(self, acct: Account, market: str, size: int, index: int) -> int:
        """Set a settled position's size (cached at `index`); returns it."""
        if size == 0:
            acct.positions.pop(market, None)
            if not acct.positions:
                self.with_positions.discard(acct.id)
        else:
            pos = acct.positions.get(market)
            if pos is None:
                acct.positions[market] = Position(size, index)
            else:
                pos.size = size
                pos.cached_index = index
            self.with_positions.add(acct.id)
        return size

    # ------------------------------------------------------------------ liquidation

    def _liquidation_pass(self) -> None:
        view = self._view()
        for aid in sorted(self.with_positions):
            if aid <= 0:
                continue
            acct = self.accounts[aid]
            eq = equity(acct, view)
            mm = maintenance_margin(acct, view)
            if eq >= mm:
                self._last_blocked.pop(aid, None)
                continue
            guard = self._liquidation_guard(acct, view)
            if guard is not None:
                self._blocked(acct, guard, view, eq, mm)
            else:
                self._liquidate(acct, view, eq, mm)

    def _liquidation_guard(self, acct: Account, view: Mapping[str, MarketData]) -> str | None:
        g = self.guards
        if self._gate_closed():
            return "readiness_gate"
        if self.mode == "halted":
            return "halted"
        markets = [view[m] for m in acct.positions]
        if g.price_validation and any(d.mark_price <= 0 or d.index_price <= 0 for d in markets):
            return "price_validation"
        now = self.ctx.chain_ts_ns
        if g.staleness_guard and any(now - d.index_ts_ns > g.max_price_age_ns for d in markets):
            return "staleness_guard"
        if g.post_only_band and self.mode in ("cancel_only", "post_only"):
            return "post_only_pause"
        return None

    def _evidence(
        self, acct: Account, view: Mapping[str, MarketData], eq: int, mm: int
    ) -> dict[str, Any]:
        return {
            "account": acct.id,
            "cash": acct.cash,
            "positions": acct.positions_json(),
            "markets": {
                m: {
                    "index_price": view[m].index_price,
                    "mark_price": view[m].mark_price,
                    "funding_index": view[m].funding_index,
                    "index_ts_ns": view[m].index_ts_ns,
                }
                for m in sorted(acct.positions)
            },
            "equity": eq,
            "maintenance": mm,
        }

    def _blocked(
        self, acct: Account, guard: str, view: Mapping[str, MarketData], eq: int, mm: int
    ) -> None:
        key = (
            guard,
            acct.cash,
            tuple(
                (m, p.size, view[m].mark_price, view[m].index_price)
                for m, p in sorted(acct.positions.items())
            ),
        )
        if self._last_blocked.get(acct.id) == key:
            return  # the same attempt at the same prices is recorded once
        self._last_blocked[acct.id] = key
        base = self._evidence(acct, view, eq, mm)
        for m, p in sorted(acct.positions.items()):
            d = view[m]
            self._emit(
                "liquidation_blocked",
                {
                    **base,
                    "market": m,
                    "size": p.size,
                    "price": d.mark_price,
                    "oracle_price": d.index_price,
                    "mark_price": d.mark_price,
                    "guard": guard,
                },
                account=acct.id,
            )

    def _liquidate(self, acct: Account, view: Mapping[str, MarketData], eq: int, mm: int) -> None:
        self._last_blocked.pop(acct.id, None)
        base = self._evidence(acct, view, eq, mm)
        for oid in sorted(acct.orders):
            self._close(self.orders[oid], "cancelled", "liquidation", None)
        vault = self.account(LIQUIDATOR)
        ins = self.account(INSURANCE)
        budget = max(0, eq)
        for m in sorted(acct.positions):
            d = view[m]
            idx = d.funding_index
            self._settle(acct, m, idx, None)
            self._settle(vault, m, idx, None)
            size = acct.positions[m].size
            price = d.mark_price
            notional = size * price
            fee = min(margin_requirement(abs(size), price, MARKETS[m].liquidation_fee_bps), budget)
            budget -= fee
            acct.cash += notional - fee
            vault.cash -= notional
            ins.cash += fee
            self._set_size(acct, m, 0, idx)
            v_after = self._set_size(vault, m, vault.size(m) + size, idx)
            self._touch(acct.id, vault.id, ins.id)
            ev = self._emit(
                "liquidation",
                {
                    **base,
                    "market": m,
                    "size": size,
                    "price": price,
                    "oracle_price": d.index_price,
                    "mark_price": d.mark_price,
                    "guard": None,
                    "fee": fee,
                },
                ledger=LedgerDelta(
                    cash=[[acct.id, notional - fee], [LIQUIDATOR, -notional], [INSURANCE, fee]],
                    pos=[[acct.id, m, 0, idx], [LIQUIDATOR, m, v_after, idx]],
                ),
                account=acct.id,
            )
            self.block.liquidations.append(
                {
                    "event_seq": ev.seq,
                    "account": acct.id,
                    "market": m,
                    "size": size,
                    "price": price,
                    "oracle_price": d.index_price,
                    "mark_price": d.mark_price,
                    "fee": fee,
                }
            )
        if acct.cash < 0:
            deficit = -acct.cash
            cover = min(deficit, max(0, ins.cash))
            if cover > 0:
                ins.cash -= cover
                acct.cash += cover
                self._touch(acct.id, ins.id)
                self._emit(
                    "insurance_cover",
                    {"account": acct.id, "deficit": deficit, "covered": cover},
                    ledger=LedgerDelta(cash=[[INSURANCE, -cover], [acct.id, cover]]),
                    account=acct.id,
                )
            if cover < deficit:
                self._emit(
                    "insurance_shortfall",
                    {
                        "account": acct.id,
                        "deficit": deficit,
                        "covered": cover,
                        "shortfall": deficit - cover,
                        "amount": deficit - cover,
                        "insurance_after": ins.cash,
                    },
                    account=acct.id,
                )

    # ------------------------------------------------------------------ reads

    def account_view(self, aid: int) -> dict[str, Any]:
        """An account as the trader API shows it (integers)."""
        acct = self.accounts.get(aid) or Account(aid)
        view = self._view()
        positions = []
        for m, p in sorted(acct.positions.items()):
            d = view[m]
            liq = liquidation_price(acct, m, view)
            positions.append(
                {
                    "market": m,
                    "size": p.size,
                    "cached_index": p.cached_index,
                    "mark_price": d.mark_price,
                    "funding_owed_micro": p.size * (d.funding_index - p.cached_index),
                    "liquidation_price": None if liq is None else int(liq),
                }
            )
        return {
            "account": aid,
            "cash": acct.cash,
            "equity": equity(acct, view),
            "initial_margin": initial_margin(acct, view),
            "maintenance_margin": maintenance_margin(acct, view),
            "positions": positions,
            "orders": [self.orders[o].to_json() for o in sorted(acct.orders)],
        }
