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
    # the rule is live from the inject's start until the heal's removal call returns
    healed_ns = heal["t_ns"] + int(heal["took_ms"] * 1e6) + 1_000  # took_ms is rounded to 1 µs
    assert all(inject["t_ns"] <= d["t_ns"] <= healed_ns for d in rows), "outside the window"
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


def test_oracle_zero_price_answer(run_profiles: RunProfiles) -> None:
    """The source's zero is signed and pushed on both profiles; vulnerable liquidates at
    it, hardened rejects it. The coverage's l7_hits is what the proxy logged."""
    for r in run_profiles("oracle-zero-price-answer").values():
        assert r.exit_code == 0, f"[{r.profile}] exit code {r.exit_code}\n{r.output[-6000:]}"
        rows = _hits(r, "zero-price-answer")
        assert {(d["call"]["method"], d["effect"]) for d in rows} == {
            ("feed_getPrices", "corrupted")
        }
        assert {d["details"]["fields_set"] for d in rows} == {3}  # every market
        (window,) = r.result()["coverage"]["windows"]
        assert window["counts"]["l7_hits"] == len(rows) >= 8
        (inject,) = r.faults("zero-price-answer", "inject")
        (heal,) = r.faults("zero-price-answer", "heal")
        zeros = [
            q
            for q in r.jsonl("audit/oracle_reference.jsonl")
            if inject["t_ns"] <= q["host_ts_ns"] <= heal["t_ns"] and q["source_price"] == 0
        ]
        assert zeros, "no zero read from the source"
        assert all(q["model_price"] > 0 for q in zeros)  # the truth stays in the log
        events = list(r.jsonl("audit/events.jsonl"))
        liquidations = [e for e in events if e["kind"] == "liquidation"]
        rejected = [e for e in events if e["kind"] == "price_rejected"]
        if r.profile == "vulnerable":
            assert any(e["data"]["price"] == 0 for e in liquidations)
            assert r.verdict("no_zero_price_liquidations")["status"] == "fail"
        else:
            assert {e["data"]["reason"] for e in rejected} == {"non_positive"}
            assert not liquidations
            assert r.verdict("no_zero_price_liquidations")["status"] == "pass"
