"""`l2chaos stack`: the holder's state and its identity check, without a stack."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from l2chaos import stackhold
from l2chaos.backends.procs import process_start_time
from l2chaos.cli import main
from l2chaos.errors import UsageError
from l2chaos.stackhold import HolderState, holder_alive, state_key


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("L2CHAOS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def write_state(cache: Path, key: str, data: object) -> None:
    d = cache / "stacks" / key
    d.mkdir(parents=True, exist_ok=True)
    (d / "state.json").write_text(json.dumps(data))


@pytest.mark.parametrize("pid", [0, -1, True])
def test_pid_zero_or_less_is_never_alive(pid: int) -> None:
    assert not holder_alive(pid, None)  # os.kill(0, 0) would succeed: the caller's group


def test_a_live_process_that_is_not_the_holder_is_not_alive() -> None:
    me = os.getpid()
    assert not holder_alive(me, process_start_time(me))  # runs pytest, not the holder


def test_a_reused_pid_is_not_the_holder() -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "l2chaos.stackhold"],
        stdin=subprocess.DEVNULL,
    )
    try:
        start = process_start_time(holder.pid)
        deadline = time.monotonic() + 30  # until the child has exec'd (its command line)
        while not holder_alive(holder.pid, start) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert holder_alive(holder.pid, start)
        assert not holder_alive(holder.pid, (start or 0) + 1)  # another process, same pid
    finally:
        holder.kill()
        holder.wait()


def test_down_never_signals_a_process_that_is_not_the_holder(
    private_cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stranger = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], stdin=subprocess.DEVNULL
    )
    try:
        write_state(private_cache, "perpdex", {"status": "up", "pid": stranger.pid})
        assert stackhold.down("perpdex") == 0
        assert stranger.poll() is None  # still running: never signalled
        assert "holder is gone" in capsys.readouterr().out
        assert not (private_cache / "stacks" / "perpdex" / "state.json").exists()
    finally:
        stranger.kill()
        stranger.wait()


@pytest.mark.parametrize(
    "data",
    [{"status": "failed", "error": "boom"}, {"status": "up"}, "nonsense", {"pid": 12}, []],
)
def test_a_state_without_a_pid_or_a_name_never_crashes(
    private_cache: Path, data: object, capsys: pytest.CaptureFixture[str]
) -> None:
    write_state(private_cache, "perpdex", data)
    assert main(["stack", "status", "perpdex"]) == 0
    assert main(["stack", "down", "perpdex"]) == 0
    assert "is not up" in capsys.readouterr().out


def test_a_broken_state_file_reads_as_none(private_cache: Path) -> None:
    d = private_cache / "stacks" / "perpdex"
    d.mkdir(parents=True)
    (d / "state.json").write_text("{")
    assert HolderState.read("perpdex") is None
    write_state(private_cache, "perpdex", {"status": "up", "pid": "12"})
    assert HolderState.read("perpdex") is None


def test_a_path_is_kept_in_the_cache_never_beside_the_stack(tmp_path: Path) -> None:
    folder = tmp_path / "src" / "My Stack"
    folder.mkdir(parents=True)
    (folder / "stack.yaml").write_text("name: x\n")
    key = state_key(str(folder / "stack.yaml"))
    assert key == state_key(str(folder))  # the folder and its stack.yaml are one stack
    assert key.startswith("my-stack-")
    assert "/" not in key
    assert state_key("perpdex") == "perpdex"


def test_an_unknown_stack_is_blamed_on_the_stack_not_on_set() -> None:
    with pytest.raises(UsageError) as err:
        stackhold.up("no-such-stack")
    assert err.value.field == "STACK"
    assert "--set" not in str(err.value)
    assert "unknown stack 'no-such-stack'" in str(err.value)


def test_an_unknown_backend_is_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stack", "up", "perpdex", "--backend", "nope"]) == 2
    assert "unknown backend 'nope'" in capsys.readouterr().err
