"""Run markers and gc: only runs whose owner is gone are cleaned, only our processes killed."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from l2chaos.backends.procs import (
    RUN_ID_ENV,
    MarkerStore,
    RunMarker,
    gc_runs,
    make_run_tempdir,
    pids_of_run,
    process_start_time,
    read_environ,
)


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_marker_round_trip() -> None:
    m = RunMarker("r1", 123, 456, 789, "tiny", {"db": 10}, [20000, 20001], ["/tmp/x"])
    assert RunMarker.from_json(m.to_json()) == m


@pytest.mark.parametrize("text", ["[]", "{}", '{"run_id": 3}', "not json"])
def test_marker_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError):
        RunMarker.from_json(text)


def test_owner_alive_checks_pid_and_start_time() -> None:
    me = RunMarker.for_this_process("r")
    assert me.owner_alive()
    reused = RunMarker("r", os.getpid(), (me.owner_start or 0) + 1, 0)  # same pid, other process
    assert not reused.owner_alive()
    assert not RunMarker("r", _dead_pid(), None, 0).owner_alive()


def test_proc_helpers() -> None:
    assert process_start_time(os.getpid()) is not None
    assert process_start_time(_dead_pid()) is None
    env = read_environ(os.getpid())
    assert env is not None
    assert env.get("PATH") == os.environ.get("PATH")


def test_store_write_list_remove(tmp_path: Path) -> None:
    store = MarkerStore(tmp_path)
    m = RunMarker.for_this_process("run/with odd:chars")
    path = store.write(m)
    assert path.parent == tmp_path
    assert path.name == "run_with_odd_chars.json"
    assert store.all_by_run() == [(m.run_id, m)]
    assert store.remove(m.run_id)
    assert not store.remove(m.run_id)
    assert store.all() == []


def test_gc_cleans_only_runs_whose_owner_is_gone(tmp_path: Path) -> None:
    store = MarkerStore(tmp_path / "runs")
    run_id = f"gc-unit-{os.getpid()}-{time.monotonic_ns()}"
    tempdir = make_run_tempdir(run_id)
    foreign = tmp_path / "not-ours"  # a path in a marker that gc must never delete
    foreign.mkdir()
    orphan = subprocess.Popen(
        ["sleep", "30"], env={**os.environ, RUN_ID_ENV: run_id}, start_new_session=True
    )
    stranger = subprocess.Popen(["sleep", "30"], start_new_session=True)  # no run id
    try:
        dead = RunMarker(run_id, _dead_pid(), None, 0, temp_dirs=[str(tempdir), str(foreign)])
        dead.processes = {"svc": orphan.pid, "other": stranger.pid}
        store.write(dead)
        live = RunMarker.for_this_process("gc-unit-live")
        store.write(live)
        (store.dir / "broken.json").write_text("{")
        assert pids_of_run(run_id) == [orphan.pid]

        lines = gc_runs(store)

        assert f"killed pid {orphan.pid} (sleep) of run {run_id}" in lines
        assert f"removed temp dir {tempdir} of run {run_id}" in lines
        assert any(ln.startswith("removed marker") and run_id in ln for ln in lines)
        assert any(ln.startswith("removed unreadable marker") for ln in lines)
        assert orphan.wait(5) == -9
        assert stranger.poll() is None  # not ours: never touched
        assert foreign.is_dir()
        assert not tempdir.exists()
        assert [r for r, _ in store.all_by_run()] == ["gc-unit-live"]
        assert gc_runs(store) == []
    finally:
        for p in (orphan, stranger):
            if p.poll() is None:
                p.kill()
            p.wait(5)
        store.remove("gc-unit-live")


def test_run_tempdir_is_traversable_by_other_users() -> None:
    d = make_run_tempdir("perm-check")
    try:
        assert d.stat().st_mode & 0o777 == 0o711
        assert d.name.startswith("l2chaos-run-perm-check-")
    finally:
        d.rmdir()
