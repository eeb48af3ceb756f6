"""The real command line, as a user runs it: `python -m l2chaos.cli ARGS` in a fresh
interpreter, its output captured, no stdin."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from l2chaos.childproc import run_captured


def l2chaos(
    *args: str,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    return run_captured(
        [sys.executable, "-m", "l2chaos.cli", *args], timeout_s=timeout, cwd=cwd, env=env
    )
