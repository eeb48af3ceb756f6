"""Property: random deposits, trades, price moves, funding, liquidations and
withdrawals conserve funds exactly.

Checked by a small model written here, independent of the engine's ledger code: it
recomputes every fill, fee, funding settlement and liquidation amount from the event
data and the market parameters, replays the ledgers into its own accounts, counts
deposits and withdrawals from receipts, and at every block asserts
Σ Q*1e6 + Σ S*c + dust_micro == N*1e6, Σ S = 0 per market, fees charged (recomputed from
price, size and the fee rates) == fees credited, the insurance fund never negative without a declared shortfall, and that
its replayed accounts equal the engine's.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from l2chaos.stacks.perpdex.engine.exchange import Guards
from l2chaos.stacks.perpdex.markets import DUST, FEES, INSURANCE, LIQUIDATOR, MARKETS

ACCOUNTS = (1, 2, 3, 4, 5)
NAMES = sorted(MARKETS)
HOUR = 3600 * 10**9


def ceil_div(a: int, b: int) -> int:
    return -((-a) // b)


class Model:
    def __init__(self) -> None:
        self.cash: dict[int, int] = defaultdict(int)
        self.pos: dict[tuple[int, str], tuple[int, int]] = {}
        self.dust = 0
        self.net_deposits = 0  # N, from receipts
        self.fees_charged = 0
        self.fees_credited = 0
        self.shortfall_declared = False

    def size(self, a: int, m: str) -> int:
        return self.pos.get((a, m), (0, 0))[0]

    def receipt(self, r: dict[str, Any]) -> None:
        if r["status"] != "accepted":
            return
        if r["kind"] == "deposit":
            self.net_deposits += r["amount"]
        elif r["kind"] == "withdraw":
            self.net_deposits -= r["amount"]

    def event(self, ev: Any) -> None:
        d, led = ev.data, ev.ledger
        if ev.kind == "funding_settlement":
            s, c = self.pos[(d["account"], d["market"])]
            owed = -s * (d["index_to"] - c)
            assert led.cash == [[d["account"], owed // 1_000_000]]
            assert led.dust_micro == owed - (owed // 1_000_000) * 1_000_000
        elif ev.kind == "fill":
            n = d["size"] * d["price"]
            mk = MARKETS[d["market"]]
            assert d["size"] > 0
            assert d["buyer"] != d["seller"]
            assert d["taker_fee"] == ceil_div(n * mk.taker_fee_bps, 10_000)
            assert d["maker_fee"] == ceil_div(n * mk.maker_fee_bps, 10_000)
            buyer_taker = d["taker"] == d["buyer"]
            fee_b = d["taker_fee"] if buyer_taker else d["maker_fee"]
            fee_s = d["maker_fee"] if buyer_taker else d["taker_fee"]
            assert led.cash[:2] == [[d["buyer"], -n - fee_b], [d["seller"], n - fee_s]]
            assert led.pos[0][2] == self.size(d["buyer"], d["market"]) + d["size"]
            assert led.pos[1][2] == self.size(d["seller"], d["market"]) - d["size"]
            self.fees_charged += fee_b + fee_s
            self.fees_credited += sum(v for a, v in led.cash if a == FEES)
        elif ev.kind == "liquidation":
            a, m, s, p = d["account"], d["market"], d["size"], d["price"]
            assert s == self.size(a, m)
            assert d["equity"] < d["maintenance"]
            cap = ceil_div(abs(s) * p * MARKETS[m].liquidation_fee_bps, 10_000) if p > 0 else 0
            assert 0 <= d["fee"] <= cap
            assert led.cash == [[a, s * p - d["fee"]], [LIQUIDATOR, -s * p], [INSURANCE, d["fee"]]]
            assert led.pos[0] == [a, m, 0, led.pos[0][3]]
        elif ev.kind == "insurance_cover":
            assert led.cash == [[INSURANCE, -d["covered"]], [d["account"], d["covered"]]]
            assert d["covered"] <= self.cash[INSURANCE]
        elif ev.kind == "insurance_shortfall":
            assert d["covered"] + d["amount"] == d["deficit"]
            self.shortfall_declared = True
        if led is not None:
            for a, delta in led.cash:
                assert a != DUST
                self.cash[a] += delta
            for a, m, size, idx in led.pos:
                if size == 0:
                    self.pos.pop((a, m), None)
                else:
                    self.pos[(a, m)] = (size, idx)
            self.dust += led.dust_micro

    def check_block(self, ex: Any) -> None:
        total = sum(q * 1_000_000 for q in self.cash.values()) + self.dust
        total += sum(s * c for s, c in self.pos.values())
        assert total == self.net_deposits * 1_000_000
        for m in NAMES:
            assert sum(s for (_, mm), (s, _) in self.pos.items() if mm == m) == 0
        assert self.fees_charged == self.fees_credited
        assert self.cash[INSURANCE] >= 0 or self.shortfall_declared
        # the engine's own state equals the replay
        for a, acct in ex.accounts.items():
            want = self.dust if a == DUST else self.cash[a]
            assert acct.cash == want, (a, acct.cash, want)
            got = {m: (p.size, p.cached_index) for m, p in acct.positions.items()}
            assert got == {m: v for (aa, m), v in self.pos.items() if aa == a}


deposit = st.tuples(st.just("deposit"), st.sampled_from(ACCOUNTS), st.integers(1, 50_000 * 10**6))
order = st.tuples(
    st.just("order"),
    st.sampled_from(ACCOUNTS),
    st.sampled_from(NAMES),
    st.sampled_from(["buy", "sell"]),
    st.sampled_from(["limit", "limit", "market"]),
    st.integers(50, 150_000),  # notional in USD at the index
    st.integers(-300, 300),  # limit price offset from the index, bps
    st.sampled_from([False, False, False, True]),  # post_only
    st.sampled_from([False, False, False, False, True]),  # reduce_only
)
# a resting order and an aggressive one against it: positions open and close
pair = st.tuples(
    st.just("pair"),
    st.sampled_from(ACCOUNTS),
    st.sampled_from(ACCOUNTS),
    st.sampled_from(NAMES),
    st.sampled_from(["buy", "sell"]),
    st.integers(1_000, 150_000),  # notional in USD
    st.integers(-60, 60),  # resting price offset from the index, bps: moves the mark
)
cancel = st.tuples(st.just("cancel"), st.sampled_from(ACCOUNTS), st.integers(0, 5))
price = st.tuples(
    st.just("price"),
    st.sampled_from(NAMES),
    st.integers(-2500, 2500),  # move in bps
    st.integers(0, 8 * HOUR),  # chain time passing before it
)
# quotes on both sides above or below the index: the mark leaves the index, funding accrues
skew = st.tuples(
    st.just("skew"), st.sampled_from(ACCOUNTS), st.sampled_from(NAMES), st.integers(-80, 80)
)
# any funding index at all, as a corrupted market row would carry (the incident reset it to 0)
shock = st.tuples(st.just("shock"), st.sampled_from(NAMES), st.integers(-(10**10), 10**10))
withdraw = st.tuples(st.just("withdraw"), st.sampled_from(ACCOUNTS), st.integers(1, 20_000 * 10**6))
block = st.tuples(st.just("block"))
ops = st.lists(
    st.one_of(
        deposit, order, order, pair, pair, skew, shock, cancel, price, price, withdraw, block
    ),
    min_size=20,
    max_size=150,
)


# make_chain is a class (stateless), so sharing it across examples is safe
@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(ops=ops, hardened=st.booleans(), genesis_index=st.integers(-(10**9), 5 * 10**9))
def test_random_sequences_conserve_funds_exactly(
    make_chain: Any, ops: list[tuple[Any, ...]], hardened: bool, genesis_index: int
) -> None:
    switches = dict.fromkeys(("price_validation", "staleness_guard", "post_only_band"), hardened)
    c = make_chain(guards=Guards(**switches), funding_index=genesis_index)
    model = Model()
    c.deposit(INSURANCE, 200_000 * 10**6)
    for a in ACCOUNTS:
        c.deposit(a, 20_000 * 10**6)
    nonce = 1000
    seen = 0

    def drain() -> None:
        nonlocal seen
        out = c.block()
        for _, r in out.body.receipts:
            model.receipt(r)
        for ev in out.body.events:
            model.event(ev)
        seen += len(out.body.events)
        model.check_block(c.ex)

    for op in ops:
        kind = op[0]
        if kind == "deposit":
            nonce += 1
            c.tx(kind="deposit", account=op[1], amount=op[2], nonce=nonce)
        elif kind == "order":
            _, a, m, side, typ, usd, off, po, ro = op
            index = c.cache.get(m).index_price
            size = max(1, usd * 10**6 // max(1, index))
            px = max(1, index + index * off // 10_000) if typ == "limit" else None
            c.order(a, m, side, size, px, post_only=po and typ == "limit", reduce_only=ro)
        elif kind == "pair":
            _, a, b, m, side, usd, off = op
            index = c.cache.get(m).index_price
            size = max(1, usd * 10**6 // max(1, index))
            px = max(1, index + index * off // 10_000)
            other = "sell" if side == "buy" else "buy"
            c.order(b, m, other, size, px)
            c.order(a, m, side, size)
        elif kind == "skew":
            _, a, m, off = op
            index = c.cache.get(m).index_price
            size = max(1, 2_000 * 10**6 // max(1, index))
            bid = max(1, index + index * off // 10_000)
            ask = bid + max(1, index // 10_000)
            c.order(a, m, "buy", size, bid)
            c.order(a, m, "sell", size, ask)
        elif kind == "shock":
            c.cache.put(c.cache.get(op[1]).with_(funding_index=op[2]))
        elif kind == "cancel":
            mine = sorted(
                (o for o in c.ex.orders.values() if o.account == op[1]), key=lambda o: o.id
            )
            if mine:
                c.tx(kind="cancel", account=op[1], order_id=mine[op[2] % len(mine)].id)
        elif kind == "price":
            _, m, move, dt = op
            c.t += dt
            index = c.cache.get(m).index_price
            c.price(m, max(1, index + index * move // 10_000))
        elif kind == "withdraw":
            c.tx(kind="withdraw", account=op[1], amount=op[2])
        else:
            drain()
    drain()
    assert seen > 0
