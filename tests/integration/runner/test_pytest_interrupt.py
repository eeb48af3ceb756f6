"""Ctrl-C during `pytest scenarios/` stops the running scenario (its teardown
completes) and the session: the next scenario never starts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from l2chaos.backends.procs import pids_of_run

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SCENARIO = """\
name: {name}
stack: {{ref: perpdex, settings: {{accounts: 20}}}}
duration: 60s
invariants: [chain_consistency]
"""


def running(out: Path) -> bool:
    for run_json in out.glob("*first*/run.json"):
        probes = run_json.parent / "probes.jsonl"
        if '"phase": "running"' in run_json.read_text() and probes.exists():
            return probes.read_text().count("\n") >= 2
    return False


def test_ctrl_c_stops_the_session(tmp_path: Path) -> None:
    (tmp_path / "scenarios").mkdir()
    for name in ("first", "second"):
        (tmp_path / "scenarios" / f"{name}.yaml").write_text(SCENARIO.format(name=name))
    out = tmp_path / "runs"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "scenarios",
            "-p",
            "no:cacheprovider",
            "-q",
            "-o",
            "l2chaos_scenarios=scenarios/*.yaml",  # the project opts its scenarios in
            "--l2chaos-out",
            str(out),
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTEST_ADDOPTS": ""},
    )
    try:
        deadline = time.monotonic() + 120
        while not running(out):  # the first scenario's probes are sampling
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "the first scenario never got under way"
            time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 2, output  # pytest's "interrupted"
    assert "KeyboardInterrupt" in output or "Interrupted" in output
    assert [p.name for p in out.iterdir() if "second" in p.name] == []  # never started
    (first,) = [p for p in out.iterdir() if "first" in p.name]
    assert pids_of_run(first.name) == []
