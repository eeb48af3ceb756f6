"""`l2chaos stack up|status|down`: a stack brought up by hand stays up between commands
and goes down completely."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest
from l2chaos.backends.procs import pids_of_run

from tests._support.cli import l2chaos as run_l2chaos

pytestmark = pytest.mark.integration


def l2chaos(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_l2chaos(*args, env=env, timeout=240)


def test_stack_up_status_down(tmp_path: Path) -> None:
    import os

    from l2chaos.backends.toxiproxy import find_toxiproxy_server

    # A private cache (state files, ports), with the installed Toxiproxy server.
    env = dict(
        os.environ,
        L2CHAOS_CACHE=str(tmp_path / "cache"),
        L2CHAOS_TOXIPROXY=str(find_toxiproxy_server()),
    )
    up = l2chaos(
        "stack",
        "up",
        "perpdex",
        "--profile",
        "vulnerable",
        "--set",
        "settings.accounts=20",
        env=env,
    )
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert "stack perpdex is up on local (profile vulnerable" in up.stdout
        state = json.loads((tmp_path / "cache" / "stacks" / "perpdex" / "state.json").read_text())
        assert state["services"]["db"].startswith("postgresql://perpdex@127.0.0.1:")
        keys = json.loads(Path(state["accounts_file"]).read_text())
        assert len([a for a in keys if a["role"] == "trader"]) == 20
        assert oct(Path(state["accounts_file"]).stat().st_mode & 0o777) == "0o600"
        markets = httpx.get(
            state["services"]["ui-api"] + "/v1/markets",
            headers={"X-API-Key": keys[0]["api_key"]},
            timeout=5,
        )
        assert markets.status_code == 200
        status = l2chaos("stack", "status", "perpdex", env=env)
        assert "db         accepting connections" in status.stdout
        assert "ui-api     healthy" in status.stdout
        again = l2chaos("stack", "up", "perpdex", env=env)
        assert again.returncode == 2
        assert "already up" in again.stderr
    finally:
        down = l2chaos("stack", "down", "perpdex", env=env)
    assert down.returncode == 0, down.stderr
    assert "stack 'perpdex' is down" in down.stdout
    assert pids_of_run(state["run_id"]) == []
    assert "is not up" in l2chaos("stack", "status", "perpdex", env=env).stdout
