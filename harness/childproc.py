"""Running a command to completion the one way the harness and its tests do: output
captured as text (bytes that do not decode are replaced), no stdin (CI has none, and a
child that reads the terminal must neither block nor take the user's input), a time
limit, and the exit code handed back rather than raised: the caller says what a failure
means. `subprocess.TimeoutExpired` and `OSError` (no such program) propagate."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["run_captured"]


def run_captured(
    argv: Sequence[str],
    *,
    timeout_s: float,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        errors="replace",
        check=False,
        stdin=subprocess.DEVNULL,
        timeout=timeout_s,
        cwd=cwd,
        env=None if env is None else dict(env),
    )
