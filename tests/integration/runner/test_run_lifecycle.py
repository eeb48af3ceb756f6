"""A whole `l2chaos run` on the local backend, interrupted: nothing may be left behind.

SIGINT mid-run, or during the wind-down → the run heals, stops load and stack, and
exits 130 with no child process, listening port or Toxiproxy proxy left; run.json and
result.json say 130 too. SIGKILL mid-run → leftovers exist (nothing could clean up),
`l2chaos gc` removes all of them, and `l2chaos check` gives the partial record no
verdict (exit 3).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from l2chaos.backends.paths import cache_dir
from l2chaos.backends.procs import pids_of_run

from tests._support.cli import l2chaos

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]
FLAGSHIP = ROOT / "scenarios" / "paradex-2026-01-19-db-restart-race.yaml"


def start_run(out: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable, "-m", "l2chaos.cli", "run", str(FLAGSHIP),
            "--out", str(out), "--no-progress", "--set", "load.users=4", "--set", "load.spawn_rate=4",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
    )  # fmt: skip


def under_way(run_dir: Path) -> bool:
    """Probes have sampled and the load has flushed operations (not only started)."""
    probes = run_dir / "probes.jsonl"
    samples = probes.read_text().count("\n") if probes.exists() else 0
    flushed = any(p.stat().st_size > 0 for p in run_dir.glob("history/worker-*.jsonl"))
    return samples >= 2 and flushed


def wait_running(
    out: Path, proc: subprocess.Popen[str], timeout_s: float = 180
) -> tuple[str, Path]:
    """Wait until the run's load and probes are under way; return its run id and dir."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        for run_json in out.glob("*/run.json"):
            with contextlib.suppress(ValueError):  # caught mid-write
                data = json.loads(run_json.read_text())
                if data.get("phase") == "running" and under_way(run_json.parent):
                    return data["run_id"], run_json.parent
        time.sleep(0.3)
    raise AssertionError("the run never got under way")


def marker(run_id: str) -> dict[str, object] | None:
    path = cache_dir() / "runs" / f"{run_id}.json"
    return json.loads(path.read_text()) if path.exists() else None


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def ports_of(m: dict[str, object]) -> list[int]:
    ports = m.get("ports")
    assert isinstance(ports, list)
    return [int(p) for p in ports]


def test_sigint_mid_run_leaves_nothing(tmp_path: Path) -> None:
    proc = start_run(tmp_path)
    try:
        run_id, run_dir = wait_running(tmp_path, proc)
        m = marker(run_id)
        assert m is not None, "a live run has a marker"
        ports = ports_of(m)
        assert ports, m
        assert pids_of_run(run_id), "the run has child processes while running"
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert_interrupted_cleanly(proc, out, run_id, ports, run_dir, "interrupted by SIGINT")
    assert (run_dir / "logs" / "sequencer.log").stat().st_size > 0  # logs kept


def assert_interrupted_cleanly(
    proc: subprocess.Popen[str], out: str, run_id: str, ports: list[int], run_dir: Path, said: str
) -> None:
    """Exit 130, nothing left behind, and the record agrees (run.json, result.json)."""
    assert proc.returncode == 130, out
    assert said in out
    assert pids_of_run(run_id) == []
    assert marker(run_id) is None
    assert [p for p in ports if listening(p)] == []
    run = json.loads((run_dir / "run.json").read_text())
    assert (run["phase"], run["exit_code"]) == ("aborted", 130)
    result = json.loads((run_dir / "result.json").read_text())  # CI still gets reports
    assert result["exit_code"] == 130  # the same as the run's
    assert said in (run_dir / "junit.xml").read_text()


def wait_phase(out: Path, proc: subprocess.Popen[str], phase: str, timeout_s: float) -> Path:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        for run_json in out.glob("*/run.json"):
            with contextlib.suppress(ValueError):  # caught mid-write
                if json.loads(run_json.read_text()).get("phase") == phase:
                    return run_json.parent
        time.sleep(0.05)
    raise AssertionError(f"the run never reached the {phase!r} phase")


def test_sigint_during_the_wind_down_is_130_and_the_teardown_completes(tmp_path: Path) -> None:
    proc = start_run(tmp_path, "--time-scale", "0.25")  # 15 s, then the wind-down
    try:
        run_id, _ = wait_running(tmp_path, proc)
        m = marker(run_id)
        assert m is not None
        ports = ports_of(m)
        run_dir = wait_phase(tmp_path, proc, "winding down", 120)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    said = "interrupted by SIGINT during the wind-down; the teardown completed"
    assert_interrupted_cleanly(proc, out, run_id, ports, run_dir, said)


def test_gc_cleans_a_run_killed_with_sigkill(tmp_path: Path) -> None:
    proc = start_run(tmp_path)
    try:
        run_id, run_dir = wait_running(tmp_path, proc)
        m = marker(run_id)
        assert m is not None
        ports = ports_of(m)
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)  # reaps it and closes its pipe
        assert pids_of_run(run_id), "SIGKILL leaves the run's processes behind"
        done = l2chaos("gc")
    finally:
        if proc.poll() is None:
            proc.kill()
        l2chaos("gc")
    assert done.returncode == 0, done.stderr
    assert run_id in done.stdout
    assert pids_of_run(run_id) == []
    assert marker(run_id) is None
    assert [p for p in ports if listening(p)] == []
    checked = l2chaos("check", str(run_dir), timeout=300)
    assert checked.returncode == 3, checked.stdout + checked.stderr  # no verdict
    assert "the run is incomplete (run.json says phase 'running'" in checked.stdout
