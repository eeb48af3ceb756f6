"""EVM load on the real geth: a well-formed history whose writes carry their chain
identity, judged against the chain record the harness read from the node; a scenario
without `load:` starts no Locust at all."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from l2chaos.invariants.check import check_run
from l2chaos.load import check_history

from .conftest import GethRun, run_text

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EVM_LOAD = """\
name: geth-evm-load
stack: {ref: geth}
duration: 15s
load: {protocol: evm, users: 6, sender: {think: [0ms, 200ms]}}
invariants: [acknowledged_writes_durable, chain_consistency]
"""


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> GethRun:
    return run_text(tmp_path_factory.mktemp("evm"), EVM_LOAD)


def test_evm_load_gives_a_well_formed_history_of_identified_writes(loaded: GethRun) -> None:
    assert loaded.result.exit_code == 0, loaded.result.summary
    chk = check_history(loaded.run_dir / "history.jsonl")
    assert chk.ok, chk.problems
    writes = [
        json.loads(line)
        for line in (loaded.run_dir / "history.jsonl").read_text().splitlines()
        if '"write":true' in line and '"type":"ok"' in line
    ]
    assert len(writes) >= 10
    assert {w["op"] for w in writes} == {"transfer", "contract_call"}
    for w in writes:
        res = w["result"]
        assert res["tx_hash"].startswith("0x")
        assert len(res["tx_hash"]) == 66
        assert isinstance(res["block"], int)
        assert res["block_hash"].startswith("0x")
    blocks = (loaded.run_dir / "chain" / "blocks.jsonl").read_text().splitlines()
    in_chain = {tx for line in blocks for tx in json.loads(line)["tx_hashes"]}
    assert {w["result"]["tx_hash"] for w in writes} <= in_chain


def test_durability_holds_when_every_write_is_there_and_fails_when_one_is_gone(
    loaded: GethRun, tmp_path: Path
) -> None:
    v = loaded.verdicts()
    assert v["acknowledged_writes_durable"].status == "pass"
    assert v["acknowledged_writes_durable"].checked["durable"] >= 10
    assert v["chain_consistency"].status == "pass"
    assert v["chain_consistency"].checked["chain_links"] >= 10
    # the same record with one acknowledged transaction removed from the final chain
    copy = tmp_path / "run"
    shutil.copytree(loaded.run_dir, copy)
    path = copy / "chain" / "blocks.jsonl"
    blocks = [json.loads(line) for line in path.read_text().splitlines()]
    acked = {
        json.loads(line)["result"]["tx_hash"]
        for line in (copy / "history.jsonl").read_text().splitlines()
        if '"write":true' in line and '"type":"ok"' in line
    }
    victim = next(b for b in blocks if acked & set(b["tx_hashes"]))
    lost = next(tx for tx in victim["tx_hashes"] if tx in acked)
    victim["tx_hashes"].remove(lost)
    path.write_text("".join(json.dumps(b) + "\n" for b in blocks))
    verdict = {x.name: x for x in check_run(copy).verdicts}["acknowledged_writes_durable"]
    assert verdict.status == "fail"
    ev = verdict.violations[0].evidence
    assert (ev["tx_hash"], ev["block"]) == (lost, victim["number"])


def test_a_scenario_without_load_starts_no_locust(
    geth_run: Callable[[str], GethRun],
) -> None:
    run = geth_run(
        """\
        name: geth-no-load
        stack: {ref: geth}
        duration: 6s
        invariants: [chain_consistency]
        """
    )
    assert run.result.exit_code == 0, run.result.summary
    # Locust's log is opened before Locust starts; the history is merged when it stops
    assert not (run.run_dir / "load" / "locust.log").exists()
    assert not (run.run_dir / "history.jsonl").exists()
    assert not list((run.run_dir / "history").glob("worker-*.jsonl"))
    assert "the load needs" not in run.result.summary
