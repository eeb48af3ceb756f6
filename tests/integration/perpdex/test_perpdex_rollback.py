"""Rollback to block N: later blocks are orphaned (kept), the state is restored from the
per-block snapshots and its root equals the one recorded at N; the bridge re-credits
deposits from orphaned blocks and drops their withdrawals, so the escrow identity holds."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.integration

ETH = "ETH-USD-PERP"


def test_rollback_restores_the_state_root_of_block_n(perpdex: Any) -> None:
    with perpdex("hardened", settings={"finality_blocks": 100}) as p:
        p.open_longs()
        n = p.rpc("starknet_blockNumber")
        block_n = p.rpc("starknet_getBlockWithTxs", {"block_id": {"block_number": n}})
        cash_at_n = {a: p.balance(a)["cash"] for a in (1, 2, 5, 11)}
        # after N: a trade, a deposit credited on L2, a withdrawal burned on L2
        px = p.markets()[ETH]["index_price"]
        assert (
            p.order(11, market=ETH, side="sell", type="limit", size="0.5", price=px).status_code
            == 201
        )
        assert p.order(2, market=ETH, side="buy", type="market", size="0.5").status_code == 201
        dep = p.ui("POST", "/v1/deposits", 5, json={"amount": "777"}).json()["nonce"]
        p.wait(
            "the deposit credited",
            lambda: [e for e in p.events(["deposit_credited"]) if e["data"]["nonce"] == dep],
        )
        w = p.ui("POST", "/v1/withdrawals", 11, json={"amount": "123"})
        assert w.status_code == 201
        assert p.balance(11)["cash"] != cash_at_n[11]

        too_deep = p.rollback({"blocks_back": 500})
        assert too_deep.status_code == 409
        r = p.rollback({"to_block": n})
        assert r.status_code == 200, r.text
        ans = r.json()
        assert ans["to_block"] == n
        assert ans["state_root"] == block_n["new_root"]  # restored root == recorded at N
        assert ans["state_root_verified"] is True
        assert ans["orphaned"]
        assert {a: p.balance(a)["cash"] for a in cash_at_n} == cash_at_n

        # the chain continues from N: N+1's parent is N, the orphaned blocks are kept
        nxt = p.wait(
            "block N+1",
            lambda: p.rpc("starknet_getBlockWithTxs", {"block_id": {"block_number": n + 1}}),
        )
        assert nxt["parent_hash"] == block_n["block_hash"]
        orphan = p.rpc("starknet_getBlockWithTxs", {"block_id": {"block_seq": ans["orphaned"][0]}})
        assert orphan["status"] == "ORPHANED"
        [rb] = p.events(["rollback"])
        assert (rb["data"]["to_block"], rb["block"]) == (n, n + 1)
        assert rb["data"]["state_root"] == block_n["new_root"]

        # the bridge: the orphaned deposit is credited again, the withdrawal dropped
        def recredited() -> bool:
            credits = [e for e in p.events(["deposit_credited"]) if e["data"]["nonce"] == dep]
            return len(credits) == 2 and credits[1]["canonical"]

        p.wait("the deposit re-credited", recredited)
        state = p.http.get(p.url("bridge", "/state")).json()
        dropped = [
            m
            for m in state["messages"]
            if m["direction"] == "l2_to_l1" and m["status"] == "dropped"
        ]
        assert dropped
        assert dropped[0]["amount"] == 123_000_000
        assert p.balance(5)["cash"] == cash_at_n[5] + 777_000_000

        p.audit()
        v = p.check("chain_consistency", "fund_conservation")
        for name, verdict in v.items():
            assert verdict.status == "pass", (name, verdict.violations[:3])
        assert v["chain_consistency"].checked["rollbacks"] == 1
