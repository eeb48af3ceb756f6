"""Running a command to completion the one way the harness and its tests do: output
captured as text (bytes that do not decode are replaced), no stdin (CI has none, and a
child that reads the terminal must neither block nor take the user's input), a time
limit, and the exit code handed back rather than raised: the caller says what a failure
means. `subprocess.TimeoutExpired` and `OSError` (no such program) propagate.

`spawn_logged` starts a background child the one way the harness does: no stdin either,
its output into a log file, in a session of its own."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

__all__ = ["run_captured", "spawn_logged"]


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


def spawn_logged(argv: Sequence[str], log: IO[Any], **popen: Any) -> subprocess.Popen[bytes]:
    """Start `argv` in the background: stdout and stderr into `log`, no stdin, and a
    session of its own (a Ctrl-C at the terminal does not reach it; it is stopped by its
    process group). `popen`: more `subprocess.Popen` arguments (cwd, env...)."""
    return subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        **popen,
    )
