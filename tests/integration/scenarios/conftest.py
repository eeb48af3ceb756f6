"""Runs shipped scenarios end to end through the real command (`l2chaos run`) on the
local backend: real PostgreSQL, Toxiproxy, Locust and the reference stack.

The two profiles of a scenario run side by side (two processes; a run uses about a
quarter of a core), so a replay costs one run's wall time (~50 s) in CI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from l2chaos.backends.paths import cache_dir

ROOT = Path(__file__).resolve().parents[3]
PROFILES = ("vulnerable", "hardened")
RUN_TIMEOUT_S = 300


@dataclass
class Run:
    """One finished `l2chaos run`: its exit code, output and run directory."""

    profile: str
    exit_code: int
    output: str
    run_dir: Path

    def result(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.run_dir / "result.json").read_text())
        return data

    def verdict(self, name: str) -> dict[str, Any]:
        for inv in self.result()["invariants"]:
            if inv["name"] == name:
                return dict(inv)
        raise AssertionError(f"{name} not in {self.run_dir}/result.json")

    def jsonl(self, rel: str) -> Iterator[dict[str, Any]]:
        with open(self.run_dir / rel) as fh:
            for line in fh:
                if line.strip():
                    yield json.loads(line)

    def events(self, *kinds: str) -> list[dict[str, Any]]:
        return [e for e in self.jsonl("audit/events.jsonl") if not kinds or e["kind"] in kinds]

    def window(self, label: str) -> dict[str, Any]:
        for w in self.result()["coverage"]["windows"]:
            if w["label"] == label:
                return dict(w)
        raise AssertionError(f"no fault window {label!r} in {self.run_dir}")

    def faults(self, label: str, action: str) -> list[dict[str, Any]]:
        return [
            f for f in self.jsonl("faults.jsonl") if f["label"] == label and f["action"] == action
        ]

    def run_id(self) -> str:
        return str(json.loads((self.run_dir / "run.json").read_text())["run_id"])


def met(runs: dict[str, Run]) -> tuple[Run, Run]:
    """(vulnerable, hardened), once every run ended with exit code 0 and its
    sometimes-assertions passed."""
    for r in runs.values():
        assert r.exit_code == 0, f"[{r.profile}] exit code {r.exit_code}\n{r.output[-6000:]}"
        assert r.result()["sometimes"]["status"] == "pass", r.result()["sometimes"]
    return runs["vulnerable"], runs["hardened"]


def _start(
    scenario: Path, profile: str, out: Path, args: tuple[str, ...] = ()
) -> subprocess.Popen[str]:
    out.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [
            sys.executable, "-m", "l2chaos.cli", "run", str(scenario),
            "--profile", profile, "--out", str(out), "--no-progress", *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )  # fmt: skip


def _stop(proc: subprocess.Popen[str]) -> None:
    """SIGINT (the run heals and tears down), then SIGKILL if it does not end."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=90)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


@pytest.fixture
def run_profiles(tmp_path: Path) -> Iterator[Callable[..., dict[str, Run]]]:
    """run_profiles(scenario_name) -> {profile: Run}, both profiles side by side (or
    the given ones; `args` go on the command line)."""
    started: list[subprocess.Popen[str]] = []

    def run(
        name: str, profiles: tuple[str, ...] = PROFILES, args: tuple[str, ...] = ()
    ) -> dict[str, Run]:
        scenario = ROOT / "scenarios" / f"{name}.yaml"
        procs = {p: _start(scenario, p, tmp_path / p, args) for p in profiles}
        started.extend(procs.values())
        deadline = time.monotonic() + RUN_TIMEOUT_S
        runs: dict[str, Run] = {}
        for p, proc in procs.items():
            try:
                out, _ = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _stop(proc)
                raise AssertionError(f"{name} [{p}] did not finish in {RUN_TIMEOUT_S} s") from None
            dirs = sorted((tmp_path / p).glob(f"*-{name}-{p}-*"))
            assert len(dirs) == 1, f"{name} [{p}]: one run directory expected\n{out}"
            runs[p] = Run(p, proc.returncode, out, dirs[0])
        for r in runs.values():
            # nothing of the run is left: its marker is removed at teardown
            assert not (cache_dir() / "runs" / f"{r.run_id()}.json").exists(), r.run_dir
        return runs

    yield run
    for proc in started:
        _stop(proc)
