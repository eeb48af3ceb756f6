"""The starknet protocol against the reference stack's rpc (it speaks starknet_*): a
well-formed history of reads, and a JSON-RPC error inside an HTTP 200 (the reference
rpc has no starknet_getBlockWithTxHashes: -32601) is a `fail` in the history and a
failure in Locust's statistics."""

from __future__ import annotations

import csv
import json
import time
from typing import Any

import pytest
from l2chaos.load import LoadRunner, check_history, parse_load
from l2chaos.params import Where

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_starknet_readers_on_the_reference_rpc(perp: Any) -> None:
    section = {
        "protocol": "starknet",
        "users": 3,
        "reader": {"think": ["50ms", "150ms"], "mix": {"block_number": 1, "get_block": 3}},
    }
    plan = parse_load(section, Where("test", "load"), 7)
    run_dir = perp.run_root / "starknet"
    run_dir.mkdir()
    runner = LoadRunner(plan, endpoints=perp.endpoints, accounts=[], seed=7, run_dir=run_dir,
                        duration_s=6, t0_ns=time.time_ns())  # fmt: skip
    with runner:
        runner.wait(timeout=60)
    chk = check_history(run_dir / "history.jsonl")
    assert chk.ok, chk.problems
    assert chk.by_op["rpc_block_number"]["ok"] > 0
    blocks = chk.by_op["rpc_get_block"]
    assert blocks["ok"] > 0  # after the fallback to starknet_getBlockWithTxs
    recs = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    refused = [r for r in recs if r["type"] == "fail" and r["op"] == "rpc_get_block"]
    assert refused
    assert all("JSON-RPC -32601" in r["error"] for r in refused)
    with open(run_dir / "load" / "stats_failures.csv", newline="") as f:
        failures = {row["Name"]: int(row["Occurrences"]) for row in csv.DictReader(f)}
    assert failures.get("starknet_getBlockWithTxHashes", 0) == len(refused)
