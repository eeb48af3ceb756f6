"""One perpdex stack on the local backend (real Postgres, real Toxiproxy) shared by the
load tests of a module, and a helper that runs Locust against it."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from l2chaos.accounts import read_accounts
from l2chaos.backends.local import LocalBackend, LocalStack
from l2chaos.load import LoadRunner, parse_load
from l2chaos.params import Where
from l2chaos.stacks.perpdex import STACK_FILE
from l2chaos.stackspec import StackRun, load_stack

TOKEN = "load-integration-token"
SETTINGS = {"accounts": 24, "oracle_interval": 250_000_000, "finality_blocks": 20}
FAST_THINK = {"think": ["100ms", "300ms"]}


@dataclass
class Perp:
    stack: LocalStack
    accounts: list[dict[str, Any]]
    endpoints: dict[str, str]
    run_root: Path
    runs: int = 0

    def rpc(self, method: str, params: Any) -> Any:
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
        answer = httpx.post(self.endpoints["rpc"] + "/", json=body, timeout=30).json()
        if "error" in answer:
            raise AssertionError(f"{method}: {answer['error']}")
        return answer["result"]

    def runner(
        self, section: Mapping[str, Any], *, seed: int = 1604710, duration_s: float = 8, **kw: Any
    ) -> LoadRunner:
        """A LoadRunner for a `load:` section (fast think times unless given)."""
        section = dict(section)
        for persona in ("maker", "taker", "leveraged", "bridger", "reader"):
            section.setdefault(persona, dict(FAST_THINK))
        plan = parse_load(section, Where("test", "load"), seed)
        self.runs += 1
        run_dir = self.run_root / f"run{self.runs}"
        run_dir.mkdir(parents=True)
        return LoadRunner(
            plan,
            endpoints=self.endpoints,
            accounts=self.accounts,
            seed=seed,
            run_dir=run_dir,
            duration_s=duration_s,
            t0_ns=time.time_ns(),
            **kw,
        )


@pytest.fixture(scope="module")
def perp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Perp]:
    spec = load_stack(STACK_FILE)
    run = StackRun(spec, "hardened", spec.profiles["hardened"], SETTINGS, seed=1604710)
    root = tmp_path_factory.mktemp("load-stack")
    (root / "stack").mkdir()
    stack = LocalBackend(stop_timeout_s=5).up(
        run, run_id=f"load-it-{os.getpid()}-{time.time_ns()}", run_dir=root / "stack",
        env={"L2CHAOS_ADMIN_TOKEN": TOKEN},
    )  # fmt: skip
    try:
        accounts = read_accounts(stack, TOKEN)
        endpoints = {role: stack.direct_url(svc) for role, svc in spec.load.items()}
        yield Perp(stack, accounts, endpoints, root)
    finally:
        stack.down()
