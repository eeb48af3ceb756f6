"""GroupProcess: a child in its own process group, signalled as a group."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from l2chaos.backends.procs import GroupProcess, pids_of_run, process_state

RUN = "group-process-unit"


def _proc(tmp_path: Path, script: str, **kw: object) -> GroupProcess:
    return GroupProcess(
        name="t",
        argv=["bash", "-c", script],
        env={**os.environ, "L2CHAOS_RUN_ID": f"{RUN}-{tmp_path.name}"},
        cwd=tmp_path,
        log_path=tmp_path / "logs" / "t.log",
        **kw,  # type: ignore[arg-type]
    )


def _started(tmp_path: Path) -> None:
    """Until the script says its traps are set (it echoes `ready` after them)."""
    log = tmp_path / "logs" / "t.log"
    deadline = time.monotonic() + 30
    while not (log.exists() and "ready" in log.read_text()):
        assert time.monotonic() < deadline, "the script never started"
        time.sleep(0.02)


def _members(p: GroupProcess) -> list[int]:
    return pids_of_run(p.env["L2CHAOS_RUN_ID"])


def test_start_logs_and_leads_its_own_group(tmp_path: Path) -> None:
    p = _proc(tmp_path, "echo hello; echo oops >&2; sleep 30")
    pid = p.start()
    try:
        assert os.getpgid(pid) == pid
        assert os.getsid(pid) == pid
        deadline = time.monotonic() + 5
        while "oops" not in (tmp_path / "logs" / "t.log").read_text():
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert (tmp_path / "logs" / "t.log").read_text() == "hello\noops\n"
    finally:
        p.kill()
    assert not p.is_running()
    assert p.returncode == -signal.SIGKILL


def test_kill_takes_the_whole_group(tmp_path: Path) -> None:
    p = _proc(tmp_path, "sleep 30 & sleep 30 & wait")
    p.start()
    deadline = time.monotonic() + 5
    while len(_members(p)) < 3:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    p.kill()
    assert _members(p) == []


def test_stop_escalates_to_sigkill(tmp_path: Path) -> None:
    p = _proc(tmp_path, "trap '' TERM; echo ready; while true; do sleep 0.05; done")
    p.start()
    _started(tmp_path)
    t0 = time.monotonic()
    rc = p.stop(timeout_s=0.5)
    assert time.monotonic() - t0 >= 0.5  # SIGTERM was given its time first
    assert rc == -signal.SIGKILL
    assert _members(p) == []


def test_graceful_stop_and_restart(tmp_path: Path) -> None:
    p = _proc(tmp_path, "trap 'exit 7' TERM; echo ready; while true; do sleep 0.05; done")
    first = p.start()
    _started(tmp_path)
    assert p.stop(timeout_s=5) == 7
    second = p.start()
    try:
        assert second != first
        assert p.starts == 2
        assert p.is_running()
    finally:
        p.kill()


def test_stop_of_a_paused_process_still_works(tmp_path: Path) -> None:
    p = _proc(tmp_path, "trap 'exit 0' TERM; echo ready; while true; do sleep 0.05; done")
    pid = p.start()
    _started(tmp_path)
    p.signal_group(signal.SIGSTOP)
    assert p.wait_stopped(True, 2)
    assert process_state(pid) == "T"
    assert p.stop(timeout_s=5) == 0


def test_stop_leader_only_spares_the_rest_until_the_end(tmp_path: Path) -> None:
    # like the postmaster: the leader gets the signal, the group is cleaned after it exits
    script = "sleep 30 & trap 'exit 0' INT; echo ready; while true; do sleep 0.05; done"
    p = _proc(tmp_path, script)
    p.stop_signal, p.stop_leader_only = signal.SIGINT, True
    p.start()
    _started(tmp_path)
    assert p.stop(timeout_s=5) == 0
    assert _members(p) == []


def test_a_crashed_process_reports_its_exit_code(tmp_path: Path) -> None:
    p = _proc(tmp_path, "exit 3")
    p.start()
    assert p.wait_exit(5) == 3
    assert not p.is_running()
    assert p.stop(1) == 3
