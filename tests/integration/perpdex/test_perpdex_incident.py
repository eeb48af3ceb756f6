"""The January 2026 incident from the real sequence: the database restarts under open
leveraged positions; the sequencer's write path reconnects at once while its market
data reload waits for the read connection's backoff.

vulnerable: blocks built in that window read unpriced (zero) markets, liquidate the
longs at price 0 and persist the zero market state, so the reload reads the zeros
back and the funding indices are reset to 0.
hardened: the attempts are recorded as blocked by the readiness gate, nothing is
persisted, and trading resumes (in stages) once every market has a fresh price.
"""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.integration


def test_vulnerable_db_restart_liquidates_longs_at_zero(perpdex: Any) -> None:
    with perpdex("vulnerable") as p:
        longs = p.open_longs()
        before = p.seq_markets()
        assert all(before[m]["funding_index"] != 0 for m in longs)  # seeded genesis index
        assert p.events(["liquidation"]) == []
        p.restart_db()
        liqs = p.wait(
            "liquidations after the restart",
            lambda: len(p.events(["liquidation"])) >= 3 and p.events(["liquidation"]),
            timeout=30,
        )
        by_market = {e["data"]["market"]: e for e in liqs}
        assert set(by_market) == set(longs)
        for m, (long, _, size) in longs.items():
            d = by_market[m]["data"]
            assert (d["account"], d["size"]) == (long, size)
            assert (d["price"], d["oracle_price"], d["mark_price"]) == (0, 0, 0)
            assert d["markets"][m]["funding_index"] == 0  # the funding index read as 0
            # the long "received" its whole cached funding at index 0: bogus funding PnL
            [settle] = [
                e
                for e in p.events(["funding_settlement"], account=long)
                if e["data"]["index_to"] == 0 and e["seq"] < by_market[m]["seq"]
            ]
            assert settle["data"]["index_from"] == before[m]["funding_index"]
        # the zero market state was persisted and read back: funding indices reset
        after = p.wait(
            "fresh prices after the reload",
            lambda: (s := p.seq_markets()) and all(s[m]["index_price"] > 0 for m in s) and s,
        )
        for m in longs:
            assert abs(after[m]["funding_index"]) < abs(before[m]["funding_index"]) // 1000
        # the vault took the longs at 0; the insurance fund covered the holes
        assert p.events(["insurance_cover"])
        p.audit()
        v = p.check("no_zero_price_liquidations", "fund_conservation", "chain_consistency")
        assert v["no_zero_price_liquidations"].status == "fail"
        assert v["no_zero_price_liquidations"].checked["liquidations"] == 3
        assert v["fund_conservation"].status == "pass"  # money moved, none created
        assert v["chain_consistency"].status == "pass"


def test_hardened_db_restart_blocks_then_resumes_trading(perpdex: Any) -> None:
    with perpdex("hardened") as p:
        longs = p.open_longs()
        before = p.seq_markets()
        p.restart_db()
        blocked = p.wait(
            "blocked liquidation attempts",
            lambda: (
                len(p.events(["liquidation_blocked"])) >= 3 and p.events(["liquidation_blocked"])
            ),
            timeout=30,
        )
        assert {e["data"]["guard"] for e in blocked} == {"readiness_gate"}
        assert {e["data"]["account"] for e in blocked} == {long for long, _, _ in longs.values()}
        assert all(e["data"]["price"] == 0 for e in blocked)  # what the empty cache showed
        p.wait_trading(account=9, timeout=30)
        modes = [e["data"]["mode"] for e in p.events(["mode_change"])]
        assert modes == ["cancel_only", "post_only", "normal"]
        assert p.events(["liquidation"]) == []
        after = p.seq_markets()
        for m, (long, _, size) in longs.items():
            assert after[m]["funding_index"] == pytest.approx(before[m]["funding_index"], rel=1e-3)
            assert p.balance(long)["positions"][0]["size"] == size
        p.audit()
        v = p.check("no_zero_price_liquidations", "fund_conservation", "chain_consistency")
        assert {k: x.status for k, x in v.items()} == dict.fromkeys(v, "pass")
        assert v["no_zero_price_liquidations"].checked["blocked_attempts"] >= 3
