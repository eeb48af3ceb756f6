"""result.json, junit.xml, report.html and the terminal summary of a checked run."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from l2chaos.invariants.check import CheckOutcome, check_run
from l2chaos.invariants.expectations import Expectation, evaluate
from l2chaos.invariants.simulate import generate_run
from l2chaos.report import render_summary, write_reports
from l2chaos.report.junit import junit_tree

Checked = tuple[Path, CheckOutcome]


def test_the_fixture_has_what_the_reports_must_show(checked: Checked) -> None:
    _, out = checked
    by = {v.name: v for v in out.verdicts}
    assert by["no_zero_price_liquidations"].total_violations == 2
    assert by["liquidations_justified"].total_violations == 2
    assert by["acknowledged_writes_durable"].total_violations == 1
    assert len(out.faults) == 5
    assert out.exit_code == 1


def test_result_json_schema(checked: Checked, tmp_path: Path) -> None:
    run, out = checked
    paths = write_reports(run, out)
    doc = json.loads(paths["result"].read_text())
    assert doc["schema_version"] == 1
    for key in (
        "scenario",
        "profile",
        "backend",
        "seed",
        "verdict",
        "exit_code",
        "invariants",
        "faults",
        "coverage",
    ):
        assert key in doc, key
    assert doc["verdict"] == "fail"
    assert doc["exit_code"] == 1
    assert doc["scenario"] == "synthetic"
    assert doc["profile"] == "hardened"
    inv = {i["name"]: i for i in doc["invariants"]}
    assert set(inv) == {v.name for v in out.verdicts}
    for i in doc["invariants"]:
        assert isinstance(i["ok"], bool)
        assert isinstance(i["checked"], dict)
        assert isinstance(i["violations"], list)
        assert i["status"] in ("pass", "fail", "not_applicable", "error")
    z = inv["no_zero_price_liquidations"]
    assert not z["ok"]
    assert z["violation_count"] == 2
    assert {v["evidence"]["account"] for v in z["violations"]} == {4242, 4343}
    assert z["role"] == "must_hold"
    assert z["as_expected"] is False
    for f in doc["faults"]:
        assert set(f) >= {
            "name",
            "target",
            "scheduled_at",
            "injected_at",
            "healed_at",
            "lateness_ms",
            "recovery_s",
        }
    restart = doc["faults"][0]
    assert restart["name"] == "process.restart_race"
    assert restart["recovery_s"] is not None
    assert len(doc["coverage"]["windows"]) == 5
    assert doc["coverage"]["windows"][0]["counts"]["ops"] > 0
    assert doc["expectation"]["met"] is False


# junit: the structure of Jenkins' junit-10.xsd, which CI JUnit readers accept
_ALLOWED = {
    "testsuites": ({"name", "time", "tests", "failures", "disabled", "errors"}, {"testsuite"}),
    "testsuite": (
        {
            "name",
            "tests",
            "failures",
            "errors",
            "time",
            "disabled",
            "skipped",
            "timestamp",
            "hostname",
            "id",
            "package",
            "file",
            "log",
            "url",
            "version",
            "group",
        },
        {"properties", "testcase", "system-out", "system-err"},
    ),
    "properties": (set(), {"property"}),
    "property": ({"name", "value"}, set()),
    "testcase": (
        {
            "name",
            "assertions",
            "time",
            "classname",
            "status",
            "class",
            "file",
            "line",
            "log",
            "group",
            "url",
        },
        {"skipped", "error", "failure", "system-out", "system-err"},
    ),
    "skipped": ({"message"}, set()),
    "error": ({"message", "type"}, set()),
    "failure": ({"message", "type"}, set()),
    "system-out": (set(), set()),
    "system-err": (set(), set()),
}
_REQUIRED = {"testsuite": {"name", "tests"}, "testcase": {"name"}, "property": {"name", "value"}}


def _validate(el: ET.Element) -> None:
    attrs, children = _ALLOWED[el.tag]
    assert set(el.attrib) <= attrs, (el.tag, set(el.attrib) - attrs)
    assert _REQUIRED.get(el.tag, set()) <= set(el.attrib), el.tag
    for c in el:
        assert c.tag in children, (el.tag, c.tag)
        _validate(c)
    if el.tag == "testsuite":
        order = [c.tag for c in el]
        rank = {"properties": 0, "testcase": 1, "system-out": 2, "system-err": 3}
        assert order == sorted(order, key=rank.__getitem__), order
        assert order.count("system-out") <= 1
    if el.tag == "testcase":
        order = [c.tag for c in el]
        assert order.count("skipped") <= 1
        # skipped, then error/failure, then system-out/err
        rank = {"skipped": 0, "error": 1, "failure": 1, "system-out": 2, "system-err": 3}
        assert order == sorted(order, key=rank.__getitem__), order
        assert not ({"skipped", "failure"} <= set(order))
    for key in ("tests", "failures", "errors", "skipped"):
        if key in el.attrib:
            assert el.attrib[key].isdigit()
    if "time" in el.attrib:
        float(el.attrib["time"])


def test_junit_is_valid_and_carries_the_evidence(checked: Checked) -> None:
    run, out = checked
    write_reports(run, out)
    root = ET.parse(run / "junit.xml").getroot()
    _validate(root)
    suite = root.find("testsuite")
    assert suite is not None
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert set(cases) == {v.name for v in out.verdicts} | {"sometimes", "expectation[hardened]"}
    assert suite.get("tests") == str(len(cases))
    failed = {n for n, c in cases.items() if c.find("failure") is not None}
    assert failed == {
        "no_zero_price_liquidations",
        "liquidations_justified",
        "acknowledged_writes_durable",
        # the corrupted liquidations moved no value: their transfers are missing
        "value_flows",
        "expectation[hardened]",
    }
    assert suite.get("failures") == "5"
    text = cases["no_zero_price_liquidations"].findtext("failure") or ""
    assert '"account": 4242' in text
    assert "2 violation(s)" in text
    coverage = suite.findtext("system-out") or ""
    assert "coverage process.restart_race#0 (process.restart_race -> db): ops " in coverage
    assert re.search(
        r"fault process\.restart_race#0: injected at [\d.]+s, healed at [\d.]+s, recovery 1\.\d+s",
        coverage,
    )
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["profile"] == "hardened"
    assert props["exit_code"] == "1"


def test_junit_expected_violation_passes_with_evidence(checked: Checked) -> None:
    _, out = checked
    exp = Expectation(violated=("no_zero_price_liquidations", "fund_conservation"))
    out2 = CheckOutcome(
        **{
            **out.__dict__,
            "profile": "vulnerable",
            "expectation": evaluate(exp, "vulnerable", out.verdicts, out.sometimes),
        }
    )
    suite = junit_tree(out2).getroot().find("testsuite")
    assert suite is not None
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    caught = cases["no_zero_price_liquidations"]
    assert caught.find("failure") is None
    assert "expected to be violated, and it was" in (caught.findtext("system-out") or "")
    assert '"account": 4343' in (caught.findtext("system-out") or "")
    missed = cases["fund_conservation"].find("failure")
    assert missed is not None
    assert missed.get("type") == "ExpectationNotMet"
    assert "expected to be violated, but it was pass" in (missed.get("message") or "")
    # others are reported, not judged: a violated one passes with its findings in the output
    reported = cases["liquidations_justified"]
    assert reported.find("failure") is None
    assert "reported only" in (reported.findtext("system-out") or "")
    assert cases["expectation[vulnerable]"].find("failure") is not None


def test_html_is_self_contained_with_bands_and_violation_rows(checked: Checked) -> None:
    run, out = checked
    write_reports(run, out)
    html = (run / "report.html").read_text()
    assert html.count('class="fault-band"') == len(out.faults) == 5
    total = sum(v.total_violations for v in out.all_verdicts())
    # 5 planted, plus value_flows' 6: each bad liquidation moved nothing for 3 accounts
    assert html.count('<tr class="violation"') == total == 11
    assert "default-src 'none'" in html
    # nothing to fetch: no src/href attributes, no URLs but the SVG namespace
    assert not re.search(r"\s(src|href)=", html)
    assert set(re.findall(r"https?://[^\s\"'<>]+", html)) <= {"http://www.w3.org/2000/svg"}
    for needle in (
        "throughput",
        "error rate",
        "latency",
        "oracle reference vs price used",
        "liquidations",
        "block height",
    ):
        assert needle in html, needle
    assert html.count('<tr class="fault">') == 5


def test_terminal_summary(checked: Checked) -> None:
    run, out = checked
    text = render_summary(out, run)
    lines = text.splitlines()
    for v in out.verdicts:
        assert any(
            line.strip().startswith(("PASS", "FAIL", "N/A", "ERR")) and f" {v.name} " in line
            for line in lines
        ), v.name
    assert "  FAIL  no_zero_price_liquidations" in text
    assert "2 violation(s)" in text
    assert "worst violations:" in text
    assert "account 4242 liquidated on BTC-USD-PERP" in text
    assert re.search(
        r"process\.restart_race#0 \(process\.restart_race -> db\): at \d+\.\d\ds, late 0\.0ms, recovery 1\.\d\ds",
        text,
    )
    assert "expectation (hardened: all invariants hold): NOT MET, exit code 1" in text
    assert text.endswith(f"report: {run / 'report.html'}")
    write_reports(run, out)
    assert (run / "summary.txt").read_text().strip() == text


def test_reports_of_a_run_that_broke_early(tmp_path: Path) -> None:
    """Only the scenario and run.json exist (the stack never came up): every report is
    still written, says not_applicable, and carries exit code 3."""
    from l2chaos.invariants.check import check_run
    from l2chaos.invariants.synth import RecordWriter

    run = tmp_path / "run"
    with RecordWriter(run) as rw:
        rw.scenario(
            invariants=[
                {"name": "fund_conservation", "params": {}},
                {"name": "steady_state", "params": {}},
            ]
        )
        rw.run(phase="aborted", error="sequencer: exited 1 before ready")
    out = check_run(run)
    assert out.exit_code == 3
    paths = write_reports(run, out)
    doc = json.loads(paths["result"].read_text())
    assert doc["exit_code"] == 3
    assert [i["status"] for i in doc["invariants"]] == ["not_applicable", "not_applicable"]
    assert doc["expectation"]["harness_error"] == "sequencer: exited 1 before ready"
    root = ET.parse(paths["junit"]).getroot()
    _validate(root)
    assert root.get("errors") == "1"
    html = paths["html"].read_text()
    assert html.count('class="fault-band"') == 0
    assert "harness error: sequencer: exited 1 before ready" in html
    assert "harness error: sequencer: exited 1 before ready" in paths["summary"].read_text()


def test_html_plots_an_open_loop_rate_target_and_achieved(tmp_path: Path) -> None:
    run = tmp_path / "run"
    generate_run(run, ops=300, blocks=80, seed=5)
    out = check_run(run)
    write_reports(run, out)
    assert "open-loop rate" not in (run / "report.html").read_text()  # closed loop
    (run / "load").mkdir(exist_ok=True)
    (run / "load" / "rate.jsonl").write_text(
        "".join(
            json.dumps({"t_s": t, "target": 100.0, "offered": 100, "achieved": a, "dropped": 0})
            + "\n"
            for t, a in ((1, 100), (2, 97), (3, 60))
        )
    )
    write_reports(run, out)
    html = (run / "report.html").read_text()
    assert "open-loop rate (steps/s)" in html
    target = re.search(r'data-series="target"[^>]*points="([^"]*)"', html)
    achieved = re.search(r'data-series="achieved"[^>]*points="([^"]*)"', html)
    assert target is not None
    assert achieved is not None
    assert len(target.group(1).split()) == len(achieved.group(1).split()) == 3
