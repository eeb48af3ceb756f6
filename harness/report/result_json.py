"""result.json: the machine-readable verdict (schema in docs/result-schema.md)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from l2chaos.invariants.check import CheckOutcome

__all__ = ["SCHEMA_VERSION", "result_dict", "write_result_json"]

SCHEMA_VERSION = 1


def _tool_version() -> str:
    try:
        return version("l2chaos")
    except PackageNotFoundError:
        return "unknown"


def result_dict(outcome: CheckOutcome) -> dict[str, Any]:
    """The result document (a plain JSON-able dict)."""
    exp = outcome.expectation
    invariants = []
    for v in outcome.verdicts:
        entry = v.to_json()
        entry["role"] = exp.roles.get(v.name)
        entry["as_expected"] = exp.satisfied.get(v.name)
        invariants.append(entry)
    sometimes = None
    if outcome.sometimes is not None:
        sometimes = outcome.sometimes.to_json()
        sometimes["as_expected"] = exp.satisfied.get(outcome.sometimes.name)
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "l2chaos", "version": _tool_version()},
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "run_id": outcome.run_id,
        "run_dir": str(outcome.run_dir),
        "scenario": outcome.scenario,
        "description": outcome.description,
        "tags": outcome.tags,
        "profile": outcome.profile,
        "backend": outcome.backend,
        "seed": outcome.seed,
        "verdict": outcome.verdict,
        "exit_code": outcome.exit_code,
        "expectation": exp.to_json(),
        "invariants": invariants,
        "sometimes": sometimes,
        "faults": [f.to_json() for f in outcome.faults],
        "coverage": outcome.coverage_json(),
        "timing": {
            "t0_ns": outcome.t0_ns,
            "end_ns": outcome.end_ns,
            "check_seconds": round(outcome.seconds, 3),
        },
    }


def write_result_json(run_dir: Path, outcome: CheckOutcome) -> Path:
    path = run_dir / "result.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result_dict(outcome), indent=2, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path
