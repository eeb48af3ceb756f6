"""Invariant checkers over the run record, coverage ("sometimes") and expectations.

One module per checker (registered automatically, see `l2chaos.registry`); the
scenario sections `invariants:`, `sometimes:` and `expect:` are validated here, and
`check_run(run_dir)` turns a finished run directory into verdicts and an exit code.
"""

from .base import Checker, Findings, Status, Verdict, Violation
from .check import CheckOutcome, check_run, run_checker
from .coverage import COUNTERS, SometimesRule, parse_sometimes
from .expectations import Expectation, ExpectationResult, parse_expect
from .record import RecordError, RunRecord
from .uses import InvariantUse, parse_invariants

__all__ = [
    "COUNTERS",
    "CheckOutcome",
    "Checker",
    "Expectation",
    "ExpectationResult",
    "Findings",
    "InvariantUse",
    "RecordError",
    "RunRecord",
    "SometimesRule",
    "Status",
    "Verdict",
    "Violation",
    "check_run",
    "parse_expect",
    "parse_invariants",
    "parse_sometimes",
    "run_checker",
]
