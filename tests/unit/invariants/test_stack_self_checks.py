"""stack_self_checks: a halt the stack logs through its declared pattern becomes a
violation quoting the stack's reason."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from l2chaos.invariants.base import Verdict
from l2chaos.invariants.synth import RecordWriter
from l2chaos.stacks.perpdex import STACK_FILE

from tests._support.verdicts import not_applicable

Check = Callable[..., Verdict]


def _log(rw: RecordWriter, *lines: dict[str, object]) -> None:
    (rw.dir / "logs").mkdir(exist_ok=True)
    text = "".join(json.dumps(x, separators=(",", ":")) + "\n" for x in lines)
    (rw.dir / "logs" / "sequencer.log").write_text(text)


def _with_stack(rw: RecordWriter, path: str) -> None:
    data = json.loads((rw.dir / "scenario.resolved.json").read_text())
    data["stack"] = {"ref": "perpdex", "name": "perpdex", "path": path}
    rw.write_json("scenario.resolved.json", data)


def _line(level: str, msg: str, **fields: object) -> dict[str, object]:
    return {
        "ts": "t",
        "t_ns": 1,
        "level": level,
        "service": "sequencer",
        "msg": msg,
        "fields": fields,
    }


def test_a_logged_halt_is_a_violation_with_the_reason(rw: RecordWriter, check: Check) -> None:
    _with_stack(rw, str(STACK_FILE))
    reason = "Fatal('state reloaded from the database has root 0xab, block 9 recorded 0xcd')"
    _log(rw, _line("info", "state loaded", block=9), _line("error", "service failed", error=reason))
    v = check("stack_self_checks")
    assert v.status == "fail"
    assert v.violations[0].message == f"sequencer halted itself: {reason}"
    assert v.violations[0].evidence["line"] == 2
    assert v.checked == {"log_lines": 2}


def test_a_clean_log_holds(rw: RecordWriter, check: Check) -> None:
    _with_stack(rw, str(STACK_FILE))
    _log(rw, _line("warning", "write connection lost", error="ConnectionResetError()"))
    v = check("stack_self_checks")
    assert v.status == "pass"
    assert not v.no_work


def test_not_applicable_without_patterns_or_logs(
    rw: RecordWriter, check: Check, tmp_path: Path
) -> None:
    _with_stack(rw, str(STACK_FILE))
    assert check("stack_self_checks").status == "not_applicable"  # no logs kept
    bare = tmp_path / "stack.yaml"
    bare.write_text("name: bare\nservices: {a: {command: [x], port: 1}}\n")
    _with_stack(rw, str(bare))
    _log(rw, _line("error", "fatal", error="x"))
    not_applicable(check("stack_self_checks"), "declares no self_checks")
