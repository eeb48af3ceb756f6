"""stack_self_checks: the stack's own safeguards never halted it. A stack that detects
its own corruption (a state-root self-check on load, a block hash or unique key taken
twice, a commit that can never succeed) stops, and that halt is a finding with the
stack's own words, not a bare "not recovered".

The stack file declares, per service, a regular expression for the log line in which
the service reports such a halt (`self_checks: {sequencer: '...(?P<reason>...)...'}`,
docs/architecture.md); every matching line of `logs/<service>.log` is a violation
quoting its `reason`. Not applicable when the stack declares no self-checks or its
logs were not kept. Work = the services declared.
"""

from __future__ import annotations

import re
from typing import ClassVar

from l2chaos.errors import L2ChaosError
from l2chaos.rundir.scenario import SCENARIO_JSON
from l2chaos.stackspec import load_stack

from .base import Checker, NoParams, Verdict
from .record import RunRecord


class StackSelfChecks(Checker[NoParams]):
    name = "stack_self_checks"
    summary = (
        "The stack's own safeguards (root self-check, hash dedup, unique keys) never "
        "halted it: a halt it logs is a violation quoting the reason it gave."
    )
    needs: ClassVar[tuple[str, ...]] = (SCENARIO_JSON,)

    def check(self, record: RunRecord) -> Verdict:
        stack = record.scenario.stack
        path = None if stack is None else stack.path
        if path is None:
            return self.not_applicable("the scenario record names no stack file")
        try:
            patterns = load_stack(path).self_checks
        except L2ChaosError as exc:
            return self.not_applicable(f"the stack file cannot be read: {exc}")
        if not patterns:
            return self.not_applicable("the stack file declares no self_checks")
        logs = {svc: record.path(f"logs/{svc}.log") for svc in patterns}
        if not any(p.is_file() for p in logs.values()):
            return self.not_applicable("the run kept no logs of the self-checked services")
        found = self.findings()
        lines = {}
        for svc, rx in ((s, re.compile(p)) for s, p in patterns.items()):
            n = 0
            if logs[svc].is_file():
                with logs[svc].open(encoding="utf-8", errors="replace") as fh:
                    for n, line in enumerate(fh, 1):
                        m = rx.search(line)
                        if m:
                            found.add(
                                f"{svc} halted itself: {m.group('reason')}",
                                service=svc,
                                log=f"logs/{svc}.log",
                                line=n,
                                reason=m.group("reason"),
                            )
            lines[svc] = n
        return self.verdict(
            {"log_lines": sum(lines.values())},
            found,
            work=len(patterns),
            what="self-checked services",
            details={"log_lines": lines},
        )
