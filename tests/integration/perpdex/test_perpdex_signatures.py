"""The chain's write path is closed to anyone without a key: the rpc and the sequencer
refuse transactions not signed by their signer (an account's key for its orders,
cancels and withdrawals; the bridge's for deposits; the oracle's for prices), and
nothing changes. A key holder's signed transaction goes through, once."""

from __future__ import annotations

from typing import Any

import pytest
from l2chaos.stacks.perpdex.common.keys import KeyRing
from l2chaos.stacks.perpdex.common.signing import sign

from .conftest import SEED, Perp

pytestmark = pytest.mark.integration

ETH = "ETH-USD-PERP"
VICTIM = 4
BOUND = 15.0
WITHDRAW = {"kind": "withdraw", "account": VICTIM, "amount": 10**9, "client_id": "steal-1"}
PRICE = {
    "kind": "price",
    "prices": [{"market": ETH, "price": 1, "observed_ts_ns": 1}],
    "nonce": "x",
}


def _invoke(p: Perp, tx: Any) -> dict[str, Any]:
    body = {"jsonrpc": "2.0", "id": 1, "method": "starknet_addInvokeTransaction",
            "params": {"invoke_transaction": tx}}  # fmt: skip
    answer: dict[str, Any] = p.http.post(p.url("rpc", "/"), json=body, timeout=BOUND).json()
    return answer


def _forgeries(p: Perp) -> list[tuple[str, dict[str, Any]]]:
    other_run = KeyRing(SEED, "another-run").signing_key(f"account:{VICTIM}")
    return [
        ("unsigned", WITHDRAW),
        ("signed by another trader", p.signed("account:5", WITHDRAW)),
        ("signed by the oracle", p.signed("oracle", WITHDRAW)),
        ("tampered after signing", {**p.signed(f"account:{VICTIM}", WITHDRAW), "amount": 10**10}),
        ("another run's key", sign(other_run, WITHDRAW)),
        (
            "forged deposit",
            {
                "kind": "deposit",
                "account": VICTIM,
                "amount": 10**12,
                "nonce": 10**9,
                "relayer_key": "bridge",
                "signature": "00",
            },
        ),
    ]


def test_rpc_and_sequencer_refuse_unsigned_and_forged_writes(hardened_stack: Perp) -> None:
    p = hardened_stack
    watched = [VICTIM, 5]
    mark = p.event_mark()
    before = p.state(watched)
    for what, tx in _forgeries(p):
        err = _invoke(p, tx)["error"]
        assert (err["code"], err["data"]["field"]) == (55, "signature"), (what, err)
        r = p.http.post(p.url("sequencer", "/tx"), json=tx, timeout=BOUND)
        assert r.status_code == 403, (what, r.text)
        assert r.json()["error"]["field"] == "signature"
    answers = p.http.post(
        p.url("sequencer", "/txs"), json=[tx for _, tx in _forgeries(p)], timeout=BOUND
    ).json()
    assert {a["status_code"] for a in answers} == {403}
    tampered = {**p.signed("oracle", PRICE), "nonce": "y"}
    for price in (PRICE, p.signed(f"account:{VICTIM}", PRICE), tampered):
        r = p.http.post(p.url("sequencer", "/oracle/prices"), json=price, timeout=BOUND)
        assert (r.status_code, r.json()["error"]["field"]) == (403, "signature"), r.text
    # the bridge locks a deposit only at its account's signed request
    lock = {"kind": "l1_deposit", "account": VICTIM, "amount": 10**12, "client_id": "mint"}
    for req in (lock, p.signed("account:5", lock), {**p.signed(f"account:{VICTIM}", lock),
                                                   "amount": 10**13}):  # fmt: skip
        r = p.http.post(p.url("bridge", "/deposits"), json=req, timeout=BOUND)
        assert (r.status_code, r.json()["error"]["field"]) == (403, "signature"), r.text
    assert p.state(watched) == before
    assert p.account_events_since(mark, watched) == []
    assert p.seq_markets()[ETH]["index_price"] > 1


def test_a_signed_withdrawal_goes_through_once(hardened_stack: Perp) -> None:
    p = hardened_stack
    cash = p.balance(VICTIM)["cash"]
    tx = p.signed(f"account:{VICTIM}", {**WITHDRAW, "client_id": "mine-1"})
    first = _invoke(p, tx)["result"]["receipt"]
    again = _invoke(p, tx)["result"]["receipt"]
    assert first["status"] == "accepted", first
    assert again["transaction_hash"] == first["transaction_hash"]
    assert p.balance(VICTIM)["cash"] == cash - 10**9
    assert len(p.events(["withdrawal"], account=VICTIM)) == 1
