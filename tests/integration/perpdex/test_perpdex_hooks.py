"""The chaos hooks and what they do: oracle modes (seen in the reference log), the
oracle continuing its path after a restart, the relayer stall, the chain clock, a halt,
and the trader API answering 503 when the chain is unavailable."""

from __future__ import annotations

import json
from typing import Any

import pytest
from l2chaos.stacks.perpdex.pricemodel import PriceModel

pytestmark = pytest.mark.integration

BTC, ETH = "BTC-USD-PERP", "ETH-USD-PERP"
SEED = 1604710  # the conftest's seed


def reference(p: Any) -> list[dict[str, Any]]:
    text: str = p.http.get(p.url("oracle", "/admin/reference"), headers=p.admin).text
    rows: list[dict[str, Any]] = [json.loads(line) for line in text.splitlines() if line]
    return rows


def ticks_after(p: Any, tick: int, market: str, n: int = 3) -> list[dict[str, Any]]:
    """The first `n` ticks of `market` after oracle tick `tick`."""
    rows: list[dict[str, Any]] = p.wait(
        f"{n} oracle ticks",
        lambda: (
            (rows := [r for r in reference(p) if r["tick"] > tick and r["market"] == market])
            and len(rows) >= n
            and rows
        ),
    )
    return rows[:n]


def test_oracle_modes_and_restart(perpdex: Any) -> None:
    with perpdex("vulnerable", settings={"oracle_vol_bps": 20.0}) as p:
        model = PriceModel(SEED, 250, 20.0)
        rows = ticks_after(p, -1, BTC)
        assert all(r["model_price"] == model.price(BTC, r["tick"]) for r in rows)
        assert all(r["published_price"] == r["model_price"] for r in rows[1:])

        def mode(body: dict[str, Any]) -> list[dict[str, Any]]:
            """Set a mode; two ticks published under it (every tick after the one the
            answer names reads the new mode)."""
            r = p.hook("oracle", "/admin/chaos/oracle", body)
            assert r.status_code == 200
            return ticks_after(p, r.json()["tick"], body["markets"][0], 2)

        for r in mode({"mode": "zero", "markets": [BTC]}):
            assert (r["mode"], r["published_price"]) == ("zero", 0)
        # vulnerable: taken at face value
        p.wait("the zero price in force", lambda: p.seq_markets()[BTC]["index_price"] == 0)
        for r in mode({"mode": "spike", "markets": [ETH], "factor": 2.0}):
            assert r["published_price"] == round(r["model_price"] * 2)
        for r in mode({"mode": "stale", "markets": [BTC]}):
            assert (r["mode"], r["published_price"]) == ("stale", None)
        for r in mode({"mode": "lag", "markets": [ETH], "lag_ms": 1000}):
            assert r["published_price"] == model.price(ETH, r["tick"] - 4)
            assert r["host_ts_ns"] - r["observed_ts_ns"] >= 900_000_000
        assert p.hook("oracle", "/admin/chaos/oracle", {"mode": "wobble"}).status_code == 400
        assert p.hook("oracle", "/admin/chaos/oracle", {"mode": "normal"}).status_code == 200

        # a restarted oracle continues the same path: tick k has the same model price
        last = reference(p)[-1]["tick"]
        p.stack.control.restart("oracle")
        p.stack.control.wait_ready("oracle", 30)
        rows = ticks_after(p, last, BTC)
        assert rows[0]["tick"] > last
        assert all(r["model_price"] == model.price(BTC, r["tick"]) for r in rows)


def test_relayer_stall_clock_halt_and_unavailable_chain(perpdex: Any) -> None:
    with perpdex("hardened") as p:
        assert p.hook("bridge", "/admin/chaos/relayer", {"stalled": True}).json() == {
            "stalled": True
        }
        nonce = p.ui("POST", "/v1/deposits", 8, json={"amount": "10"}).json()["nonce"]
        p.blocks_pass(20)  # the relayer, every 200 ms, would have brought it in by now
        assert not [e for e in p.events(["deposit_credited"]) if e["data"]["nonce"] == nonce]
        p.hook("bridge", "/admin/chaos/relayer", {"stalled": False})
        p.wait(
            "the stalled deposit credited",
            lambda: [e for e in p.events(["deposit_credited"]) if e["data"]["nonce"] == nonce],
        )

        assert (
            p.hook("sequencer", "/admin/chaos/clock", {"offset_ms": 3_600_000}).status_code == 200
        )
        head = p.wait(  # the next block is stamped with the skewed clock
            "a block on the skewed clock",
            lambda: (h := p.head())["chain_ts_ns"] - h["host_ts_ns"] > 0 and h,
        )
        assert head["chain_ts_ns"] - head["host_ts_ns"] == 3_600_000 * 1_000_000
        p.hook("sequencer", "/admin/chaos/clock", {"offset_ms": 0})

        r = p.hook("sequencer", "/admin/chaos/mode", {"mode": "halted"})
        assert r.json()["mode"] == "halted"
        r = p.order(9, market=ETH, side="buy", type="limit", size="0.01", price="100")
        assert (r.status_code, r.json()["error"]["code"]) == (422, "mode_halted")
        p.hook("sequencer", "/admin/chaos/mode", {"mode": "normal"})
        p.wait_trading(account=9)

        p.stack.control.stop("sequencer")
        r = p.order(9, market=ETH, side="buy", type="limit", size="0.01", price="100")
        assert r.status_code == 503
        assert p.ui("GET", "/v1/account", 9).status_code == 503
        p.stack.control.start("sequencer")
        p.stack.control.wait_ready("sequencer", 30)
        p.wait_trading(account=9)


def test_a_market_move_reaches_the_source_and_the_truth(perpdex: Any) -> None:
    """The drift hook moves the price source's market and the oracle's reference
    together: what the source answers stays the model price, 20% lower; after an oracle
    restart the move continues."""
    with perpdex("vulnerable") as p:
        before = ticks_after(p, -1, BTC, 1)[0]["model_price"]
        r = p.hook("oracle", "/admin/chaos/drift", {"pct": -20, "markets": [BTC]})
        assert r.status_code == 200, r.text
        rows = ticks_after(p, r.json()["tick"], BTC)
        for row in rows:
            assert row["source_price"] == row["model_price"] == row["published_price"]
            assert row["model_price"] < before * 0.85
        bad = p.hook("oracle", "/admin/chaos/drift", {"pct": -100})
        assert bad.status_code == 400
        last = reference(p)[-1]["tick"]
        p.stack.control.restart("oracle")
        p.stack.control.wait_ready("oracle", 30)
        for row in ticks_after(p, last, BTC):
            assert row["source_price"] == row["model_price"] < before * 0.85
