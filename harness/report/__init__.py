"""Reports of a checked run, written into the run directory: result.json (versioned,
docs/result-schema.md), junit.xml, report.html (self-contained timeline) and
summary.txt (the terminal summary).

    outcome = l2chaos.invariants.check.check_run(run_dir)
    write_reports(run_dir, outcome)
    print(render_summary(outcome, run_dir))
"""

from __future__ import annotations

from pathlib import Path

from l2chaos.invariants.check import CheckOutcome, bulk_reading

from .html import write_html
from .junit import write_junit
from .result_json import SCHEMA_VERSION, result_dict, write_result_json
from .terminal import render_summary

__all__ = [
    "SCHEMA_VERSION",
    "render_summary",
    "result_dict",
    "write_html",
    "write_junit",
    "write_reports",
    "write_result_json",
]


def write_reports(run_dir: Path | str, outcome: CheckOutcome) -> dict[str, Path]:
    """Write result.json, junit.xml, report.html and summary.txt; return their paths."""
    path = Path(run_dir)
    with bulk_reading():
        out = {
            "result": write_result_json(path, outcome),
            "junit": write_junit(path, outcome),
            "html": write_html(path, outcome, outcome.record),
        }
    summary = path / "summary.txt"
    summary.write_text(render_summary(outcome, path) + "\n", encoding="utf-8")
    out["summary"] = summary
    return out
