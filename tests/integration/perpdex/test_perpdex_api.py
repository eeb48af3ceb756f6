"""The APIs around the chain: ui-api validation (4xx, never a 500, never a state
change), JSON-RPC error objects, idempotent writes, admin auth, a sequencer restart
that reloads and verifies its state, and the test-only broken fee path that the
harness's fund-conservation checker must catch."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.integration

ETH = "ETH-USD-PERP"

BAD_ORDERS: list[tuple[Any, str]] = [
    (
        {"market": "DOGE-USD-PERP", "side": "buy", "type": "limit", "size": "1", "price": "1"},
        "market",
    ),
    ({"side": "buy", "type": "limit", "size": "1", "price": "1"}, "market"),
    ({"market": ETH, "side": "hold", "type": "limit", "size": "1", "price": "1"}, "side"),
    ({"market": ETH, "side": "buy", "type": "stop", "size": "1", "price": "1"}, "type"),
    ({"market": ETH, "side": "buy", "type": "limit", "size": "0", "price": "3000"}, "size"),
    ({"market": ETH, "side": "buy", "type": "limit", "size": "-1", "price": "3000"}, "size"),
    ({"market": ETH, "side": "buy", "type": "limit", "size": "0.000001", "price": "3000"}, "size"),
    ({"market": ETH, "side": "buy", "type": "limit", "size": "1e400", "price": "3000"}, "size"),
    ({"market": ETH, "side": "buy", "type": "limit", "size": "NaN", "price": "3000"}, "size"),
    ({"market": ETH, "side": "buy", "type": "limit", "size": True, "price": "3000"}, "size"),
    ({"market": ETH, "side": "buy", "type": "limit", "size": "1", "price": "abc"}, "price"),
    ({"market": ETH, "side": "buy", "type": "limit", "size": "1", "price": "3000.05"}, "price"),
    ({"market": ETH, "side": "buy", "type": "limit", "size": "1", "price": "-3000"}, "price"),
    ({"market": ETH, "side": "buy", "type": "limit", "size": "1"}, "price"),
    ({"market": ETH, "side": "buy", "type": "market", "size": "1", "price": "3000"}, "price"),
    ({"market": ETH, "side": "buy", "type": "market", "size": "1", "post_only": True}, "post_only"),
    (
        {
            "market": ETH,
            "side": "buy",
            "type": "limit",
            "size": "1",
            "price": "3000",
            "post_only": "yes",
        },
        "post_only",
    ),
    (
        {
            "market": ETH,
            "side": "buy",
            "type": "limit",
            "size": "1",
            "price": "3000",
            "client_id": "x" * 65,
        },
        "client_id",
    ),
    (
        {
            "market": ETH,
            "side": "buy",
            "type": "limit",
            "size": "1",
            "price": "3000",
            "leverage": 50,
        },
        "leverage",
    ),
    ([1, 2, 3], "(body)"),
]


def test_ui_api_rejects_bad_requests_without_changing_state(perpdex: Any) -> None:
    with perpdex("hardened") as p:
        before = p.balance(1)
        head = p.head()["seq"]
        for body, field in BAD_ORDERS:
            r = (
                p.order(1, **body)
                if isinstance(body, dict)
                else p.ui("POST", "/v1/orders", 1, json=body)
            )
            assert r.status_code == 400, (body, r.text)
            err = r.json()["error"]
            assert err["field"] == field, (body, err)
        r = p.ui("POST", "/v1/orders", 1, content=b'{"market": ')
        assert (r.status_code, r.json()["error"]["code"]) == (400, "malformed_json")
        for amount in ("0", "-5", "1.0000001", "lots", None):
            r = p.ui("POST", "/v1/withdrawals", 1, json={"amount": amount})
            assert (r.status_code, r.json()["error"]["field"]) == (400, "amount")
            r = p.ui("POST", "/v1/deposits", 1, json={"amount": amount})
            assert (r.status_code, r.json()["error"]["field"]) == (400, "amount")
        assert p.ui("DELETE", "/v1/orders/abc", 1).status_code == 400
        assert p.ui("DELETE", "/v1/orders/999999", 1).status_code == 404
        # keys
        r = p.ui("GET", "/v1/account", headers={"X-API-Key": "pk_nope"})
        assert (r.status_code, r.json()["error"]["field"]) == (401, "X-API-Key")
        assert p.ui("GET", "/v1/account").status_code == 401
        # nothing happened: no transaction from account 1 reached a block
        assert p.balance(1) == before
        txs = []
        for n in range(p.rpc("starknet_blockNumber") + 1):
            b = p.rpc("starknet_getBlockWithTxs", {"block_id": {"block_number": n}})
            if b["block_seq"] > head:
                txs += [t for t in b["transactions"] if t.get("account") == 1]
        # only the cancel of a non-existent order reached the chain (and was rejected)
        assert [(t["kind"], t["status"], t["reason"]) for t in txs] == [
            ("cancel", "rejected", "unknown_order")
        ]
        # a business rejection is 422 with the reason
        r = p.order(1, market=ETH, side="buy", type="limit", size="1000", price="3000")
        assert (r.status_code, r.json()["error"]["code"]) == (422, "insufficient_margin")


def test_writes_are_idempotent_and_state_survives_a_sequencer_restart(perpdex: Any) -> None:
    with perpdex("hardened") as p:
        px = p.markets()[ETH]["index_price"]
        body = {
            "market": ETH,
            "side": "sell",
            "type": "limit",
            "size": "2",
            "price": px,
            "client_id": "same-1",
        }
        first = p.order(12, **body).json()
        again = p.order(12, **body).json()
        assert first["order_id"] == again["order_id"]
        assert first["tx_hash"] == again["tx_hash"]
        assert (
            len(
                [
                    o
                    for o in p.ui("GET", "/v1/orders", 12).json()["orders"]
                    if o["client_id"] == "same-1"
                ]
            )
            == 1
        )
        assert p.order(13, market=ETH, side="buy", type="market", size="1").status_code == 201
        head_before = p.head()["number"]
        p.stack.control.restart("sequencer")
        p.stack.control.wait_ready("sequencer", 30)
        log = p.stack.log_path("sequencer").read_text()
        assert log.count('"msg":"state loaded"') == 2
        after = p.head()
        assert after["number"] >= head_before
        orders = p.ui("GET", "/v1/orders", 12).json()["orders"]
        assert [o["remaining"] for o in orders if o["client_id"] == "same-1"] == ["1"]
        assert p.order(12, **body).json()["order_id"] == first["order_id"]  # still deduplicated
        # the reload verified the root of the last block against the reloaded state
        blk = p.rpc("starknet_getBlockWithTxs", {"block_id": {"block_hash": after["hash"]}})
        assert blk["new_root"] == after["state_root"]
        # and reopened in stages after the restart
        p.wait_trading(account=9)
        reasons = [e["data"]["reason"] for e in p.events(["mode_change"])]
        assert reasons[-1] == "staged_reopen:restart"

        # an L1->L2 message is credited once: the same transaction again gets the original
        # receipt back; a reworded one with the same nonce is rejected
        credit = next(e for e in p.events(["deposit_credited"]) if e["data"]["account"] == 12)
        cash = p.balance(12)["cash"]
        receipts = []
        for amount in (credit["data"]["amount"], 10**12):
            tx = p.signed(
                "bridge",
                {
                    "kind": "deposit",
                    "account": 12,
                    "amount": amount,
                    "nonce": credit["data"]["nonce"],
                    "relayer_key": "bridge",
                },
            )
            receipts.append(
                p.rpc("starknet_addInvokeTransaction", {"invoke_transaction": tx})["receipt"]
            )
        assert receipts[0]["transaction_hash"] == credit["tx"]
        assert receipts[0]["block_seq"] == credit["block_seq"]
        assert (receipts[1]["status"], receipts[1]["reason"]) == (
            "rejected",
            "message_already_consumed",
        )
        assert len(list(p.events(["deposit_credited"], account=12))) == 1
        assert p.balance(12)["cash"] == cash


def test_rpc_errors_are_json_rpc_error_objects(perpdex: Any) -> None:
    with perpdex("vulnerable") as p:
        url = p.url("rpc", "/")

        def err(body: Any, status: int = 200) -> dict[str, Any]:
            r = httpx.post(
                url,
                content=body if isinstance(body, bytes) else None,
                json=None if isinstance(body, bytes) else body,
            )
            assert r.status_code == status
            return dict(r.json()["error"])

        assert err(b"{oops", 400)["code"] == -32700  # the request as a whole is unusable
        assert err({"id": 1, "method": "starknet_blockNumber"})["code"] == -32600
        assert err({"jsonrpc": "2.0", "id": 1, "method": "nope"})["code"] == -32601
        assert (
            err(
                {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "starknet_getBlockWithTxs",
                    "params": {"block_id": {"block_number": 10**9}},
                }
            )["code"]
            == 24
        )
        assert (
            err(
                {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "starknet_getTransactionReceipt",
                    "params": {"transaction_hash": "0x00"},
                }
            )["code"]
            == 29
        )
        assert (
            err(
                {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "starknet_call",
                    "params": {"request": {"entry_point_selector": "steal"}},
                }
            )["code"]
            == -32602
        )
        bad_tx = {
            "kind": "order",
            "account": 1,
            "market": ETH,
            "side": "buy",
            "type": "limit",
            "size": 0,
            "price": 1,
            "client_id": "bad-size",
        }
        bad_tx = p.signed("account:1", bad_tx)
        e = err(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "starknet_addInvokeTransaction",
                "params": {"invoke_transaction": bad_tx},
            }
        )
        assert e["code"] == 55
        assert e["data"]["field"] == "size"
        forged = {
            "kind": "deposit",
            "account": 1,
            "amount": 10**12,
            "nonce": 999999,
            "relayer_key": "bridge",
            "signature": "guess",
        }
        e = err(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "starknet_addInvokeTransaction",
                "params": {"invoke_transaction": forged},
            }
        )
        assert (e["code"], e["data"]["field"]) == (55, "signature")
        # a batch: answers for each, in order
        batch = [
            {"jsonrpc": "2.0", "id": 7, "method": "starknet_blockNumber"},
            {"jsonrpc": "2.0", "id": 8, "method": "nope"},
        ]
        answers = httpx.post(url, json=batch).json()
        assert [a["id"] for a in answers] == [7, 8]
        assert isinstance(answers[0]["result"], int)
        assert answers[1]["error"]["code"] == -32601
        # admin routes need the token
        assert httpx.get(p.url("ui-api", "/admin/accounts")).status_code == 401
        assert (
            httpx.post(
                p.url("sequencer", "/admin/chaos/mode"),
                json={"mode": "halted"},
                headers={"Authorization": "Bearer wrong"},
            ).status_code
            == 401
        )


def test_broken_fee_path_is_caught_by_fund_conservation(perpdex: Any) -> None:
    with perpdex("vulnerable", env={"PERPDEX_TEST_BREAK_FEE_PATH": "1"}) as p:
        px = p.markets()[ETH]["index_price"]
        assert (
            p.order(5, market=ETH, side="sell", type="limit", size="1", price=px).status_code == 201
        )
        assert p.order(6, market=ETH, side="buy", type="market", size="1").status_code == 201
        p.audit()
        v = p.check("fund_conservation")["fund_conservation"]
        assert v.status == "fail"
        assert any("fees" in x.message for x in v.violations)
