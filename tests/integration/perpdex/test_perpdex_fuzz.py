"""Random requests (bodies, params, paths, batch entries, headers) at every endpoint of
the trader API and the RPC of a real stack: never a 500 (nor an internal JSON-RPC
error or "unavailable" from a healthy stack), every refusal a well-formed error, and
no state change.

The fuzzed account has no cash and the bridge's escrow is full, so no request it can
make is allowed to move value: after every example its balance, the escrow and the L1
messages are what they were. Examples are bounded (FUZZ_EXAMPLES each) so this runs
in about a minute."""

from __future__ import annotations

import json
import os
import string
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from l2chaos.stacks.perpdex.markets import format_quote

from .conftest import FAST, TOKEN, Perp, _starter

pytestmark = pytest.mark.integration

ACCOUNT = 2
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "300"))
BOUND = 30.0
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# ------------------------------------------------------------------ strategies

NUMBERISH = st.sampled_from(
    ["1e999990", "1e999999999", "0.00_1", "\u0661", "-0", "00.1", ".", "1.", "9" * 45,
     "1e-99", " 1", "0x10", "NaN", "Infinity", "1,5", "\u00b2", "0.01", "3000"]
)  # fmt: skip
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(10**30), 10**30)
    | st.sampled_from([2**62, 2**63, -(2**63) - 1, 10**100])
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | NUMBERISH
)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)
# what an HTTP client can send as a header value: printable, no surrounding whitespace
HEADER_TEXT = st.text(alphabet=string.printable.strip("\r\n\x0b\x0c"), max_size=60).map(
    lambda t: t.strip(" \t")
)

_DROP = object()
ORDER = {"market": "ETH-USD-PERP", "side": "buy", "type": "limit", "size": "0.01", "price": "3000"}
ORDER_FIELDS = [*ORDER, "post_only", "reduce_only", "client_id", "leverage"]


def _near(base: dict[str, Any], fields: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """The base object with some fields replaced by random JSON (or dropped)."""
    changes = st.dictionaries(st.sampled_from(fields), JSON | st.just(_DROP), max_size=3)
    return changes.map(lambda ch: {k: v for k, v in {**base, **ch}.items() if v is not _DROP})


RAW = (
    st.binary(max_size=80)
    | st.integers(1, 20_000).map(lambda n: b"[" * n + b"]" * n)
    | st.sampled_from([b"NaN", b'{"amount": Infinity}', b"\xff\xfe", b""])
)


def _json_body(value: Any) -> bytes:
    return json.dumps(value).encode()


TRADER_BODIES = (
    _near(ORDER, ORDER_FIELDS).map(_json_body)
    | _near({"amount": "1"}, ["amount", "client_id", "x"]).map(_json_body)
    | JSON.map(_json_body)
    | RAW
)
TRADER_ROUTES = st.sampled_from(
    [("GET", "/v1/markets"), ("GET", "/v1/account"), ("GET", "/v1/positions"),
     ("GET", "/v1/orders"), ("POST", "/v1/orders"), ("POST", "/v1/deposits"),
     ("POST", "/v1/withdrawals"), ("GET", "/admin/accounts"), ("POST", "/admin/probe/order"),
     ("PUT", "/v1/orders"), ("GET", "/v1/nope")]
)  # fmt: skip
ORDER_IDS = st.text(max_size=12) | st.integers(-5, 2**64).map(str)


@st.composite
def trader_requests(draw: st.DrawFn) -> tuple[str, str, dict[str, str], bytes]:
    if draw(st.integers(0, 4)) == 0:
        method, path = "DELETE", "/v1/orders/" + quote(draw(ORDER_IDS), safe="")
    else:
        method, path = draw(TRADER_ROUTES)
    headers: dict[str, str] = {}
    key = draw(st.sampled_from(["valid", "random", "none"]))
    if key != "none":
        headers["X-API-Key"] = "{valid}" if key == "valid" else draw(HEADER_TEXT)
    if draw(st.booleans()):
        headers["Authorization"] = draw(
            st.sampled_from([f"Bearer {TOKEN}", "Bearer x"]) | HEADER_TEXT
        )
    if draw(st.booleans()):
        headers["Content-Type"] = draw(HEADER_TEXT)
    return method, path, headers, draw(TRADER_BODIES)


RPC_METHODS = st.sampled_from(
    ["starknet_blockNumber", "starknet_blockHashAndNumber", "starknet_chainId",
     "starknet_getBlockWithTxs", "starknet_getStateUpdate", "starknet_addInvokeTransaction",
     "starknet_getTransactionReceipt", "starknet_call", "starknet_getEvents"]
) | st.text(max_size=12)  # fmt: skip
TX = {"kind": "withdraw", "account": ACCOUNT, "amount": 1, "client_id": "f"}
RPC_PARAMS = (
    JSON
    | st.fixed_dictionaries({"block_id": JSON | st.sampled_from(["latest", {"block_number": 1}])})
    | st.fixed_dictionaries(
        {
            "filter": _near(
                {"from_seq": 0, "chunk_size": 5},
                ["from_seq", "continuation_token", "kinds", "account", "chunk_size"],
            )
        }
    )
    | st.fixed_dictionaries(
        {
            "request": _near(
                {"entry_point_selector": "balance", "calldata": [ACCOUNT]},
                ["entry_point_selector", "calldata"],
            )
        }
    )
    | st.fixed_dictionaries(
        {"invoke_transaction": _near(TX, ["kind", "account", "amount", "signature", "nonce"])}
    )
    | st.fixed_dictionaries({"transaction_hash": JSON})
)
RPC_CALL = st.fixed_dictionaries(
    {"jsonrpc": st.just("2.0") | JSON, "method": RPC_METHODS},
    optional={"id": JSON, "params": RPC_PARAMS},
)
RPC_BODIES = (
    RPC_CALL.map(_json_body)
    | st.lists(RPC_CALL | JSON, max_size=6).map(_json_body)
    | JSON.map(_json_body)
    | RAW
)


# ------------------------------------------------------------------ the stack


@pytest.fixture(scope="module")
def fuzz_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Perp]:
    """A hardened stack whose escrow is full and whose fuzzed account has no cash."""
    usd = 1_000_000
    genesis = (FAST["accounts"] + 5) * 100_000 * usd + 2 * 10_000_000 * usd
    start = _starter(tmp_path_factory.mktemp("fuzz"))
    with start("hardened", env={"PERPDEX_MAX_ESCROW": str(genesis)}) as p:
        cash = p.balance(ACCOUNT)["cash"]
        r = p.ui("POST", "/v1/withdrawals", ACCOUNT, json={"amount": format_quote(cash)})
        assert r.status_code == 201, r.text
        assert p.balance(ACCOUNT)["cash"] == 0
        # settled: the bridge has seen the withdrawal and released it on L1 ...
        p.wait(
            "the withdrawal's release on L1",
            lambda: any(
                m["direction"] == "l2_to_l1" and m["status"] == "released"
                for m in p.state([])["messages"]
            ),
        )
        # ... and another account's deposit of the same amount fills the escrow again
        r = p.ui("POST", "/v1/deposits", ACCOUNT + 1, json={"amount": format_quote(cash)})
        assert r.status_code == 201, r.text
        p.wait(
            "the escrow full and every deposit credited",
            lambda: (
                (st := p.state([]))["escrow"] == genesis
                and all(m["status"] != "pending" for m in st["messages"])
            ),
        )
        yield p


def _state(p: Perp) -> dict[str, Any]:
    return p.state([ACCOUNT])


def _check_error_shape(r: httpx.Response) -> None:
    assert r.status_code != 500, r.text
    assert r.status_code < 503 or r.status_code == 504, r.text
    if r.status_code >= 400:
        err = r.json()["error"]
        assert isinstance(err["code"], str), err
        assert err["message"], err


@FUZZ
@given(req=trader_requests())
def test_trader_api_never_breaks_and_refusals_change_nothing(
    fuzz_stack: Perp, req: tuple[str, str, dict[str, str], bytes]
) -> None:
    p = fuzz_stack
    method, path, headers, body = req
    if headers.get("X-API-Key") == "{valid}":
        headers["X-API-Key"] = p.keys[ACCOUNT]
    before = _state(p)
    r = p.http.request(method, p.url("ui-api", path), headers=headers, content=body, timeout=BOUND)
    _check_error_shape(r)
    assert _state(p) == before, (method, path, r.status_code, r.text)


@FUZZ
@given(body=RPC_BODIES)
def test_rpc_never_breaks_and_changes_nothing(fuzz_stack: Perp, body: bytes) -> None:
    p = fuzz_stack
    before = _state(p)
    r = p.http.post(p.url("rpc", "/"), content=body, timeout=BOUND)
    assert r.status_code in (200, 400, 413), r.text
    answers = r.json()
    for a in answers if isinstance(answers, list) else [answers]:
        if r.status_code == 413:
            assert a["error"]["code"] == "too_large"
            continue
        assert ("result" in a) != ("error" in a), a
        if "error" in a:
            assert a["error"]["code"] not in (-32603, -32001), a
            assert a["error"]["message"], a
    assert _state(p) == before, (body[:200], r.text[:500])


def test_the_fuzzed_account_moved_nothing(fuzz_stack: Perp) -> None:
    """After the fuzzing: no value-moving event for the account beyond its setup (its
    genesis credit and its withdrawal)."""
    kinds = ["fill", "deposit_credited", "withdrawal", "order_accepted"]
    moved = [e["kind"] for e in fuzz_stack.events(kinds, account=ACCOUNT)]
    assert moved == ["deposit_credited", "withdrawal"]
