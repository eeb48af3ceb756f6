"""One teardown behaviour for every platform: every step runs, problems are recorded.

A step that fails is recorded as a problem (`problems`, which the runner writes to
run.json) and the next step runs. An interrupt arriving meanwhile (KeyboardInterrupt,
SystemExit, l2chaos `Interrupted`) is held until the last step is done, then raised by
`finish`: Ctrl-C during teardown never leaves anything behind, and is never lost.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from l2chaos.errors import Interrupted

__all__ = ["Teardown"]

log = logging.getLogger(__name__)


def _short(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:400]


class Teardown:
    """Collects problems of a teardown and holds an interrupt until it is complete."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.problems: list[str] = []
        self.held: BaseException | None = None

    def step(self, what: str, fn: Callable[..., Any], *args: Any) -> None:
        try:
            fn(*args)
        except BaseException as exc:  # teardown goes on whatever happens
            self.note(f"{what}: {_short(exc)}")
            if isinstance(exc, Interrupted) or not isinstance(exc, Exception):
                self.held = self.held or exc

    def note(self, problem: str) -> None:
        self.problems.append(problem)
        log.warning("teardown of run %s: %s", self.run_id, problem)

    def finish(self) -> list[str]:
        """The problems met; raises the held interrupt, if any, after everything ran."""
        if self.held is not None:
            raise self.held
        return list(self.problems)
