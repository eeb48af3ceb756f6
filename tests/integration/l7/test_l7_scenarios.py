"""The shipped `l7` scenario end to end on both profiles (real stack, load, L7 proxy,
checkers): each message-level fault hit exactly the calls it names, only inside its
window, and the unknown outcomes it caused are in the chain or absent, never lost."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.integration.scenarios.conftest import met

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RunProfiles = Callable[..., dict[str, Any]]


def _hits(run: Any, label: str) -> list[dict[str, Any]]:
    """The fault's decisions, checked against its window and its heal record's counts."""
    (inject,) = run.faults(label, "inject")
    (heal,) = run.faults(label, "heal")
    rule = inject["details"]["rule"]
    rows = [d for d in run.jsonl("l7.jsonl") if d.get("rule") == rule]
    assert rows, f"{label}: no decision"
    assert all(inject["t_ns"] <= d["t_ns"] <= heal["t_ns"] for d in rows), "outside the window"
    assert heal["details"]["matched"] == len(rows)
    assert heal["details"]["hit"] == sum(d["hit"] for d in rows)
    return rows


def test_order_answer_lost(run_profiles: RunProfiles) -> None:
    for r in met(run_profiles("order-answer-lost")):
        for inv in r.result()["invariants"]:
            assert inv["status"] == "pass", (inv["name"], inv["violations"][:3])
        for label, effect in (("answers-dropped", "drop"), ("answers-cut", "cut")):
            rows = _hits(r, label)
            assert {d["call"]["method"] for d in rows} == {"starknet_addInvokeTransaction"}
            assert {d["effect"] for d in rows} == {effect, "pass"}
        # The traders saw unknown outcomes; the writes behind them are in the chain
        # (the node committed them before the answer was dropped) or absent, never
        # counted as acknowledged.
        invokes = {h["op_id"]: h for h in r.jsonl("history.jsonl") if h["type"] == "invoke"}
        unknown = [
            invokes[h["op_id"]]["args"]["client_id"]
            for h in r.jsonl("history.jsonl")
            if h["type"] == "info" and h["op"] == "place_order" and not h.get("synthetic")
        ]
        assert len(unknown) >= 3
        chain = {t["client_id"]: t["status"] for t in r.jsonl("audit/transactions.jsonl")}
        found = [c for c in unknown if c in chain]
        assert found, "no unknown write was found in the chain"
        assert {chain[c] for c in found} <= {"accepted", "rejected"}
        durable = r.verdict("acknowledged_writes_durable")
        assert durable["status"] == "pass"
        assert durable["checked"]["durable"] >= 100
