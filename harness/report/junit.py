"""junit.xml: one testcase per invariant, one for `sometimes`, one for the expectation.

The layout follows the JUnit XML that CI systems read (Jenkins' junit-10.xsd, GitLab,
GitHub actions): `testsuites` > `testsuite` (with `properties`) > `testcase`, where a
testcase holds at most one of `skipped`, `failure`, `error`, then `system-out`.

What passes is decided by the expectation of the profile that ran, not by the checker
alone: an invariant expected to be violated that was violated is a passing testcase
with its evidence in `system-out`; one that was expected to be violated but held is a
failure. With `all_hold` (or no expect) every invariant that did not pass, including
`not_applicable`, is a failure. Invariants the expectation does not judge (the others
under `violated: [...]`) pass with their findings in `system-out`, or are skipped when
not applicable. A checker that could not read the record is an `error`.
"""

from __future__ import annotations

import json
import re
import socket
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

from l2chaos.invariants.base import Verdict
from l2chaos.invariants.check import CheckOutcome

__all__ = ["junit_tree", "write_junit"]

_BAD_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_EVIDENCE_SHOWN = 25


def _clean(text: str) -> str:
    return _BAD_XML.sub("?", text)


def _counts(v: Verdict) -> str:
    return ", ".join(f"{k} {n}" for k, n in v.checked.items()) or "nothing"


def _evidence(v: Verdict) -> str:
    lines = [
        f"{v.name}: {v.status}; checked {_counts(v)}; {v.total_violations} violation(s)",
    ]
    if v.reason:
        lines.append(f"reason: {v.reason}")
    for viol in v.violations[:_EVIDENCE_SHOWN]:
        lines.append(f"- {viol.message}")
        lines.append("  evidence: " + json.dumps(viol.evidence, sort_keys=True, default=str))
    more = v.total_violations - min(len(v.violations), _EVIDENCE_SHOWN)
    if more > 0:
        lines.append(f"... and {more} more (see result.json and report.html)")
    return "\n".join(lines)


def _first(v: Verdict) -> str:
    return v.violations[0].message if v.violations else v.reason or v.status


def _case(parent: ET.Element, classname: str, v: Verdict, role: str | None, ok: bool) -> ET.Element:
    tc = ET.SubElement(
        parent, "testcase", name=v.name, classname=classname, time=f"{v.seconds:.3f}"
    )
    text = _evidence(v)
    if v.status == "error":
        el = ET.SubElement(tc, "error", message=_clean(v.reason)[:500], type="HarnessError")
        el.text = _clean(text)
    elif role == "must_be_violated":
        if ok:
            text = f"expected to be violated, and it was\n{text}"
        else:
            el = ET.SubElement(
                tc,
                "failure",
                message=_clean(f"expected to be violated, but it was {v.status}: {_first(v)}")[
                    :500
                ],
                type="ExpectationNotMet",
            )
            el.text = _clean(text)
    elif role == "reported":
        if v.status == "not_applicable":
            ET.SubElement(tc, "skipped", message=_clean(f"not applicable: {v.reason}")[:500])
        elif v.status == "fail":
            text = f"violated, reported only: the expectation does not judge this invariant\n{text}"
    elif not ok:
        kind = "NotApplicable" if v.status == "not_applicable" else "InvariantViolated"
        el = ET.SubElement(tc, "failure", message=_clean(_first(v))[:500], type=kind)
        el.text = _clean(text)
    out = ET.SubElement(tc, "system-out")
    out.text = _clean(text)
    return tc


def junit_tree(outcome: CheckOutcome) -> ET.ElementTree[ET.Element]:
    exp = outcome.expectation
    suite_name = f"l2chaos.{outcome.scenario}" + (f"[{outcome.profile}]" if outcome.profile else "")
    classname = f"l2chaos.{outcome.scenario}"
    root = ET.Element("testsuites", name="l2chaos")
    suite = ET.SubElement(
        root,
        "testsuite",
        name=suite_name,
        timestamp=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
        hostname=socket.gethostname(),
    )
    props = ET.SubElement(suite, "properties")
    for key, value in (
        ("scenario", outcome.scenario),
        ("profile", outcome.profile),
        ("backend", outcome.backend),
        ("seed", outcome.seed),
        ("run_id", outcome.run_id),
        ("run_dir", outcome.run_dir),
        ("exit_code", outcome.exit_code),
    ):
        ET.SubElement(props, "property", name=key, value=_clean(str(value)))
    for v in outcome.all_verdicts():
        _case(suite, classname, v, exp.roles.get(v.name), exp.satisfied.get(v.name, v.ok))
    # The expectation itself.
    tc = ET.SubElement(
        suite,
        "testcase",
        name=f"expectation[{outcome.profile}]",
        classname=classname,
        time=f"{outcome.seconds:.3f}",
    )
    lines = [f"expectation: {exp.text}", f"met: {exp.met}; exit code {exp.exit_code}"]
    lines += [f"- {p}" for p in exp.problems]
    if exp.harness_error:
        lines.append(f"harness error: {exp.harness_error}")
        el = ET.SubElement(
            tc, "error", message=_clean(exp.harness_error)[:500], type="HarnessError"
        )
        el.text = _clean("\n".join(lines))
    elif not exp.met:
        el = ET.SubElement(
            tc,
            "failure",
            message=_clean("; ".join(exp.problems) or "expectation not met")[:500],
            type="ExpectationNotMet",
        )
        el.text = _clean("\n".join(lines))
    out = ET.SubElement(tc, "system-out")
    out.text = _clean("\n".join(lines))

    # Coverage per fault window, for the suite (every report shows the counts).
    cov_lines = []
    for w in outcome.windows:
        counts = ", ".join(f"{k} {n}" for k, n in w.counts.items())
        cov_lines.append(f"coverage {w.label} ({w.name} -> {w.target or '-'}): {counts}")
    run_counts = outcome.run_counts
    if run_counts:
        cov_lines.append(
            "coverage over the run: " + ", ".join(f"{k} {n}" for k, n in run_counts.items())
        )
    for f in outcome.faults:
        rec = f.recovery_s
        cov_lines.append(
            f"fault {f.record.label}: injected at {f.injected_at}s, healed at {f.healed_at}s, "
            f"recovery {'-' if rec is None else f'{rec}s'}"
        )
    suite_out = ET.SubElement(suite, "system-out")
    suite_out.text = _clean("\n".join(cov_lines))

    cases = suite.findall("testcase")
    failures = sum(1 for c in cases if c.find("failure") is not None)
    errors = sum(1 for c in cases if c.find("error") is not None)
    skipped = sum(1 for c in cases if c.find("skipped") is not None)
    total_time = sum(float(c.get("time", "0")) for c in cases)
    for el in (suite, root):
        el.set("tests", str(len(cases)))
        el.set("failures", str(failures))
        el.set("errors", str(errors))
        el.set("time", f"{total_time:.3f}")
    suite.set("skipped", str(skipped))
    return ET.ElementTree(root)


def write_junit(run_dir: Path, outcome: CheckOutcome) -> Path:
    path = run_dir / "junit.xml"
    tree = junit_tree(outcome)
    ET.indent(tree)
    tmp = path.with_suffix(".xml.tmp")
    tree.write(tmp, encoding="utf-8", xml_declaration=True)
    tmp.replace(path)
    return path
