"""One test per hardening switch: the hardened profile with that one switch off, and
the misbehaviour that comes back without it (against the fully hardened baseline where
the same fault is cheap to repeat)."""

from __future__ import annotations

import time
from typing import Any

import pytest

pytestmark = pytest.mark.integration

BTC, ETH = "BTC-USD-PERP", "ETH-USD-PERP"


@pytest.mark.parametrize("validation", [False, True])
def test_without_readiness_gate_the_zero_market_state_is_persisted(
    perpdex: Any, validation: bool
) -> None:
    """The other guards still stop the zero-price liquidation, but nothing stops the
    blocks in the reload window from reading the zero market state. Without market-data
    validation they persist it and the reload reads it back: the funding indices are
    reset to 0 (the incident's second symptom), which funding_continuity names. With
    it no priced market is written as zero and the reload is checked against the
    chain: the indices carry on."""
    switches = {"readiness_gate": False, "market_data_validation": validation}
    with perpdex("hardened", switches=switches) as p:
        longs = p.open_longs()
        before = p.seq_markets()
        p.restart_db()
        blocked = p.wait("blocked attempts", lambda: p.events(["liquidation_blocked"]), timeout=30)
        assert {e["data"]["guard"] for e in blocked} == {"price_validation"}
        p.wait_trading(account=9)
        after = p.seq_markets()
        for m in longs:
            assert before[m]["funding_index"] != 0
            if validation:
                assert after[m]["funding_index"] >= before[m]["funding_index"] // 2
            else:
                assert abs(after[m]["funding_index"]) < abs(before[m]["funding_index"]) // 1000
        assert p.events(["liquidation"]) == []
        p.audit()
        verdicts = p.check("funding_continuity", "market_data_matches_oracle")
        for name, v in verdicts.items():
            assert (v.status == "pass") is validation, (name, [x.message for x in v.violations])
        if not validation:
            assert any("reset to 0" in x.message for x in verdicts["funding_continuity"].violations)


@pytest.mark.parametrize("price_validation", [False, True])
def test_price_validation_rejects_a_zero_oracle_price(perpdex: Any, price_validation: bool) -> None:
    with perpdex("hardened", switches={"price_validation": price_validation}) as p:
        longs = p.open_longs()
        long_btc = longs[BTC][0]
        p.hook("oracle", "/admin/chaos/oracle", {"mode": "zero", "markets": [BTC]})
        if not price_validation:
            liq = p.wait(
                "a zero-price liquidation", lambda: p.events(["liquidation"], account=long_btc)
            )
            assert liq[0]["data"]["price"] == 0
            assert liq[0]["data"]["oracle_price"] == 0
        else:
            rejected = p.wait("rejected zero prices", lambda: p.events(["price_rejected"]))
            assert {e["data"]["reason"] for e in rejected} == {"non_positive"}
            p.blocks_pass(10)  # a zero price taken would have liquidated in these blocks
            assert p.events(["liquidation"]) == []
            assert p.seq_markets()[BTC]["index_price"] > 0


@pytest.mark.parametrize("staleness_guard", [False, True])
def test_staleness_guard_blocks_liquidation_on_a_lagging_price(
    perpdex: Any, staleness_guard: bool
) -> None:
    """The oracle is stopped and a lagging feed delivers a 9% lower ETH price observed
    10 s ago (what oracle lag mode publishes), signed as the oracle, straight to the
    sequencer."""
    with perpdex("hardened", switches={"staleness_guard": staleness_guard}) as p:
        longs = p.open_longs()
        long_eth = longs[ETH][0]
        p.stack.control.stop("oracle")
        index = p.seq_markets()[ETH]["index_price"]
        old = time.time_ns() - 10_000_000_000
        r = p.http.post(
            p.url("sequencer", "/oracle/prices"),
            json=p.signed(
                "oracle",
                {
                    "kind": "price",
                    "prices": [{"market": ETH, "price": index * 91 // 100, "observed_ts_ns": old}],
                    "nonce": "lagging-1",
                },
            ),
        )
        assert r.status_code == 202
        if not staleness_guard:
            liq = p.wait(
                "a liquidation on the stale price",
                lambda: p.events(["liquidation"], account=long_eth),
            )
            assert liq[0]["data"]["markets"][ETH]["index_ts_ns"] == old
        else:
            blocked = p.wait(
                "a blocked attempt", lambda: p.events(["liquidation_blocked"], account=long_eth)
            )
            assert blocked[0]["data"]["guard"] == "staleness_guard"
            assert blocked[0]["data"]["price"] == index * 91 // 100
            assert p.events(["liquidation"]) == []


@pytest.mark.parametrize("post_only_band", [False, True])
def test_post_only_band_stops_a_thin_book_from_moving_the_mark(
    perpdex: Any, post_only_band: bool
) -> None:
    """In post-only mode an adversary quotes both sides 8-9% under the index; the mark
    (median of index, bid, ask) follows the book and liquidates the ETH long.
    price_validation is off in both cases: its ±1% bound on the mark is a second guard
    against the same skew, and this test is about the band alone."""
    switches = {"post_only_band": post_only_band, "price_validation": False}
    with perpdex("hardened", switches=switches) as p:
        longs = p.open_longs()
        long_eth = longs[ETH][0]
        adversary = next(a for a, role in p.roles.items() if role == "adversary")
        assert p.hook("sequencer", "/admin/chaos/mode", {"mode": "post_only"}).status_code == 200
        index = p.seq_markets()[ETH]["index_price"]
        bid, ask = index * 91 // 100, index * 92 // 100
        results = [
            p.order(
                adversary,
                market=ETH,
                side=side,
                type="limit",
                size="1",
                price=f"{px / 10:.1f}",
                post_only=True,
            )
            for side, px in (("buy", bid), ("sell", ask))
        ]
        if not post_only_band:
            assert [r.status_code for r in results] == [201, 201]
            liq = p.wait(
                "a liquidation at the skewed mark",
                lambda: p.events(["liquidation"], account=long_eth),
            )
            d = liq[0]["data"]
            assert d["price"] == d["mark_price"] == ask
            assert d["oracle_price"] > ask
        else:
            assert [r.status_code for r in results] == [422, 422]
            assert {r.json()["error"]["code"] for r in results} == {"outside_price_band"}
            p.blocks_pass(10)  # a skewed mark would have liquidated in these blocks
            assert p.events(["liquidation"]) == []


@pytest.mark.parametrize("staged_reopen", [False, True])
def test_staged_reopen_after_a_db_restart(perpdex: Any, staged_reopen: bool) -> None:
    with perpdex("hardened", switches={"staged_reopen": staged_reopen}) as p:
        p.open_longs()
        p.restart_db()
        p.wait_trading(account=9)
        modes = [(e["data"]["mode"], e["data"]["reason"]) for e in p.events(["mode_change"])]
        if staged_reopen:
            assert modes == [
                ("cancel_only", "staged_reopen:reconnect"),
                ("post_only", "staged_reopen:reconnect"),
                ("normal", "staged_reopen:reconnect"),
            ]
            rejected = {e["data"]["reason"] for e in p.events(["order_rejected"], account=9)}
            assert rejected & {"mode_cancel_only", "mode_post_only"}
        else:
            assert modes == []  # straight back to full trading once prices are fresh
