"""Deposits are idempotent by client_id (as withdrawals are): a replay, even many at
once, locks and credits once; a reused client_id with another amount is 409; the
escrow limit is a 422, never "L1 unavailable"."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from .conftest import FAST

pytestmark = pytest.mark.integration

USD = 1_000_000
ACCOUNT = 3


def test_a_replayed_deposit_is_credited_once(perpdex: Any) -> None:
    users = FAST["accounts"] + 5
    genesis = users * 100_000 * USD + 2 * 10_000_000 * USD
    limit = genesis + 150 * USD  # room for two deposits of $60, not three
    with perpdex("hardened", env={"PERPDEX_MAX_ESCROW": str(limit)}) as p:
        cash = p.balance(ACCOUNT)["cash"]
        escrow = p.state([])["escrow"]
        body = {"amount": "60", "client_id": "dep-1"}

        def deposit(_: int) -> httpx.Response:
            r: httpx.Response = p.ui("POST", "/v1/deposits", ACCOUNT, json=body, timeout=15)
            return r

        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(deposit, range(8)))
        assert {r.status_code for r in answers} == {201}, [r.text for r in answers]
        assert len({r.json()["nonce"] for r in answers}) == 1
        assert sorted(r.json()["replayed"] for r in answers) == [False] + [True] * 7
        p.wait("the credit", lambda: p.balance(ACCOUNT)["cash"] == cash + 60 * USD)
        assert p.state([])["escrow"] == escrow + 60 * USD
        # once the bridge has seen the credit, a replay says so (and still locks nothing)
        again = p.wait(
            "the replay to report the credit",
            lambda: (r := deposit(0)).json()["status"] == "credited" and r,
        )
        assert (again.status_code, again.json()["nonce"]) == (201, answers[0].json()["nonce"])
        # the same client_id for another deposit: refused, nothing locked
        r = p.ui("POST", "/v1/deposits", ACCOUNT, json={"amount": "61", "client_id": "dep-1"})
        assert (r.status_code, r.json()["error"]["field"]) == (409, "client_id"), r.text
        # another account may use the same client_id: it names the account's own deposit
        r = p.ui("POST", "/v1/deposits", ACCOUNT + 1, json=body)
        assert (r.status_code, r.json()["replayed"]) == (201, False)
        # past the escrow limit: a clear 422, and the escrow does not move
        r = p.ui("POST", "/v1/deposits", ACCOUNT, json={"amount": "60", "client_id": "dep-2"})
        assert (r.status_code, r.json()["error"]["code"]) == (422, "escrow_limit"), r.text
        assert p.state([])["escrow"] == escrow + 120 * USD
        credits = p.events(["deposit_credited"], account=ACCOUNT)
        assert [e["data"]["amount"] for e in credits][1:] == [60 * USD]
        assert p.balance(ACCOUNT)["cash"] == cash + 60 * USD
