"""The l2chaos exception tree.

    L2ChaosError                  root; never raised directly
    ├── InputError                bad input from the user: exit code 2
    │   ├── ScenarioError         a scenario file is invalid
    │   ├── StackSpecError        a stack file is invalid
    │   └── UsageError            bad CLI flags or API arguments
    ├── HarnessError              the harness or the stack broke: exit code 3
    │   ├── StackError            a service failed to start, answer or stop
    │   ├── FaultError            a fault could not be injected or healed
    │   ├── BaselineError         the stack was not healthy before the first fault
    │   ├── LoadError             the load generator failed
    │   └── SafetyError           a target outside the allowed address range
    Interrupted                   SIGINT/SIGTERM during a run (exit code 130); like
                                  KeyboardInterrupt a BaseException, so no
                                  `except Exception` on its way swallows it

A verdict (an invariant violated) is not an exception: it is data in the run record.
InputError carries the file, line and field so the CLI can print one clear message.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "BaselineError",
    "FaultError",
    "HarnessError",
    "InputError",
    "Interrupted",
    "L2ChaosError",
    "LoadError",
    "SafetyError",
    "ScenarioError",
    "StackError",
    "StackSpecError",
    "UsageError",
]

EXIT_OK = 0
EXIT_EXPECTATION_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_HARNESS_BROKE = 3
EXIT_INTERRUPTED = 130


class L2ChaosError(Exception):
    """Root of every error l2chaos raises on purpose."""

    exit_code = EXIT_HARNESS_BROKE


class InputError(L2ChaosError):
    """Bad input. `str(err)` is the one-line message shown to the user.

    The message format is ``FILE:LINE: FIELD: PROBLEM`` where file, line and field are
    known, so an editor can jump to it.
    """

    exit_code = EXIT_BAD_INPUT

    def __init__(
        self,
        problem: str,
        *,
        file: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.problem = problem
        self.file = str(file) if file is not None else None
        self.line = line
        self.field = field
        super().__init__(self._format())

    def _format(self) -> str:
        where = ""
        if self.file is not None:
            where = self.file if self.line is None else f"{self.file}:{self.line}"
            where += ": "
        what = f"{self.field}: " if self.field else ""
        return f"{where}{what}{self.problem}"


class ScenarioError(InputError):
    """A scenario file is invalid."""


class StackSpecError(InputError):
    """A stack file is invalid."""


class UsageError(InputError):
    """Bad command-line flags or API arguments."""


class HarnessError(L2ChaosError):
    """The harness or the stack under test broke; no verdict can be given."""

    exit_code = EXIT_HARNESS_BROKE


class StackError(HarnessError):
    """A service failed to start, to answer or to stop.

    `service` names it; `log_tail` holds the last lines of its log when known.
    """

    def __init__(self, message: str, *, service: str | None = None, log_tail: str = "") -> None:
        self.service = service
        self.log_tail = log_tail
        text = message if service is None else f"{service}: {message}"
        if log_tail:
            text += "\n--- last lines of its log ---\n" + log_tail.rstrip()
        super().__init__(text)


class FaultError(HarnessError):
    """A fault could not be injected or healed."""


class BaselineError(HarnessError):
    """The stack was not healthy and producing blocks before the first fault."""


class LoadError(HarnessError):
    """The load generator failed to start or crashed."""


class SafetyError(HarnessError):
    """Load or faults aimed at an address outside loopback and the run's own containers."""

    exit_code = EXIT_BAD_INPUT


class Interrupted(BaseException):
    """The run was interrupted by SIGINT or SIGTERM; teardown has run.

    Not an `L2ChaosError` (an Exception): a step that catches every error to carry on
    (a teardown, a probe) must not turn Ctrl-C into "the harness broke"."""

    exit_code = EXIT_INTERRUPTED
