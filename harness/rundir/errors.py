"""The error of a run record that cannot be read (malformed JSON, wrong shape)."""

from __future__ import annotations

from pathlib import Path

from l2chaos.errors import HarnessError

__all__ = ["RecordError"]


class RecordError(HarnessError):
    """A file of the run record cannot be read: no verdict can be given (exit code 3)."""

    def __init__(self, problem: str, *, file: Path, line: int | None = None) -> None:
        self.file = file
        self.line = line
        where = f"{file}:{line}" if line is not None else str(file)
        super().__init__(f"{where}: {problem}")
