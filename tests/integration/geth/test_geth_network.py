"""A network fault on the link between the harness's clients and geth changes what the
load sees: through the stack's `clients -> geth` link, a black hole makes calls time
out (info) while it lasts, and calls succeed again after the heal."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from .conftest import GethRun

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_a_black_hole_on_the_clients_link_times_the_load_out(
    geth_run: Callable[[str], GethRun],
) -> None:
    run = geth_run(
        """\
        name: geth-clients-blackhole
        stack: {ref: geth}
        duration: 24s
        load: {protocol: evm, users: 4, request_timeout: 2s, personas: {reader: 1}}
        timeline:
          - {name: hole, at: 8s, for: 6s, fault: network.timeout, target: clients->geth, with: {timeout: 0s}}
        invariants: [chain_consistency]
        """
    )
    faults = [json.loads(x) for x in (run.run_dir / "faults.jsonl").read_text().splitlines()]
    start = next(f["t_ns"] for f in faults if f["action"] == "inject")
    end = next(f["t_ns"] for f in faults if f["action"] == "heal")
    done = [
        json.loads(x)
        for x in (run.run_dir / "history.jsonl").read_text().splitlines()
        if '"type":"invoke"' not in x
    ]
    inside = [
        d
        for d in done
        if start + 500_000_000 < d["t_ns"] - d["latency_ms"] * 1e6 < end - 2_500_000_000
    ]
    assert inside
    assert all(d["type"] == "info" for d in inside), [d["error"] for d in inside]
    assert any(d["type"] == "ok" for d in done if d["t_ns"] > end + 2_000_000_000)
