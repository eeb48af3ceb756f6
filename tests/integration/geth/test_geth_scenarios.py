"""Shipped geth scenarios end to end: their expectations are what geth does."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from l2chaos.invariants.base import Verdict
from l2chaos.invariants.check import check_run
from l2chaos.runner import RunOptions, run_scenario

from tests._support.json_path import at, num, text

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]


def run(name: str, tmp: Path) -> tuple[int, dict[str, Verdict], str]:
    stream = io.StringIO()
    res = run_scenario(
        ROOT / "scenarios" / f"{name}.yaml",
        RunOptions(out_dir=tmp, progress=True, stream=stream),
    )
    assert res.run_dir is not None, stream.getvalue()
    verdicts = {v.name: v for v in check_run(res.run_dir).verdicts}
    return res.exit_code, verdicts, res.summary + stream.getvalue()


def test_sigkill_loses_acknowledged_transactions(tmp_path: Path) -> None:
    code, v, out = run("geth-sigkill-restart", tmp_path)
    assert code == 0, out  # the expectation: the three invariants violated
    lost = v["acknowledged_writes_durable"].violations[0].evidence
    assert text(lost["tx_hash"]).startswith("0x")
    assert isinstance(lost["block"], int)
    assert num(at(lost, "step_back", "to", "number")) < num(lost["block"])


def test_a_declared_sethead_rollback_holds(tmp_path: Path) -> None:
    code, v, out = run("geth-rollback-sethead", tmp_path)
    assert code == 0, out
    assert v["acknowledged_writes_durable"].checked["durable"] > 0
    assert v["chain_consistency"].checked["reorgs"] >= 1


def test_a_lost_send_answer_is_unknown_and_mined(tmp_path: Path) -> None:
    """The L7 proxy on `clients -> geth` drops the answers of a third of the sends: the
    senders record them as `info` with the hash they signed, and geth mined them."""
    code, v, out = run("geth-tx-answer-lost", tmp_path)
    assert code == 0, out
    run_dir = next(tmp_path.glob("*-geth-tx-answer-lost-*"))
    dropped = [
        d
        for d in map(json.loads, (run_dir / "l7.jsonl").read_text().splitlines())
        if d["call"]["method"] == "eth_sendRawTransaction" and d["hit"]
    ]
    ops = [json.loads(x) for x in (run_dir / "history.jsonl").read_text().splitlines()]
    unknown = {o["result"]["tx_hash"] for o in ops if o["type"] == "info" and o.get("write")}
    assert len(unknown) >= 3, out
    assert len(dropped) >= len(unknown)
    mined = {
        h
        for b in map(json.loads, (run_dir / "chain" / "blocks.jsonl").read_text().splitlines())
        for h in b["tx_hashes"]
    }
    assert unknown <= mined, sorted(unknown - mined)[:3]
    assert v["acknowledged_writes_durable"].checked["lost"] == 0
