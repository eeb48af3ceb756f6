"""The opaque-hash chain check on the real geth: the head stepping back through
debug_setHead is a violation unless the scenario declared the rollback."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from .conftest import GethRun

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_an_undeclared_step_back_of_the_head_fails(geth_run: Callable[[str], GethRun]) -> None:
    # http.call is not a rollback: it moves geth's head back behind the harness's back
    run = geth_run(
        """\
        name: geth-undeclared-sethead
        stack: {ref: geth}
        duration: 14s
        timeline:
          - at: 8s
            fault: http.call
            target: geth
            with: {path: /, auth: false, body: {jsonrpc: "2.0", id: 1, method: debug_setHead, params: ["0x2"]}}
        invariants: [chain_consistency]
        """
    )
    v = run.verdicts()["chain_consistency"]
    assert v.status == "fail"
    assert any("without a declared rollback" in x.message for x in v.violations)
    step = next(x.evidence for x in v.violations if "stepped back" in x.message)
    assert step["to"]["number"] <= 3 < step["from"]["number"]


def test_a_declared_rollback_is_not_a_violation(geth_run: Callable[[str], GethRun]) -> None:
    run = geth_run(
        """\
        name: geth-declared-rollback
        stack: {ref: geth}
        duration: 14s
        load: {protocol: evm, users: 3}
        timeline:
          - {at: 8s, fault: chain.rollback, with: {blocks_back: 3}}
        invariants: [chain_consistency, acknowledged_writes_durable]
        """
    )
    v = run.verdicts()
    assert v["chain_consistency"].status == "pass", v["chain_consistency"].violations
    assert v["chain_consistency"].checked["reorgs"] >= 1
    assert v["acknowledged_writes_durable"].status == "pass", v["acknowledged_writes_durable"]
