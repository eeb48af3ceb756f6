"""The perpdex stack on the local backend (real Postgres, real Toxiproxy), with
clients for its APIs, its hooks and its audit export.

`perpdex(profile, switches=..., settings=..., env=...)` is a context manager that brings
a fresh stack up and always tears it down."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from l2chaos.accounts import read_accounts
from l2chaos.backends.local import LocalBackend, LocalStack
from l2chaos.stacks.perpdex import STACK_FILE
from l2chaos.stacks.perpdex.common.keys import KeyRing
from l2chaos.stacks.perpdex.common.signing import sign
from l2chaos.stackspec import StackRun, load_stack

from tests._support.audit import export_audit

TOKEN = "integration-token"
SEED = 1604710
FAST = {
    "accounts": 20,
    "oracle_interval": 250_000_000,
    "stage_cancel_only": 1_000_000_000,
    "stage_post_only": 1_000_000_000,
    "finality_blocks": 20,
}


class Perp:
    """A running perpdex stack and thin clients for what the tests need."""

    def __init__(self, stack: LocalStack, run_dir: Path) -> None:
        self.stack = stack
        self.run_dir = run_dir
        self.http = httpx.Client(timeout=30)
        self.token = TOKEN
        self.admin = {"Authorization": f"Bearer {TOKEN}"}
        accounts = read_accounts(stack, TOKEN)
        self.keys = {a["account"]: a["api_key"] for a in accounts}
        self.roles = {a["account"]: a["role"] for a in accounts}
        self._rid = 0
        self._faults = 0
        self._last_mark = 0

    def close(self) -> None:
        self.http.close()

    def url(self, service: str, path: str = "") -> str:
        return self.stack.direct_url(service, path)

    # trader API
    def ui(self, method: str, path: str, account: int | None = None, **kw: Any) -> httpx.Response:
        headers = dict(kw.pop("headers", {}))
        if account is not None:
            headers["X-API-Key"] = self.keys[account]
        return self.http.request(method, self.url("ui-api", path), headers=headers, **kw)

    def order(self, account: int, **body: Any) -> httpx.Response:
        return self.ui("POST", "/v1/orders", account, json=body)

    def markets(self) -> dict[str, Any]:
        data = self.ui("GET", "/v1/markets", 1).json()
        return {m["market"]: m for m in data["markets"]} | {"_mode": data["mode"]}

    def account(self, account: int) -> dict[str, Any]:
        answer: dict[str, Any] = self.ui("GET", "/v1/account", account).json()
        return answer

    def signed(self, signer: str, tx: dict[str, Any]) -> dict[str, Any]:
        """The transaction signed as `signer` ("account:N", "bridge", "oracle") would."""
        return sign(KeyRing(SEED, TOKEN).signing_key(signer), tx)

    # JSON-RPC
    def rpc(self, method: str, params: Any = None) -> Any:
        self._rid += 1
        body = {"jsonrpc": "2.0", "id": self._rid, "method": method, "params": params or {}}
        answer = self.http.post(self.url("rpc", "/"), json=body).json()
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer["result"]

    def balance(self, account: int) -> dict[str, Any]:
        answer: dict[str, Any] = self.rpc(
            "starknet_call", {"request": {"entry_point_selector": "balance", "calldata": [account]}}
        )
        return answer

    def events(
        self, kinds: list[str] | None = None, account: int | None = None, after: int = 0
    ) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        token: str | None = str(after)
        while token is not None:
            f: dict[str, Any] = {"continuation_token": token, "chunk_size": 1000}
            if kinds:
                f["kinds"] = kinds
            if account is not None:
                f["account"] = account
            page = self.rpc("starknet_getEvents", {"filter": f})
            out += page["events"]
            token = page["continuation_token"]
        return out

    def event_mark(self) -> int:
        """The seq of the last event so far: `account_events_since` starts after it."""
        events = self.events(after=self._last_mark)
        self._last_mark = events[-1]["seq"] if events else self._last_mark
        return self._last_mark

    def state(self, accounts: list[int]) -> dict[str, Any]:
        """What a rejected request must not change: the accounts' balances (cash,
        positions, open orders), the bridge's escrow and L1 messages."""
        bridge = self.http.get(self.url("bridge", "/state")).json()
        return {
            "balances": {a: self.balance(a) for a in accounts},
            "escrow": bridge["escrow_balance"],
            "messages": bridge["messages"],
        }

    def account_events_since(self, mark: int, accounts: list[int]) -> list[dict[str, Any]]:
        """The accounts' events (orders, fills, deposits, withdrawals) after `mark`."""
        return [e for a in accounts for e in self.events(account=a, after=mark)]

    def head(self) -> dict[str, Any]:
        answer: dict[str, Any] = self.http.get(self.url("sequencer", "/state/head")).json()
        return answer

    def hook(self, service: str, path: str, body: dict[str, Any]) -> httpx.Response:
        return self.http.post(self.url(service, path), headers=self.admin, json=body)

    def wait(
        self, what: str, fn: Callable[[], Any], timeout: float = 30.0, every: float = 0.2
    ) -> Any:
        """Poll until fn() is truthy; fail naming `what` after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = fn()
            except (httpx.HTTPError, RuntimeError, KeyError) as exc:
                last = exc
            if last and not isinstance(last, Exception):
                return last
            time.sleep(every)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")

    def wait_trading(self, account: int = 1, timeout: float = 30.0) -> None:
        """Until full trading is back: a plain limit bid 3% under the index is accepted
        (cancel_only and post_only modes, or a closed readiness gate, reject it)."""

        def attempt() -> bool:
            m = self.markets()["ETH-USD-PERP"]
            px = f"{float(m['index_price']) * 0.97:.1f}"
            r = self.order(
                account, market="ETH-USD-PERP", side="buy", type="limit", size="0.01", price=px
            )
            if r.status_code == 201:
                self.ui("DELETE", f"/v1/orders/{r.json()['order_id']}", account)
                return True
            return False

        self.wait("trading to be open", attempt, timeout=timeout, every=0.3)

    def open_longs(self, leverage: int = 10) -> dict[str, tuple[int, int, int]]:
        """A leveraged long per market: market -> (long account, short account, size quanta).

        Longs are accounts 1, 2, 3 (BTC, ETH, PAXG), shorts 5, 6, 7; each long holds
        about `leverage` x its $100,000 (PAXG at most 8x: its IMF is 10%)."""
        out = {}
        markets = self.markets()
        for i, name in enumerate(("BTC-USD-PERP", "ETH-USD-PERP", "PAXG-USD-PERP")):
            lev = min(leverage, 8) if name.startswith("PAXG") else leverage
            index = Decimal(markets[name]["index_price"])
            step = Decimal(markets[name]["size_step"])
            size = (Decimal(100_000 * lev) / index).quantize(step)
            long, short = 1 + i, 5 + i
            r = self.order(
                short, market=name, side="sell", type="limit", size=str(size), price=str(index)
            )
            assert r.status_code == 201, r.text
            r = self.order(long, market=name, side="buy", type="market", size=str(size))
            assert r.status_code == 201, r.text
            assert r.json()["order_status"] == "filled", r.text
            out[name] = (long, short, int(size / step))
        return out

    def seq_markets(self) -> dict[str, Any]:
        data = self.http.get(self.url("sequencer", "/state/markets")).json()
        return {m["market"]: m for m in data["markets"]}

    def rollback(self, body: dict[str, Any]) -> httpx.Response:
        """The rollback hook, recorded in faults.jsonl as the harness's timeline would
        (a declared `chain.rollback`), so the checkers know it was intended."""
        t = time.time_ns()
        r = self.hook("sequencer", "/admin/chaos/rollback", body)
        answer = r.json()
        record = {
            "fault_id": self._faults,
            "name": "chain.rollback",
            "target": "",
            "action": "inject",
            "params": body,
            "t_ns": t,
            "mono_ns": time.monotonic_ns(),
            "ok": r.status_code == 200,
            "error": None if r.status_code == 200 else r.text,
            "details": {"hook": "rollback", "body": body, "answer": answer},
        }
        self._faults += 1
        with (self.run_dir / "faults.jsonl").open("a") as fh:
            fh.write(json.dumps(record) + "\n")
        return r

    def restart_db(self) -> None:
        """Stop the database until the sequencer has seen it gone (a block commit failed
        and is being retried: its head says `stalled`), then start it again."""
        self.stack.control.stop("db")
        self.wait("the sequencer to stall on the database", lambda: self.head()["stalled"])
        self.stack.control.start("db")

    def blocks_pass(self, n: int) -> None:
        """Until `n` more blocks are committed: time passed, in the chain's own terms."""
        target = self.head()["number"] + n
        self.wait(f"{n} more blocks", lambda: self.head()["number"] >= target)

    def audit(self) -> Path:
        return export_audit(self.stack, self.run_dir / "audit", TOKEN)

    def check(self, *names: str) -> dict[str, Any]:
        """Run the harness's checkers on the audit export (they never see the stack)."""
        from l2chaos.invariants.record import RunRecord
        from l2chaos.params import Where, bind
        from l2chaos.registry import checkers

        found = checkers()
        out = {}
        for name in names:
            cls = found[name]
            verdict = cls(bind(cls.params_model(), {}, Where(None, name))).check(
                RunRecord(self.run_dir)
            )
            out[name] = verdict
        return out


def _starter(root: Path) -> Callable[..., contextlib.AbstractContextManager[Perp]]:
    spec = load_stack(STACK_FILE)
    count = 0

    @contextlib.contextmanager
    def start(
        profile: str = "hardened",
        switches: dict[str, bool] | None = None,
        settings: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
    ) -> Iterator[Perp]:
        nonlocal count
        count += 1
        sw = {**spec.profiles[profile], **(switches or {})}
        run = StackRun(spec, profile, sw, {**FAST, **(settings or {})}, seed=SEED)
        run_dir = root / f"run{count}"
        run_dir.mkdir()
        stack = LocalBackend(stop_timeout_s=5).up(
            run, run_id=f"perpdex-it-{os.getpid()}-{root.name}-{count}", run_dir=run_dir,
            env={"L2CHAOS_ADMIN_TOKEN": TOKEN, **(env or {})},
        )  # fmt: skip
        perp = None
        try:
            perp = Perp(stack, run_dir)
            yield perp
        finally:
            if perp is not None:
                perp.close()
            stack.down()

    return start


@pytest.fixture
def perpdex(tmp_path: Path) -> Callable[..., contextlib.AbstractContextManager[Perp]]:
    return _starter(tmp_path)


@pytest.fixture(scope="module")
def hardened_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Perp]:
    """One hardened stack shared by a module's tests (they must leave it as they found it)."""
    with _starter(tmp_path_factory.mktemp("shared"))("hardened") as p:
        yield p
