"""The L7 proxy's decisions on one request, without the network: what each rule does
to exactly the calls it matches, batches call by call, and draws from the seed."""

from __future__ import annotations

import json
from typing import Any

from l2chaos.l7proxy.engine import ActiveRule, Exchange, HeadSnapshot, LinkState
from l2chaos.l7proxy.rules import (
    Action,
    Corrupt,
    Delay,
    DropResponse,
    Error,
    Match,
    Rule,
    StaleHead,
    Status,
)


def link(*rules: Rule, snapshot: HeadSnapshot | None = None) -> LinkState:
    state = LinkState("a->b")
    for r in rules:
        state.rules[r.id] = ActiveRule(r, snapshot if isinstance(r.action, StaleHead) else None)
    return state


def rpc_rule(action: Action, *methods: str, p: float = 1.0, seed: int = 1, rid: str = "r") -> Rule:
    return Rule(rid, "rpc", action, Match(methods=methods), probability=p, seed=seed)


def http_rule(action: Action, *paths: str, rid: str = "h") -> Rule:
    return Rule(rid, "http", action, Match(paths=paths))


def call(method: str, cid: Any = 1, params: Any = None) -> dict[str, Any]:
    out: dict[str, Any] = {"jsonrpc": "2.0", "id": cid, "method": method}
    if params is not None:
        out["params"] = params
    return out


def body(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def test_no_rules_forwards_the_bytes_untouched() -> None:
    raw = b'{"jsonrpc": "2.0", "id": 1, "method": "x"}'
    ex = Exchange(link(), "POST", "/", raw)
    plan = ex.before()
    assert plan.body is raw
    assert not plan.local
    assert ex.after(b"answer").body == b"answer"
    assert ex.decisions == []


def test_error_before_answers_only_the_matching_call_of_a_batch() -> None:
    state = link(rpc_rule(Error(code=-32005, message="limit"), "eth_sendRawTransaction"))
    batch = [call("eth_blockNumber", 1), call("eth_sendRawTransaction", 2, ["0xab"])]
    ex = Exchange(state, "POST", "/", body(batch))
    plan = ex.before()
    assert not plan.local
    assert json.loads(plan.body) == [batch[0]]  # only the other call is forwarded
    assert plan.identity  # the answer must be recomposed
    out = ex.after(body([{"jsonrpc": "2.0", "id": 1, "result": "0x10"}]))
    answers = json.loads(out.body)
    assert answers[0] == {"jsonrpc": "2.0", "id": 1, "result": "0x10"}
    assert answers[1]["error"] == {"code": -32005, "message": "limit"}
    assert [(d.call["method"], d.effect) for d in ex.decisions] == [
        ("eth_sendRawTransaction", "error_before")
    ]


def test_error_before_on_every_call_answers_without_forwarding() -> None:
    state = link(rpc_rule(Error(code=7, message="no"), "m"))
    ex = Exchange(state, "POST", "/", body(call("m", "x")))
    plan = ex.before()
    assert plan.local
    assert plan.status == 200
    assert json.loads(plan.body) == {
        "jsonrpc": "2.0",
        "id": "x",
        "error": {"code": 7, "message": "no"},
    }


def test_error_after_forwards_then_replaces_the_answer() -> None:
    state = link(rpc_rule(Error(code=-32603, message="lost", when="after"), "m"))
    ex = Exchange(state, "POST", "/", body(call("m", 3)))
    plan = ex.before()
    assert not plan.local
    assert json.loads(plan.body)["method"] == "m"
    out = ex.after(body({"jsonrpc": "2.0", "id": 3, "result": "0xhash"}))
    assert json.loads(out.body)["error"]["message"] == "lost"
    assert ex.decisions[0].effect == "error_after"


def test_drop_response_forwards_and_drops() -> None:
    state = link(rpc_rule(DropResponse(mode="cut"), "starknet_addInvokeTransaction"))
    ex = Exchange(state, "POST", "/", body(call("starknet_addInvokeTransaction")))
    assert not ex.before().local
    assert ex.after(b"{}").drop == "cut"
    ex2 = Exchange(state, "POST", "/", body(call("starknet_call")))
    ex2.before()
    assert ex2.after(b"{}").drop is None
    assert len(ex2.decisions) == 0


def test_stale_head_answers_numbers_and_pins_latest() -> None:
    snap = HeadSnapshot("evm", 0x20)
    state = link(rpc_rule(StaleHead(), "eth_blockNumber", "*_getBlockByNumber"), snapshot=snap)
    batch = [
        call("eth_blockNumber", 1),
        call("eth_getBlockByNumber", 2, ["latest", False]),
        call("eth_getBlockByNumber", 3, ["0x5", False]),
        call("eth_chainId", 4),
    ]
    ex = Exchange(state, "POST", "/", body(batch))
    plan = ex.before()
    forwarded = json.loads(plan.body)
    assert [c["id"] for c in forwarded] == [2, 3, 4]
    assert forwarded[0]["params"] == ["0x20", False]
    assert forwarded[1]["params"] == ["0x5", False]
    out = ex.after(body([{"jsonrpc": "2.0", "id": i, "result": i} for i in (4, 3, 2)]))
    answers = json.loads(out.body)
    assert [a["id"] for a in answers] == [1, 2, 3, 4]  # in request order
    assert answers[0]["result"] == "0x20"
    effects = [d.effect for d in ex.decisions]
    assert effects == ["stale_answer", "pinned", "no_effect"]


def test_stale_head_starknet_pins_block_id() -> None:
    snap = HeadSnapshot("starknet", 12)
    state = link(rpc_rule(StaleHead(), "starknet_*"), snapshot=snap)
    ex = Exchange(
        state, "POST", "/", body(call("starknet_getBlockWithTxs", 1, {"block_id": "latest"}))
    )
    assert json.loads(ex.before().body)["params"] == {"block_id": {"block_number": 12}}
    ex = Exchange(state, "POST", "/", body(call("starknet_blockNumber", 1)))
    assert json.loads(ex.before().body)["result"] == 12


def test_corrupt_rewrites_answers_and_requests() -> None:
    state = link(
        rpc_rule(Corrupt(set=(("result.price", 0),)), "starknet_call", rid="a"),
        rpc_rule(Corrupt(set=(("params.amount", 1),), target="request"), "deposit", rid="b"),
    )
    ex = Exchange(state, "POST", "/", body(call("starknet_call", 1)))
    ex.before()
    out = ex.after(body({"jsonrpc": "2.0", "id": 1, "result": {"price": 100, "x": 1}}))
    assert json.loads(out.body)["result"] == {"price": 0, "x": 1}
    assert ex.decisions[0].details == {"fields_set": 1}
    ex = Exchange(state, "POST", "/", body(call("deposit", 1, {"amount": 5})))
    assert json.loads(ex.before().body)["params"] == {"amount": 1}


def test_http_status_and_corrupt_of_a_plain_body() -> None:
    state = link(
        http_rule(Status(status=429, retry_after_s=2), "/limited", rid="s"),
        http_rule(Corrupt(set=(("prices[*].price", 0),), target="request"), "/oracle/*", rid="c"),
    )
    ex = Exchange(state, "POST", "/limited", b"x")
    plan = ex.before()
    assert plan.status == 429
    assert plan.headers["Retry-After"] == "2"
    push = {"prices": [{"market": "BTC", "price": 9}], "nonce": 1}
    ex = Exchange(state, "POST", "/oracle/prices", body(push))
    assert json.loads(ex.before().body)["prices"] == [{"market": "BTC", "price": 0}]
    ex = Exchange(state, "POST", "/other", b"not json")
    assert ex.before().body == b"not json"
    assert ex.decisions == []


def test_non_json_bodies_pass_untouched_through_rpc_rules() -> None:
    state = link(rpc_rule(Error(), ""), rpc_rule(Corrupt(set=(("a", 1),)), rid="c"))
    for raw in (b"hello", b'{"not": "rpc"}', b"[]", b"[1, 2]"):
        ex = Exchange(state, "POST", "/", raw)
        assert ex.before().body is raw
        assert ex.after(b"answer").body == b"answer"
        assert ex.decisions == []


def test_corrupt_of_a_non_json_answer_has_no_effect_and_says_so() -> None:
    state = link(rpc_rule(Corrupt(set=(("result", 0),)), "m"))
    ex = Exchange(state, "POST", "/", body(call("m")))
    ex.before()
    assert ex.after(b"<html>502</html>").body == b"<html>502</html>"
    assert ex.decisions[0].effect == "no_effect"


def test_delay_applies_to_matching_calls_only() -> None:
    state = link(
        rpc_rule(Delay(latency_ms=200), "slow"),
        rpc_rule(Delay(latency_ms=50, when="after"), "slow", rid="z"),
    )
    ex = Exchange(state, "POST", "/", body(call("fast")))
    assert ex.before().delay_s == 0
    ex = Exchange(state, "POST", "/", body([call("fast", 1), call("slow", 2)]))
    assert ex.before().delay_s == 0.2
    assert ex.after(b"[]").delay_s == 0.05


def test_probability_draws_replay_with_the_seed() -> None:
    def hits(seed: int) -> list[bool]:
        state = link(rpc_rule(Error(), "m", p=0.3, seed=seed))
        out = []
        for i in range(200):
            ex = Exchange(state, "POST", "/", body(call("m", i)))
            out.append(ex.before().local)
        return out

    a, b = hits(7), hits(7)
    assert a == b
    assert 20 < sum(a) < 100
    assert hits(8) != a
    state = link(rpc_rule(Error(), "m", p=0.0))
    ex = Exchange(state, "POST", "/", body(call("m")))
    assert not ex.before().local
    assert [d.effect for d in ex.decisions] == ["pass"]


def test_decision_records_carry_the_call_id() -> None:
    state = link(rpc_rule(Error(), "m"))
    ex = Exchange(state, "POST", "/", body(call("m", "abc")))
    ex.before()
    rec = ex.decisions[0].to_json("a->b", ex.req)
    assert rec["call"] == {"id": "abc", "method": "m"}
    assert rec["action"] == "rpc.error"
    assert rec["hit"] is True
    assert rec["req"] == 1
    assert state.rules["r"].stats() == {"matched": 1, "hit": 1}
