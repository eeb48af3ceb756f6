"""Message-level faults through the real L7 proxy on the real perpdex stack (local
backend): each takes effect on exactly the matching calls, is logged with the call id
in the run's l7.jsonl, and stops at heal."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from l2chaos.pytest_fixtures import FaultInjector

pytestmark = pytest.mark.integration

UI_RPC = "ui-api->rpc"


class LinkClient:
    """Plays the client side of a link: JSON-RPC calls through its proxy chain."""

    def __enter__(self) -> LinkClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def __init__(self, p: Any, link: str) -> None:
        self.url = p.stack.link_endpoint(link).url("/")
        self.direct = p.url(link.split("->")[1], "/")
        self.http = httpx.Client(timeout=30, trust_env=False)
        self.rid = 1000

    def call(self, method: str, params: Any = None, direct: bool = False) -> httpx.Response:
        self.rid += 1
        body = {"jsonrpc": "2.0", "id": self.rid, "method": method, "params": params or {}}
        return self.http.post(self.direct if direct else self.url, json=body)

    def result(self, method: str, params: Any = None, direct: bool = False) -> Any:
        answer = self.call(method, params, direct).json()
        assert "result" in answer, answer
        return answer["result"]


def decisions(p: Any, rule: str) -> list[dict[str, Any]]:
    path = p.run_dir / "l7.jsonl"
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line]
    return [r for r in rows if r.get("rule") == rule]


@contextmanager
def fault(p: Any, name: str, target: str, **params: Any) -> Iterator[dict[str, Any]]:
    inj = FaultInjector(p.stack, p.stack.run, seed=5)
    try:
        with inj.inject(name, target, **params) as details:
            yield details
    finally:
        inj.close()


MARKETS = {"request": {"entry_point_selector": "markets", "calldata": []}}


def test_rpc_faults_hit_exactly_the_matching_calls(perpdex: Any) -> None:
    with perpdex("hardened") as p, LinkClient(p, UI_RPC) as c:
        assert c.result("starknet_call", MARKETS)  # passes untouched before any fault

        with fault(
            p,
            "rpc.error",
            UI_RPC,
            methods=["starknet_getTransactionReceipt"],
            code=-32005,
            message="limited",
        ) as d:
            bad = c.call("starknet_getTransactionReceipt", {"transaction_hash": "0x1"}).json()
            assert bad["error"] == {"code": -32005, "message": "limited"}
            assert c.result("starknet_call", MARKETS)
            assert isinstance(c.result("starknet_blockNumber"), int)
        hit = decisions(p, d["rule"])
        assert [(r["call"]["method"], r["call"]["id"], r["effect"]) for r in hit] == [
            ("starknet_getTransactionReceipt", c.rid - 2, "error_before")
        ]
        # healed: the node's own answer again (29: transaction not found)
        assert (
            c.call("starknet_getTransactionReceipt", {"transaction_hash": "0x1"}).json()["error"][
                "code"
            ]
            == 29
        )

        with fault(
            p,
            "rpc.corrupt",
            UI_RPC,
            methods=["starknet_call"],
            set={"result.markets[*].index_price": 0},
        ) as d:
            through = c.result("starknet_call", MARKETS)
            direct = c.result("starknet_call", MARKETS, direct=True)
            assert {m["index_price"] for m in through["markets"]} == {0}
            assert all(m["index_price"] > 0 for m in direct["markets"])
            assert c.result("starknet_blockNumber") > 0
        assert [r["effect"] for r in decisions(p, d["rule"])] == ["corrupted"]
        assert decisions(p, d["rule"])[0]["details"]["fields_set"] == len(through["markets"])
        assert all(m["index_price"] > 0 for m in c.result("starknet_call", MARKETS)["markets"])

        with fault(p, "rpc.delay", UI_RPC, methods=["starknet_blockNumber"], latency="400ms") as d:
            t = time.monotonic()
            c.result("starknet_blockNumber")
            assert time.monotonic() - t >= 0.4
            c.result("starknet_call", MARKETS)
        assert [
            (r["call"]["method"], r["details"]["delay_ms"]) for r in decisions(p, d["rule"])
        ] == [("starknet_blockNumber", 400.0)]


def test_stale_head_serves_the_head_seen_at_injection_until_heal(perpdex: Any) -> None:
    with perpdex("hardened") as p, LinkClient(p, UI_RPC) as c:
        with fault(p, "rpc.stale_head", UI_RPC) as d:
            snap = d["snapshot"]["height"]
            assert d["snapshot"]["flavor"] == "starknet"
            p.wait(
                "the chain to move on",
                lambda: c.result("starknet_blockNumber", direct=True) > snap + 5,
            )
            assert c.result("starknet_blockNumber") == snap
            assert c.result("starknet_blockHashAndNumber")["block_number"] == snap
            block = c.result("starknet_getBlockWithTxs", {"block_id": "latest"})
            assert block["block_number"] == snap
            old = c.result("starknet_getBlockWithTxs", {"block_id": {"block_number": 1}})
            assert old["block_number"] == 1  # an explicit block is not touched
        effects = [r["effect"] for r in decisions(p, d["rule"])]
        assert effects == ["stale_answer", "stale_answer", "pinned", "no_effect"]
        assert c.result("starknet_blockNumber") > snap + 5


def test_http_status_on_deposits_reaches_the_trader(perpdex: Any) -> None:
    with perpdex("hardened") as p:
        with fault(
            p, "http.status", "ui-api->bridge", paths=["/deposits"], status=429, retry_after="3s"
        ) as d:
            r = p.ui("POST", "/v1/deposits", 1, json={"amount": "10"})
            assert r.status_code == 503, r.text
            assert "429" in r.text
            assert p.ui("GET", "/v1/account", 1).status_code == 200  # other paths work
        assert [(r["call"], r["effect"]) for r in decisions(p, d["rule"])] == [
            ({"verb": "POST", "path": "/deposits"}, "status")
        ]
        assert p.ui("POST", "/v1/deposits", 1, json={"amount": "10"}).status_code in (200, 201, 202)


def concurrent_orders(p: Any, n: int, price: str) -> list[httpx.Response]:
    """`n` post-only bids far under the index, sent at once from accounts 1..n."""

    async def send() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30, trust_env=False) as http:
            body = {"market": "ETH-USD-PERP", "side": "buy", "type": "limit", "size": "0.01"}
            return await asyncio.gather(
                *(
                    http.post(
                        p.url("ui-api", "/v1/orders"),
                        headers={"X-API-Key": p.keys[a]},
                        json={**body, "price": price, "post_only": True},
                    )
                    for a in range(1, n + 1)
                )
            )

    return asyncio.run(send())


def test_a_fault_on_one_write_of_a_batch_fails_only_that_order(perpdex: Any) -> None:
    """The trader API sends the writes of one event-loop turn as one JSON-RPC batch: an
    rpc.error drawn for one call of the batch answers that order alone; the others of
    the same HTTP request are committed and acknowledged."""
    with perpdex("hardened") as p:
        p.wait_trading()
        index = float(p.markets()["ETH-USD-PERP"]["index_price"])
        price = f"{index * 0.96:.1f}"
        answers: list[httpx.Response] = []
        with fault(
            p,
            "rpc.error",
            UI_RPC,
            methods=["starknet_addInvokeTransaction"],
            code=-32005,
            message="limited",
            probability=0.5,
        ) as d:

            def mixed_batch() -> bool:
                answers.extend(concurrent_orders(p, 20, price))
                by_req: dict[int, set[bool]] = {}
                for r in decisions(p, d["rule"]):
                    by_req.setdefault(r["req"], set()).add(r["hit"])
                return any(len(hits) == 2 for hits in by_req.values())

            p.wait("one rpc request carrying a hit and a passed write", mixed_batch, every=0)
        rows = decisions(p, d["rule"])
        assert {r["call"]["method"] for r in rows} == {"starknet_addInvokeTransaction"}
        statuses = [a.status_code for a in answers]
        assert statuses.count(503) == sum(r["hit"] for r in rows)
        assert statuses.count(201) == sum(not r["hit"] for r in rows)
        assert statuses.count(201) + statuses.count(503) == len(answers)
        assert all("limited" in a.text for a in answers if a.status_code == 503)
        stats = p.http.get(p.url("ui-api", "/admin/stats"), headers=p.admin).json()
        assert stats["write_requests"] < stats["writes"]
        # every acknowledged order is on the book, under its own account
        for a, answer in zip(range(1, 21), answers[-20:], strict=True):
            if answer.status_code == 201:
                open_ids = {o["order_id"] for o in p.ui("GET", "/v1/orders", a).json()["orders"]}
                assert answer.json()["order_id"] in open_ids


FEED = "oracle->pricefeed"
BTC, ETH = "BTC-USD-PERP", "ETH-USD-PERP"


def oracle_reference(p: Any) -> list[dict[str, Any]]:
    text = p.http.get(p.url("oracle", "/admin/reference"), headers=p.admin).text
    return [json.loads(line) for line in text.splitlines() if line]


@pytest.mark.parametrize("profile", ["vulnerable", "hardened"])
def test_a_zero_from_the_price_source_is_signed_and_reaches_the_sequencer(
    perpdex: Any, profile: str
) -> None:
    """The oracle signs what its source said: a zero answered on oracle -> pricefeed is
    pushed with a valid signature. vulnerable takes it as the index; hardened's price
    validation rejects it (price_rejected) and keeps the last good index."""
    with perpdex(profile) as p:
        p.wait("a BTC index", lambda: p.seq_markets()[BTC]["index_price"] > 0)
        zero = {'result.prices["BTC-USD-PERP"]': 0}
        with fault(p, "rpc.corrupt", FEED, methods=["feed_getPrices"], set=zero) as d:
            rows = p.wait(
                "a zero read from the source, signed and delivered",
                lambda: [
                    r
                    for r in oracle_reference(p)
                    if r["market"] == BTC and r["source_price"] == 0 and r["published_price"] == 0
                ],
            )
            assert all(r["model_price"] > 0 for r in rows)  # the truth stays in the log
            if profile == "vulnerable":
                p.wait("the zero index", lambda: p.seq_markets()[BTC]["index_price"] == 0)
            else:
                p.wait(
                    "the zero price rejected",
                    lambda: [
                        e
                        for e in p.events(kinds=["price_rejected"])
                        if e["data"]["market"] == BTC and e["data"]["price"] == 0
                    ],
                )
                assert p.seq_markets()[BTC]["index_price"] > 0
            tick = rows[-1]["tick"]
            (eth,) = [r for r in oracle_reference(p) if r["tick"] == tick and r["market"] == ETH]
            assert eth["source_price"] == eth["model_price"] == eth["published_price"]
        hits = decisions(p, d["rule"])
        assert len(hits) >= len(rows)
        assert {(r["call"]["method"], r["effect"]) for r in hits} == {
            ("feed_getPrices", "corrupted")
        }
        assert all(r["details"]["fields_set"] == 1 for r in hits)
        # healed: the source's own price again, and the index follows it
        last = oracle_reference(p)[-1]["tick"]
        p.wait(
            "the source's own price again",
            lambda: [
                r
                for r in oracle_reference(p)
                if r["tick"] > last
                and r["market"] == BTC
                and r["published_price"] == r["model_price"]
            ],
        )
        p.wait("a positive BTC index", lambda: p.seq_markets()[BTC]["index_price"] > 0)
