"""Runs scenarios on the real go-ethereum (stack `geth`, built by .ci/setup into
~/.cache/l2chaos/bin) through the runner on the local backend: real geth, Toxiproxy
and Locust. `geth_run(text)` runs a scenario given as YAML and returns its record."""

from __future__ import annotations

import io
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from l2chaos.invariants.check import check_run
from l2chaos.runner import RunOptions, RunResult, run_scenario
from l2chaos.stacks.geth.__main__ import geth_binary


@dataclass
class GethRun:
    result: RunResult
    run_dir: Path

    def verdicts(self) -> dict[str, Any]:
        return {v.name: v for v in check_run(self.run_dir).verdicts}


@pytest.fixture(scope="session", autouse=True)
def _geth_installed() -> None:
    if geth_binary() is None:
        pytest.fail("geth is not installed: run .ci/setup (it builds go-ethereum)")


def run_text(tmp: Path, text: str) -> GethRun:
    path = tmp / "scenario.yaml"
    path.write_text(textwrap.dedent(text))
    stream = io.StringIO()
    res = run_scenario(path, RunOptions(out_dir=tmp / "runs", progress=True, stream=stream))
    assert res.run_dir is not None, stream.getvalue()
    assert res.exit_code in (0, 1), f"{res.error}\n{stream.getvalue()}\n{res.summary}"
    return GethRun(res, res.run_dir)


@pytest.fixture
def geth_run(tmp_path: Path) -> Callable[[str], GethRun]:
    return lambda text: run_text(tmp_path, text)
