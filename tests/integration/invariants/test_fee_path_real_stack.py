"""fund_conservation on a real run of the reference stack (real Postgres, Toxiproxy,
sequencer, rpc, bridge, ui-api, oracle on the local backend): with the test-only switch
PERPDEX_TEST_BREAK_FEE_PATH=1 the sequencer charges traders a fee and credits it
nowhere; the checker, reading only the audit export, catches it with the block and the
amounts. Without the switch the same trades conserve funds exactly."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from l2chaos.accounts import read_accounts
from l2chaos.backends.local import LocalBackend
from l2chaos.invariants.check import check_run
from l2chaos.stacks.perpdex import STACK_FILE
from l2chaos.stackspec import StackRun, load_stack

from tests._support.audit import export_audit
from tests._support.json_path import num

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOKEN = "fee-path-token"
SETTINGS = {"accounts": 10, "oracle_interval": 250_000_000, "finality_blocks": 20}
MARKET = "ETH-USD-PERP"


class Stack:
    def __init__(self, stack: Any, run_dir: Path) -> None:
        self.stack = stack
        self.run_dir = run_dir
        self.http = httpx.Client(timeout=30, trust_env=False)
        accounts = read_accounts(stack, TOKEN)
        self.keys = {a["account"]: a["api_key"] for a in accounts}

    def ui(self, method: str, path: str, account: int, **kw: Any) -> httpx.Response:
        return self.http.request(
            method,
            self.stack.direct_url("ui-api", path),
            headers={"X-API-Key": self.keys[account]},
            **kw,
        )

    def index(self) -> Decimal:
        data = self.ui("GET", "/v1/markets", 1).json()
        return Decimal(next(m for m in data["markets"] if m["market"] == MARKET)["index_price"])

    def trade(self, maker: int, taker: int, size: str) -> None:
        """A resting sell from `maker`, taken by a market buy from `taker`: one fill."""
        deadline = time.monotonic() + 60
        while True:
            px = self.index()
            r = self.ui(
                "POST",
                "/v1/orders",
                maker,
                json={
                    "market": MARKET,
                    "side": "sell",
                    "type": "limit",
                    "size": size,
                    "price": str(px),
                },
            )
            if r.status_code == 201:
                break
            assert time.monotonic() < deadline, f"trading never opened: {r.status_code} {r.text}"
            time.sleep(0.3)
        r = self.ui(
            "POST",
            "/v1/orders",
            taker,
            json={"market": MARKET, "side": "buy", "type": "market", "size": size},
        )
        assert r.status_code == 201, r.text
        assert r.json()["order_status"] == "filled", r.text

    def audit(self) -> None:
        export_audit(self.stack, self.run_dir / "audit", TOKEN)
        invariants = [
            {"name": "fund_conservation", "params": {}},
            {"name": "chain_consistency", "params": {}},
        ]
        # what a run's wind-down leaves: without it the record is incomplete (no verdict)
        (self.run_dir / "run.json").write_text(
            json.dumps(
                {
                    "run_id": self.run_dir.name,
                    "scenario": "fee-path",
                    "profile": "hardened",
                    "backend": "local",
                    "seed": 11,
                    "phase": "finished",
                    "problems": [],
                }
            )
        )
        (self.run_dir / "scenario.resolved.json").write_text(
            json.dumps(
                {
                    "name": "fee-path",
                    "profile": "hardened",
                    "invariants": invariants,
                    "expect": {"hardened": {"all_hold": True}},
                }
            )
        )


def run_stack(tmp_path: Path, *, broken: bool) -> Iterator[Stack]:
    spec = load_stack(STACK_FILE)
    run = StackRun(spec, "hardened", dict(spec.profiles["hardened"]), dict(SETTINGS), seed=11)
    run_dir = tmp_path / ("broken" if broken else "intact")
    run_dir.mkdir()
    env = {"L2CHAOS_ADMIN_TOKEN": TOKEN}
    if broken:
        env["PERPDEX_TEST_BREAK_FEE_PATH"] = "1"
    stack = LocalBackend(stop_timeout_s=5).up(
        run, run_id=f"feepath-{os.getpid()}-{int(broken)}", run_dir=run_dir, env=env
    )
    s = None
    try:
        s = Stack(stack, run_dir)
        yield s
    finally:
        if s is not None:
            s.http.close()
        stack.down()


def test_broken_fee_path_is_caught_from_the_audit_export(tmp_path: Path) -> None:
    for s in run_stack(tmp_path, broken=True):
        s.trade(maker=5, taker=1, size="0.5")
        s.trade(maker=6, taker=2, size="0.25")
        s.audit()
    out = check_run(tmp_path / "broken")
    fc = next(v for v in out.verdicts if v.name == "fund_conservation")
    assert fc.status == "fail"
    lost = [x for x in fc.violations if "but the fees account was credited 0" in x.message]
    assert len(lost) == 2, [x.message for x in fc.violations]
    ev = lost[0].evidence
    assert ev["kind"] == "fill"
    assert ev["account"] == -1
    assert num(ev["expected"]) > 0
    assert ev["seen"] == 0
    assert isinstance(ev["block"], int)
    assert ev["tx"]
    identity = [x for x in fc.violations if "changed" in x.message and x.evidence["kind"] == "fill"]
    assert len(identity) == 2
    assert identity[0].evidence["difference"] == -num(ev["expected"]) * 1_000_000
    assert out.exit_code == 1


def test_intact_fee_path_conserves_funds(tmp_path: Path) -> None:
    for s in run_stack(tmp_path, broken=False):
        s.trade(maker=5, taker=1, size="0.5")
        s.audit()
    out = check_run(tmp_path / "intact")
    by = {v.name: v for v in out.verdicts}
    assert by["fund_conservation"].status == "pass", [
        x.message for x in by["fund_conservation"].violations
    ]
    assert by["fund_conservation"].checked["fee_checks"] >= 1
    assert by["fund_conservation"].checked["snapshots"] > 0
    assert (
        by["fund_conservation"].checked["bridge_credits"] >= 10
    )  # genesis funding through the bridge
    assert by["chain_consistency"].status == "pass", [
        x.message for x in by["chain_consistency"].violations
    ]
    assert out.exit_code == 0
