"""pytest fixtures for hand-written chaos tests (the ``l2chaos_fixtures`` pytest11 plugin).

    def test_orders_survive_a_slow_database(l2chaos_stack, l2chaos_faults):
        stack = l2chaos_stack("perpdex", profile="hardened", settings={"accounts": 50})
        with l2chaos_faults(stack).inject("network.latency", "sequencer->db", latency="200ms"):
            ...  # drive the stack through stack.direct_url("ui-api") and assert

`l2chaos_stack(ref, profile=, switches=, settings=, seed=)` brings a stack up on the
local backend (validated exactly like a scenario's `stack:` section) and tears it down
at the end of the test, whatever happens. `l2chaos_faults(stack)` gives a
`FaultInjector` whose `inject(fault, target, **params)` is a context manager: the fault
is validated like a timeline entry, injected on entry and healed on exit.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from .backends.base import RunningStack
from .hooks import HttpHookClient
from .params import Where
from .scenario import parse_fault_entry, parse_stack_section
from .stackspec import StackRun

__all__ = ["FaultInjector", "StackFactory", "l2chaos_faults", "l2chaos_stack"]


class FaultInjector:
    """Injects faults into one running stack, healing each when its `with` block ends."""

    def __init__(self, stack: RunningStack, run: StackRun, seed: int = 1) -> None:
        self.stack = stack
        self.run = run
        self._rng = random.Random(seed)
        self._hooks = HttpHookClient(run.spec.hooks, stack.direct_url, stack.admin_token)
        self.log: list[dict[str, Any]] = []

    @contextmanager
    def inject(
        self, fault: str, target: str | list[str] | None = None, **params: Any
    ) -> Iterator[dict[str, Any]]:
        from l2chaos.faults.base import FaultContext

        entry: dict[str, Any] = {"fault": fault, "with": params}
        if target is not None:
            entry["target"] = target
        use = parse_fault_entry(
            entry, Where("<test>", "inject"), self.run.spec, need_at=False, window_given=True
        )
        ctx = FaultContext(
            stack=self.stack,
            links=self.stack.links,
            control=self.stack.control,
            hooks=self._hooks,
            rng=random.Random(self._rng.random()),
            note=lambda **fields: self.log.append({"fault": fault, "note": fields}),
            endpoints={
                role: self.stack.direct_url(svc) for role, svc in self.run.spec.load.items()
            },
        )
        try:
            details = use.fault.inject(ctx)
            self.log.append({"fault": fault, "inject": details})
            yield details
        finally:
            self.log.append({"fault": fault, "heal": use.fault.heal(ctx)})

    def close(self) -> None:
        self._hooks.close()


class StackFactory:
    """Brings stacks up on the local backend and remembers how each was configured."""

    def __init__(self, tmp_path: Path) -> None:
        self._tmp = tmp_path
        self._started: list[tuple[Any, RunningStack, StackRun]] = []

    def __call__(
        self,
        ref: str = "perpdex",
        *,
        profile: str | None = None,
        switches: Mapping[str, bool] | None = None,
        settings: Mapping[str, Any] | None = None,
        seed: int = 1,
    ) -> RunningStack:
        from .backends import backend as make_backend

        section: dict[str, Any] = {
            "ref": ref,
            "switches": dict(switches or {}),
            "settings": dict(settings or {}),
        }
        if profile is not None:
            section["profile"] = profile
        _, run = parse_stack_section(
            {"stack": section}, Where("<fixture>", ""), Path.cwd(), seed, None
        )
        backend = make_backend("local")
        run_dir = self._tmp / f"stack-{len(self._started)}"
        run_dir.mkdir()
        run_id = f"pytest-{run_dir.name}-{random.getrandbits(32):08x}"
        stack = backend.up(run, run_id=run_id, run_dir=run_dir, env={})
        self._started.append((backend, stack, run))
        return stack

    def run_of(self, stack: RunningStack) -> StackRun:
        for _, started, run in self._started:
            if started is stack:
                return run
        raise TypeError("l2chaos_faults needs a stack brought up by the l2chaos_stack fixture")

    def down_all(self) -> None:
        while self._started:
            backend, stack, _ = self._started.pop()
            backend.down(stack)


@pytest.fixture
def l2chaos_stack(tmp_path: Path) -> Iterator[StackFactory]:
    """A factory that brings stacks up on the local backend; all go down after the test."""
    factory = StackFactory(tmp_path)
    try:
        yield factory
    finally:
        factory.down_all()


@pytest.fixture
def l2chaos_faults(
    l2chaos_stack: StackFactory,
) -> Iterator[Callable[[RunningStack], FaultInjector]]:
    """`l2chaos_faults(stack)` → a FaultInjector for a stack from `l2chaos_stack`."""
    made: list[FaultInjector] = []

    def for_stack(stack: RunningStack) -> FaultInjector:
        injector = FaultInjector(stack, l2chaos_stack.run_of(stack))
        made.append(injector)
        return injector

    try:
        yield for_stack
    finally:
        for injector in made:
            injector.close()
