"""What the test stacks of both platforms share (tests/integration/backends/tinystack.py
on local processes, tests/docker/dockerstack.py on docker): a stack up for the length of
a `with`, a fault context on it, and polling for observed state."""

from __future__ import annotations

import random
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from l2chaos.backends.base import Endpoint
from l2chaos.backends.orchestrator import OrchestratedStack, StackOrchestrator
from l2chaos.backends.platform import Platform
from l2chaos.faults.base import FaultContext
from l2chaos.hooks import HttpHookClient
from l2chaos.stackspec import StackRun

P = TypeVar("P", bound=Platform)


def new_run_id(prefix: str = "test") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@contextmanager
def stack_up(
    backend: StackOrchestrator[P], run: StackRun, folder: Path, run_id: str
) -> Iterator[OrchestratedStack[P]]:
    """The stack up (its run directory under `folder`), always brought down after."""
    stack = backend.up(run, run_id=run_id, run_dir=folder / "run", env={})
    try:
        yield stack
    finally:
        backend.down(stack)


def fault_context(
    stack: OrchestratedStack[Any], notes: list[dict[str, Any]] | None = None
) -> FaultContext:
    """A fault context on the stack; the fault's notes go to `notes` when given."""
    hooks = HttpHookClient({}, stack.direct_url, stack.admin_token)
    sink = notes if notes is not None else []
    return FaultContext(
        stack=stack,
        links=stack.links,
        control=stack.control,
        hooks=hooks,
        rng=random.Random(0),
        note=lambda **kw: sink.append(kw),
    )


def connection_refused(endpoint: Endpoint, timeout: float) -> bool:
    """Whether a connection to the endpoint is refused (not accepted, not timed out)."""
    try:
        socket.create_connection((endpoint.host, endpoint.port), timeout=timeout).close()
    except ConnectionRefusedError:
        return True
    return False


def wait_until(cond: Callable[[], object], timeout: float = 10.0, step: float = 0.05) -> bool:
    """Poll `cond` until it holds or `timeout` seconds pass; whether it held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return bool(cond())
