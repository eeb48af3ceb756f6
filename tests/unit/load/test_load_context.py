"""Accounts are never shared; the context file keeps its keys private."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path
from typing import Any

import pytest
from l2chaos.errors import LoadError, SafetyError
from l2chaos.load import LoadRunner, parse_load
from l2chaos.load.context import LoadContext, redacted, split_accounts, write_secret_json
from l2chaos.load.runner import LOCUSTFILE, locust_class
from l2chaos.params import Where


def accounts(n: int, role: str = "trader", start: int = 1) -> list[dict[str, Any]]:
    return [{"account": i, "api_key": f"key-{i}", "role": role} for i in range(start, start + n)]


def test_split_deals_traders_round_robin_without_sharing() -> None:
    accts = accounts(10) + accounts(2, "probe", 100) + accounts(3, "adversary", 200)
    slices = split_accounts(accts, users=6, workers=3)
    ids = [[a.account for a in s] for s in slices]
    assert ids == [[1, 4, 7, 10], [2, 5, 8], [3, 6, 9]]
    flat = [a for s in ids for a in s]
    assert len(flat) == len(set(flat)) == 10  # probe and adversary accounts never used


def test_split_refuses_fewer_accounts_than_users() -> None:
    with pytest.raises(LoadError, match=r"5 users need 5 trader accounts .* has 4"):
        split_accounts(accounts(4) + accounts(5, "probe", 50), users=5, workers=1)


def test_split_refuses_when_one_worker_could_run_short() -> None:
    # 7 users on 3 workers: up to 3 on one worker, so 9 accounts are needed (3 each)
    with pytest.raises(LoadError, match="at least 9 trader accounts"):
        split_accounts(accounts(8), users=7, workers=3)
    assert len(split_accounts(accounts(9), users=7, workers=3)) == 3


def test_split_rejects_malformed_and_duplicate_accounts() -> None:
    with pytest.raises(LoadError, match="malformed"):
        split_accounts([{"account": "1", "api_key": "k"}], users=1, workers=1)
    with pytest.raises(LoadError, match="same trader account twice"):
        split_accounts(accounts(1) + accounts(1), users=1, workers=1)
    # no role: a trader
    assert (
        split_accounts([{"account": 1, "api_key": "k"}], users=1, workers=1)[0][0].role == "trader"
    )


def test_redacted_hides_every_api_key() -> None:
    data = {"workers": [[{"account": 1, "api_key": "secret"}]], "api_key": "x", "n": 1}
    out = redacted(data)
    assert "secret" not in json.dumps(out)
    assert out == {"workers": [[{"account": 1, "api_key": "***"}]], "api_key": "***", "n": 1}


def test_secret_file_is_private(tmp_path: Path) -> None:
    p = write_secret_json({"a": 1}, tmp_path)
    assert stat.S_IMODE(p.stat().st_mode) == 0o600
    assert json.loads(p.read_text()) == {"a": 1}


def _runner(tmp_path: Path, **kw: Any) -> LoadRunner:
    plan = kw.pop(
        "plan",
        parse_load({"users": 4, "personas": {"taker": 1, "reader": 1}}, Where(None, "load"), 3),
    )
    args: dict[str, Any] = {
        "endpoints": {"ui": "http://127.0.0.1:9/", "rpc": "http://127.0.0.1:10"},
        "accounts": accounts(8),
        "seed": 3,
        "run_dir": tmp_path / "run",
        "duration_s": 5,
        "t0_ns": 1,
    }
    args.update(kw)
    return LoadRunner(plan, **args)


def test_runner_checks_before_starting_anything(tmp_path: Path) -> None:
    with pytest.raises(SafetyError, match=r"refusing to send load to 'http://10\.1\.2\.3:80'"):
        _runner(tmp_path, endpoints={"ui": "http://10.1.2.3:80", "rpc": "http://127.0.0.1:1"})
    with pytest.raises(LoadError, match="needs endpoint"):
        _runner(tmp_path, endpoints={"ui": "http://127.0.0.1:1"})
    with pytest.raises(LoadError, match="4 users need 4 trader accounts"):
        _runner(tmp_path, accounts=accounts(3))
    with pytest.raises(LoadError, match="positive number of seconds"):
        _runner(tmp_path, duration_s=0)
    with pytest.raises(LoadError, match="http"):
        _runner(tmp_path, endpoints={"ui": "127.0.0.1:1", "rpc": "http://127.0.0.1:1"})
    assert not (tmp_path / "run").exists()
    # an explicit --allow-target lets a named host through
    r = _runner(
        tmp_path,
        endpoints={"ui": "http://10.1.2.3:80", "rpc": "http://127.0.0.1:1"},
        allow_targets=["10.1.2.3"],
    )
    assert r.endpoints["ui"] == "http://10.1.2.3:80"


def test_standalone_command(tmp_path: Path) -> None:
    r = _runner(tmp_path)
    [(role, argv, worker)] = r.commands()
    assert role == "standalone"
    assert worker == 0
    assert argv[:5] == [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE)]
    joined = " ".join(argv)
    for part in (
        "--headless",
        "--users 4",
        "--run-time 5s",
        "--csv-full-history",
        f"--csv {tmp_path / 'run' / 'load' / 'stats'}",
        "--exit-code-on-error 0",
    ):
        assert part in joined
    assert argv[-2:] == ["Taker", "Reader"]
    assert LOCUSTFILE.exists()


def test_distributed_commands(tmp_path: Path) -> None:
    plan = parse_load(
        {"users": 4, "workers": 2, "master_port": 23456, "personas": {"maker": 1}},
        Where(None, "load"),
        3,
    )
    r = _runner(tmp_path, plan=plan)
    cmds = r.commands()
    assert [c[0] for c in cmds] == ["master", "worker-0", "worker-1"]
    master = " ".join(cmds[0][1])
    assert (
        "--master --master-bind-host 127.0.0.1 --master-bind-port 23456 --expect-workers 2"
        in master
    )
    assert "--run-time 5s" in master
    assert "Maker" in master
    for _, argv, w in cmds[1:]:
        assert "--worker" in argv
        assert "--run-time" not in argv
        assert argv[argv.index("--master-port") + 1] == "23456"
        assert w in (0, 1)


def test_one_worker_means_a_master_and_one_worker(tmp_path: Path) -> None:
    plan = parse_load({"users": 4, "workers": 1, "personas": {"taker": 1}}, Where(None, "load"), 3)
    r = _runner(tmp_path, plan=plan)
    assert [c[0] for c in r.commands()] == ["master", "worker-0"]
    assert len(r.slices) == 1


def test_context_round_trips(tmp_path: Path) -> None:
    r = _runner(tmp_path)
    ctx = r._context()
    again = LoadContext.from_json(json.loads(json.dumps(ctx.to_json())))
    assert again == ctx
    with pytest.raises(LoadError, match="not an l2chaos load context"):
        LoadContext.from_json({"format": "other"})


def test_locust_class_names() -> None:
    assert [locust_class(p) for p in ("maker", "leveraged")] == ["Maker", "Leveraged"]


def test_remote_worker_command_line_errors_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from l2chaos.load.__main__ import main

    ctx_file = tmp_path / "ctx.json"
    ctx_file.write_text(json.dumps(_runner(tmp_path)._context().to_json()))
    worker_0 = ["worker", "--master", "h:1", "--context", str(ctx_file), "--index", "0"]
    cases = [
        (
            ["worker", "--master", "nohost", "--context", str(ctx_file), "--index", "0"],
            "--master: expected HOST:PORT",
        ),
        (
            ["worker", "--master", "h:1", "--context", str(tmp_path / "none"), "--index", "0"],
            "--context: no such file",
        ),
        (
            ["worker", "--master", "h:1", "--context", str(ctx_file), "--index", "3"],
            "--index: worker index 3 is outside 0..0",
        ),
        ([*worker_0, "--endpoint", "ui"], "--endpoint: expected ROLE=URL"),
        (
            [*worker_0, "--endpoint", "ui=http://10.9.9.9:80"],
            "refusing to send load to 'http://10.9.9.9:80'",
        ),
        (["merge", str(tmp_path)], "RUN_DIR: no history files"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        assert message in capsys.readouterr().err


def test_remote_instructions_name_the_master_port(tmp_path: Path) -> None:
    plan = parse_load(
        {
            "users": 4,
            "workers": 1,
            "remote_workers": 2,
            "master_port": 24680,
            "personas": {"taker": 1},
        },
        Where(None, "load"),
        3,
    )
    r = _runner(tmp_path, plan=plan)
    assert r.remote_commands() == [
        f"python -m l2chaos.load worker --master 127.0.0.1:24680 --context <copy of the context file> --index {i}"
        for i in (1, 2)
    ]
    master = " ".join(r.commands()[0][1])
    assert "--expect-workers 3" in master


def test_sweep_removes_only_context_files_of_dead_writers(tmp_path: Path) -> None:
    import os
    import subprocess

    from l2chaos.load import gc
    from l2chaos.load.context import _start_time

    mine = write_secret_json({"k": 1}, tmp_path)
    assert mine.name.startswith(f"l2chaos-load-{os.getpid()}-{_start_time(os.getpid())}-")
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.2)"])
    started = _start_time(child.pid)
    child.wait()
    dead = tmp_path / f"l2chaos-load-{child.pid}-{started}-abc.json"
    reused = tmp_path / f"l2chaos-load-{os.getpid()}-1-abc.json"  # our pid, another process
    other = tmp_path / "l2chaos-load-unrelated.json"
    for p in (dead, reused, other):
        p.write_text("{}")
    lines = gc(tmp_path)
    assert len(lines) == 2
    assert mine.exists()
    assert other.exists()
    assert not dead.exists()
    assert not reused.exists()
