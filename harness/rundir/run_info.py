"""run.json: what the run was and how far it got (docs/architecture.md, "Run directory").

The runner writes a `RunInfo` when the run starts and replaces fields as it goes
(`RunDir.update_run`); `l2chaos check` reads the same type back. `record_version`
says which format the whole run directory has: a reader takes the versions in
`READABLE_VERSIONS` and refuses any other with one message naming both.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from l2chaos.errors import UsageError

from .json_types import JsonObject

__all__ = [
    "LEGACY_VERSION",
    "READABLE_VERSIONS",
    "RECORD_VERSION",
    "RUN_JSON",
    "RecordVersionError",
    "RunInfo",
]

RUN_JSON = "run.json"

# The format of the run directory this l2chaos writes. Bump it when a file changes in a
# way an older reader would misread, and keep reading the previous one.
RECORD_VERSION = 1
# run.json without `record_version`: every run written before 2026-12-04. Version 1
# only added the field, so the files read the same.
LEGACY_VERSION = 0
READABLE_VERSIONS = (LEGACY_VERSION, RECORD_VERSION)


class RecordVersionError(UsageError):
    """The run directory has a record format this l2chaos does not read (exit 2)."""


def _describe_readable() -> str:
    names = [
        f"{v} (run.json without record_version)" if v == LEGACY_VERSION else str(v)
        for v in READABLE_VERSIONS
    ]
    return f"{', '.join(names[:-1])} and {names[-1]}"


def record_version(data: Mapping[str, Any], file: Path | str) -> int:
    """The record format version of a run.json, or RecordVersionError."""
    if "record_version" not in data:
        return LEGACY_VERSION
    v = data["record_version"]
    if isinstance(v, int) and not isinstance(v, bool) and v in READABLE_VERSIONS:
        return v
    raise RecordVersionError(
        f"the run record has record_version {v!r}; this l2chaos reads record versions "
        f"{_describe_readable()}; a newer record needs a newer l2chaos",
        file=file,
        field="record_version",
    )


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _str(v: Any) -> str | None:
    return v if isinstance(v, str) else None


def _text(v: Any) -> str | None:
    """A message field: anything truthy reads as text, as the runner wrote it."""
    return str(v) if v else None


@dataclass(frozen=True)
class RunInfo:
    """run.json. Every field is optional: a killed run leaves what it wrote so far."""

    run_id: str | None = None
    scenario: str | None = None
    profile: str | None = None
    backend: str | None = None
    seed: int | None = None
    time_scale: float | None = None
    duration_ns: int | None = None
    phase: str | None = None  # starting, stack up, running, winding down, finished, ...
    started_t_ns: int | None = None
    t0_ns: int | None = None  # time zero, host UTC
    t0_mono_ns: int | None = None
    baseline_block: int | None = None
    ended_t_ns: int | None = None  # the stack is down
    pid: int | None = None
    versions: dict[str, str] = field(default_factory=dict)
    stack: JsonObject | None = None  # RunningStack.describe()
    problems: list[str] = field(default_factory=list)
    error: str | None = None  # why an aborted run stopped
    harness_error: str | None = None
    report_error: str | None = None
    exit_code: int | None = None
    record_version: int = RECORD_VERSION
    # keys this version does not name, kept so that an update never drops them
    extra: JsonObject = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Any, file: Path | str = RUN_JSON) -> RunInfo:
        """Read run.json of any readable version; a wrong field type reads as absent."""
        if not isinstance(data, Mapping):
            return cls(record_version=LEGACY_VERSION)
        problems = data.get("problems")
        time_scale = data.get("time_scale")
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(
            run_id=_str(data.get("run_id")),
            scenario=_str(data.get("scenario")),
            profile=_str(data.get("profile")),
            backend=_str(data.get("backend")),
            seed=_int(data.get("seed")),
            time_scale=float(time_scale) if isinstance(time_scale, (int, float)) else None,
            duration_ns=_int(data.get("duration_ns")),
            phase=_str(data.get("phase")),
            started_t_ns=_int(data.get("started_t_ns")),
            t0_ns=_int(data.get("t0_ns")),
            t0_mono_ns=_int(data.get("t0_mono_ns")),
            baseline_block=_int(data.get("baseline_block")),
            ended_t_ns=_int(data.get("ended_t_ns")),
            pid=_int(data.get("pid")),
            versions={str(k): str(x) for k, x in v.items()}
            if isinstance(v := data.get("versions"), Mapping)
            else {},
            stack=dict(s) if isinstance(s := data.get("stack"), Mapping) else None,
            problems=[str(p) for p in problems] if isinstance(problems, list) else [],
            error=_text(data.get("error")),
            harness_error=_text(data.get("harness_error")),
            report_error=_text(data.get("report_error")),
            exit_code=_int(data.get("exit_code")),
            record_version=record_version(data, file),
            extra={k: v for k, v in data.items() if k not in known},
        )

    def to_json(self) -> JsonObject:
        out: JsonObject = {"record_version": self.record_version}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in ("record_version", "extra") or value is None:
                continue
            out[f.name] = value
        out.update(self.extra)
        return out
