"""Locust load against the real perpdex stack: a well-formed history, timeouts as
`info`, seeded decisions, two workers, and runs that always end."""

from __future__ import annotations

import json
import os
import signal
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from l2chaos.backends.base import Toxic
from l2chaos.load import check_history
from l2chaos.load.history import worker_records

pytestmark = pytest.mark.integration

ALL = {"maker": 2, "taker": 3, "leveraged": 2, "bridger": 1, "reader": 2}


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def ops(path: Path) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(invoke, completion) pairs of a history."""
    inv: dict[str, dict[str, Any]] = {}
    out = []
    for r in records(path):
        if r["type"] == "invoke":
            inv[r["op_id"]] = r
        else:
            out.append((inv.pop(r["op_id"]), r))
    assert not inv
    return out


def live(run_dir: Path) -> list[dict[str, Any]]:
    """The records the workers have flushed so far (a batch still being written is not
    counted)."""
    out: list[dict[str, Any]] = []
    for f in sorted((run_dir / "history").glob("worker-*.jsonl")):
        out += worker_records(f)
    return out


def wait_until(cond: Any, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def via_ui(op: str) -> bool:
    """Ops through ui-api that reach rpc (deposits go to the bridge; readers' rpc_*
    calls go to rpc directly)."""
    return not op.startswith("rpc_") and op != "deposit"


def test_short_run_gives_a_well_formed_history(perp: Any) -> None:
    runner = perp.runner({"users": 10, "spawn_rate": 20, "personas": ALL}, duration_s=8)
    with runner:
        context = runner.context_path
        assert context is not None
        assert context.exists()
        assert oct(context.stat().st_mode & 0o777) == "0o600"
        assert runner.run_dir not in context.parents
        assert runner.wait(timeout=60) == 0  # Locust stops by itself at the duration
    result = runner.result
    assert result is not None
    assert result.clean, result.to_json()
    assert not context.exists()
    assert not runner.alive()

    run_dir = runner.run_dir
    chk = check_history(run_dir / "history.jsonl")
    assert chk.ok, chk.problems
    assert chk.operations > 60
    assert chk.by_type["ok"] > chk.by_type["fail"] + chk.by_type["info"]
    pairs = ops(run_dir / "history.jsonl")
    assert {i["persona"] for i, _ in pairs} == set(ALL)
    for op in ("place_order", "cancel_order", "get_markets", "get_account", "get_positions",
               "rpc_block_number", "rpc_get_block"):  # fmt: skip
        assert chk.by_op.get(op, {}).get("ok", 0) > 0, (op, chk.by_op)
    # no request was malformed: every 400 would be a bug in the personas
    assert not [d for _, d in pairs if (d["error"] or "").startswith("HTTP 400")]

    # acknowledged orders carry ids the stack knows
    placed = [d["result"] for _, d in pairs if d["op"] == "place_order" and d["type"] == "ok"]
    assert placed
    for res in placed[:5]:
        assert isinstance(res["order_id"], int)
        receipt = perp.rpc("starknet_getTransactionReceipt", {"transaction_hash": res["tx_hash"]})
        assert receipt["status"] == "accepted"
        assert receipt["block_number"] == res["block"]

    # one user per account, only trader accounts
    traders = {a["account"] for a in perp.accounts if a["role"] == "trader"}
    users_of: dict[int, set[str]] = defaultdict(set)
    for i, _ in pairs:
        users_of[i["account"]].add(i["process"].split(".")[0])
    assert set(users_of) <= traders
    assert all(len(u) == 1 for u in users_of.values()), users_of

    # Locust's own numbers and log, and no API key anywhere in the run directory
    load = run_dir / "load"
    for name in ("stats_stats.csv", "stats_stats_history.csv", "stats_failures.csv",
                 "locust.log", "load-plan.json", "summary.json"):  # fmt: skip
        assert (load / name).exists(), name
    history_rows = (load / "stats_stats_history.csv").read_text().splitlines()
    assert len(history_rows) > 5
    assert any(",place_order," in row for row in history_rows)
    text = "".join(p.read_text(errors="replace") for p in run_dir.rglob("*") if p.is_file())
    assert not [a for a in perp.accounts if a["api_key"] in text]
    plan = json.loads((load / "load-plan.json").read_text())
    assert {a["api_key"] for s in plan["workers"] for a in s} == {"***"}


def test_timeouts_under_a_toxiproxy_timeout_are_info(perp: Any) -> None:
    section = {
        "users": 8, "spawn_rate": 20, "request_timeout": "1500ms",
        "personas": {"maker": 2, "taker": 3, "leveraged": 1, "bridger": 1, "reader": 1},
    }  # fmt: skip
    runner = perp.runner(section, duration_s=120)
    links = perp.stack.links
    run_dir = runner.run_dir
    with runner:
        wait_until(  # the load is under way
            lambda: any(r["type"] == "ok" and via_ui(r["op"]) for r in live(run_dir)),
            "an operation through ui-api to succeed",
        )
        t_on = time.time_ns()
        for stream in ("upstream", "downstream"):
            links.add_toxic(
                "ui-api->rpc", Toxic(f"load-it-{stream}", "timeout", stream, 1.0, {"timeout": 0})
            )
        try:  # until five ops through ui-api went out while it could not reach rpc, and
            # had their 1.5 s to time out before the heal
            wait_until(
                lambda: len([
                    r for r in live(run_dir)
                    if r["type"] == "invoke" and via_ui(r["op"])
                    and t_on + 200_000_000 < r["t_ns"] < time.time_ns() - 1_600_000_000
                ]) >= 5,
                "five operations cut off by the toxic",
            )  # fmt: skip
        finally:
            t_off = time.time_ns()
            links.reset()
        wait_until(  # trading resumes after the heal
            lambda: any(
                r["type"] == "ok" and via_ui(r["op"]) and r["t_ns"] > t_off + 2_000_000_000
                for r in live(run_dir)
            ),
            "an operation through ui-api to succeed after the heal",
        )
    assert runner.result is not None
    assert runner.result.killed == []
    chk = check_history(runner.run_dir / "history.jsonl")
    assert chk.ok, chk.problems

    through_ui = [(i, d) for i, d in ops(run_dir / "history.jsonl") if via_ui(i["op"])]
    # invoked while ui-api could not reach rpc, and would have timed out before the heal
    cut = [(i, d) for i, d in through_ui if t_on + 200_000_000 < i["t_ns"] < t_off - 1_600_000_000]
    assert len(cut) >= 5, len(cut)
    assert [d for _, d in cut if d["type"] == "fail"] == []
    infos = [d for _, d in cut if d["type"] == "info"]
    assert len(infos) == len(cut)
    assert {d["error"] for d in infos} <= {
        "timeout",
        "HTTP 504: timeout: the chain did not answer in time",
    }
    writes = [d for _, d in cut if d["op"] in ("place_order", "cancel_order", "withdraw")]
    assert all(d["type"] == "info" for d in writes)
    # a process that saw info is never used again (checked by check_history), and
    # trading resumed after the heal
    after = [d for i, d in through_ui if i["t_ns"] > t_off + 2_000_000_000]
    assert any(d["type"] == "ok" for d in after)


def _decisions(run_dir: Path) -> dict[tuple[int, str, int], list[dict[str, Any]]]:
    out: dict[tuple[int, str, int], list[dict[str, Any]]] = defaultdict(list)
    for f in sorted((run_dir / "load" / "decisions").glob("worker-*.jsonl")):
        for r in records(f):
            key = (r.pop("worker"), r.pop("persona"), r.pop("ordinal"))
            r.pop("account")
            r.pop("calls")  # what a decision became depends on the stack; the decision does not
            out[key].append(r)
    return out


def test_same_seed_same_decisions(perp: Any) -> None:
    section = {"users": 8, "spawn_rate": 50, "trace_decisions": True, "personas": ALL}
    traces = []
    for seed in (11, 11, 12):
        runner = perp.runner(section, seed=seed, duration_s=5)
        with runner:
            runner.wait(timeout=60)
        assert check_history(runner.run_dir / "history.jsonl").ok
        traces.append(_decisions(runner.run_dir))
    a, b, c = traces
    assert set(a) == set(b) == set(c)
    assert len(a) == 8
    for key in a:
        n = min(len(a[key]), len(b[key]))
        assert n >= 3, (key, len(a[key]), len(b[key]))
        assert a[key][:n] == b[key][:n], key
    differ = [
        k for k in a if a[k][: min(len(a[k]), len(c[k]))] != c[k][: min(len(a[k]), len(c[k]))]
    ]
    assert len(differ) == len(a)


def test_two_workers_end_to_end(perp: Any) -> None:
    runner = perp.runner(
        {"users": 8, "spawn_rate": 20, "workers": 2, "personas": ALL}, duration_s=8
    )
    with runner:
        assert set(runner.pids) == {"master", "worker-0", "worker-1"}
        assert runner.wait(timeout=60) == 0
    result = runner.result
    assert result is not None
    assert result.clean, result.to_json()
    assert result.merge is not None
    assert result.merge.files == 2
    run_dir = runner.run_dir
    for w in (0, 1):
        assert (run_dir / "history" / f"worker-{w}.jsonl").stat().st_size > 0
        assert (run_dir / "load" / f"locust-worker-{w}.log").exists()
    chk = check_history(run_dir / "history.jsonl")
    assert chk.ok, chk.problems
    pairs = ops(run_dir / "history.jsonl")
    accounts_of: dict[int, set[int]] = defaultdict(set)
    for i, _ in pairs:
        accounts_of[i["worker"]].add(i["account"])
    assert set(accounts_of) == {0, 1}
    assert not accounts_of[0] & accounts_of[1]  # no account on both workers
    assert len(accounts_of[0] | accounts_of[1]) == 8
    stats = (run_dir / "load" / "stats_stats.csv").read_text()
    aggregated = next(r for r in stats.splitlines() if ",Aggregated," in r)
    assert int(aggregated.split(",")[2]) > 0


def test_stop_early_is_graceful(perp: Any) -> None:
    runner = perp.runner({"users": 4, "personas": {"taker": 1, "reader": 1}}, duration_s=120)
    try:
        runner.start()
        wait_until(lambda: any(r["type"] == "ok" for r in live(runner.run_dir)), "load")
    finally:
        result = runner.stop()
    assert result.killed == []  # stopped gracefully, not killed at the deadline
    assert result.exit_codes == {"standalone": 0}
    assert runner.stop() is result  # idempotent
    assert not runner.alive()
    assert check_history(runner.run_dir / "history.jsonl").ok


def test_a_hung_locust_is_killed_at_the_deadline(perp: Any) -> None:
    section = {
        "users": 4,
        "grace": "1s",
        "start_timeout": "3s",
        "personas": {"taker": 1, "reader": 1},
    }
    runner = perp.runner(section, duration_s=2)
    try:
        runner.start()
        os.killpg(runner.pids["standalone"], signal.SIGSTOP)  # Locust will never stop by itself
        code = runner.wait(timeout=60)
    finally:
        result = runner.stop()
    assert code == -signal.SIGKILL  # killed by the deadline, before the wait gave up
    assert result.deadline_hit
    assert result.killed == ["standalone"]
    assert not runner.alive()
    chk = check_history(runner.run_dir / "history.jsonl")
    assert chk.ok, chk.problems  # whatever was in flight is closed as info


def test_a_remote_worker_joins_with_the_documented_command(perp: Any, tmp_path: Path) -> None:
    import shutil
    import subprocess
    import sys

    section = {
        "users": 6,
        "workers": 1,
        "remote_workers": 1,
        "start_timeout": "30s",
        "personas": ALL,
    }
    runner = perp.runner(section, duration_s=6)
    remote_dir = tmp_path / "remote-history"
    copy = tmp_path / "context-copy.json"
    with runner:
        instructions = (runner.run_dir / "load" / "remote-workers.txt").read_text()
        [command] = [
            x for x in instructions.splitlines() if x.startswith("python -m l2chaos.load worker")
        ]
        assert runner.context_path is not None
        shutil.copy(runner.context_path, copy)  # what scp would do
        argv = (
            command.replace("python", sys.executable, 1)
            .replace("<copy of the context file>", str(copy))
            .split()
        )
        remote = subprocess.Popen(
            [*argv, "--history-dir", str(remote_dir)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            assert runner.wait(timeout=90) == 0
            out, _ = remote.communicate(timeout=30)
        finally:
            if remote.poll() is None:
                remote.kill()
                remote.wait()
    assert remote.returncode == 0, out.decode(errors="replace")[-2000:]
    shutil.copy(remote_dir / "worker-1.jsonl", runner.run_dir / "history" / "worker-1.jsonl")
    merged = subprocess.run(
        [sys.executable, "-m", "l2chaos.load", "merge", str(runner.run_dir)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert merged.returncode == 0, merged.stdout + merged.stderr
    assert json.loads(merged.stdout)["well_formed"]
    pairs = ops(runner.run_dir / "history.jsonl")
    workers: dict[int, set[int]] = defaultdict(set)
    for i, _ in pairs:
        workers[i["worker"]].add(i["account"])
    assert set(workers) == {0, 1}
    assert not workers[0] & workers[1]
