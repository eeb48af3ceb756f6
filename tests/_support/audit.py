"""A stack's audit export (the `audit` command of its stack file), run by a test as a
run's wind-down runs it, into a folder the checkers then read."""

from __future__ import annotations

import os
from pathlib import Path

from l2chaos.backends.base import RunningStack
from l2chaos.childproc import run_captured
from l2chaos.stackspec import render


def export_audit(stack: RunningStack, out: Path, admin_token: str) -> Path:
    """`out`, filled by the stack's audit command (which must succeed)."""
    assert stack.spec.audit is not None, f"{stack.spec.path} declares no audit command"
    values = stack.template_values(out=out)
    argv = [render(part, values) for part in stack.spec.audit]
    env = {**os.environ, "L2CHAOS_ADMIN_TOKEN": admin_token}
    done = run_captured(argv, timeout_s=120, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    return out
