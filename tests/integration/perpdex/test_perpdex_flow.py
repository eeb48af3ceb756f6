"""Deposit -> trade between two accounts -> price move -> liquidation -> withdraw, on
real Postgres and Toxiproxy, with the events and balances checked."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

pytestmark = pytest.mark.integration

ETH = "ETH-USD-PERP"
USD = 1_000_000
LONG, SHORT = 3, 4


# ETH's model price falls 6% over 3 s, 15 s after the oracle starts (the trade is done
# by then): a genuine move, so the liquidation is justified against the reference.
DRIFT = '[{"at_ms": 15000, "duration_ms": 3000, "market": "ETH-USD-PERP", "pct": -6}]'


def test_deposit_trade_liquidation_withdraw(perpdex: Any) -> None:
    with perpdex("hardened", settings={"oracle_drift": DRIFT}) as p:
        start_cash = p.balance(LONG)["cash"]
        assert start_cash == 100_000 * USD  # funded at genesis through the bridge

        # deposit: locked on L1, credited on L2 by the relayer, exactly once
        r = p.ui("POST", "/v1/deposits", LONG, json={"amount": "5000"})
        assert r.status_code == 201, r.text
        nonce = r.json()["nonce"]
        credited = p.wait(
            "the deposit credited on L2",
            lambda: [e for e in p.events(["deposit_credited"]) if e["data"]["nonce"] == nonce],
        )
        assert credited[0]["data"] == {"account": LONG, "amount": 5000 * USD, "nonce": nonce}
        assert p.balance(LONG)["cash"] == 105_000 * USD

        # trade: SHORT rests an offer at the index, LONG buys it at ~14x
        index = Decimal(p.markets()[ETH]["index_price"])
        size = (Decimal(1_500_000) / index).quantize(Decimal("0.00001"))
        r = p.order(SHORT, market=ETH, side="sell", type="limit", size=str(size), price=str(index))
        assert r.status_code == 201, r.text
        r = p.order(LONG, market=ETH, side="buy", type="market", size=str(size))
        assert r.status_code == 201, r.text
        fill = r.json()["fills"][0]
        assert Decimal(fill["price"]) == index
        assert Decimal(fill["size"]) == size
        size_q = int(size * 100_000)
        price_q = int(index * 10)
        notional = size_q * price_q
        taker_fee = -(-notional * 4 // 10_000)
        maker_fee = -(-notional * 1 // 10_000)
        [ev] = list(p.events(["fill"], account=LONG))
        assert ev["ledger"]["cash"] == [
            [LONG, -notional - taker_fee],
            [SHORT, notional - maker_fee],
            [-1, taker_fee + maker_fee],
        ]
        long_bal = p.balance(LONG)
        assert long_bal["cash"] == 105_000 * USD - notional - taker_fee
        assert long_bal["positions"][0]["size"] == size_q
        assert p.balance(SHORT)["positions"][0]["size"] == -size_q

        # price move: the drift takes ETH down ~6%; the ~14x long is liquidated on the way
        liq = p.wait(
            "the long to be liquidated", lambda: p.events(["liquidation"], account=LONG), timeout=40
        )
        d = liq[0]["data"]
        assert (d["account"], d["market"], d["size"], d["guard"]) == (LONG, ETH, size_q, None)
        assert d["equity"] < d["maintenance"]
        assert 0 < d["price"] <= price_q * 97 // 100
        assert d["price"] == d["mark_price"]
        assert liq[0]["ledger"]["pos"][0] == [LONG, ETH, 0, liq[0]["ledger"]["pos"][0][3]]
        after = p.balance(LONG)
        assert after["positions"] == []
        assert after["cash"] == d["equity"] - d["fee"]  # closed at the mark, fee to insurance

        # withdraw: burned on L2, released on L1 after the finality delay
        r = p.ui("POST", "/v1/withdrawals", LONG, json={"amount": "1000"})
        assert r.status_code == 201, r.text
        w_nonce = r.json()["nonce"]
        assert p.balance(LONG)["cash"] == after["cash"] - 1000 * USD
        [w] = list(p.events(["withdrawal"], account=LONG))
        assert w["data"] == {"account": LONG, "amount": 1000 * USD, "nonce": w_nonce}

        def released() -> bool:
            state = p.http.get(p.url("bridge", "/state")).json()
            return any(
                m["direction"] == "l2_to_l1" and m["status"] == "released"
                for m in state["messages"]
            )

        p.wait("the withdrawal released on L1", released, timeout=30)
        # too much: rejected, nothing moves
        r = p.ui("POST", "/v1/withdrawals", LONG, json={"amount": "1000000"})
        assert r.status_code == 422
        assert r.json()["error"]["code"] == "insufficient_cash"

        # the harness's own checkers agree on the exported record
        p.audit()
        verdicts = p.check(
            "fund_conservation",
            "chain_consistency",
            "no_zero_price_liquidations",
            "liquidations_justified",
        )
        for name, v in verdicts.items():
            assert v.status == "pass", (name, v.violations[:3])
        assert verdicts["fund_conservation"].checked["bridge_releases"] == 1
