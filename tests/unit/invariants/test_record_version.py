"""The run record's format: `check` reads the current and the previous version
(data/run-v0: run.json without `record_version`, as runs were written before
2026-12-04) and refuses any other with one message naming both versions (exit 2);
it reads back the very types the runner writes (RunInfo, ResolvedScenario, Sample)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from l2chaos.chainrecord import Block
from l2chaos.errors import UsageError
from l2chaos.invariants.check import check_run
from l2chaos.invariants.record import RunRecord
from l2chaos.rundir import RunDir
from l2chaos.rundir.probes import Sample
from l2chaos.rundir.run_info import (
    LEGACY_VERSION,
    RECORD_VERSION,
    RecordVersionError,
    RunInfo,
)
from l2chaos.rundir.scenario import SCENARIO_JSON, ResolvedScenario
from l2chaos.scenario import load_scenario

from tests._support.cli import l2chaos

V0_RUN = Path(__file__).parent / "data" / "run-v0"


def copy_of_v0(tmp_path: Path, **run_json: Any) -> Path:
    run_dir = tmp_path / "run"
    shutil.copytree(V0_RUN, run_dir)
    if run_json:
        info = json.loads((run_dir / "run.json").read_text())
        info.update(run_json)
        (run_dir / "run.json").write_text(json.dumps(info))
    return run_dir


def test_the_previous_format_is_read() -> None:
    assert "record_version" not in json.loads((V0_RUN / "run.json").read_text())
    outcome = check_run(V0_RUN)
    assert outcome.record is not None
    assert outcome.record.run_info.record_version == LEGACY_VERSION
    assert outcome.run_id == "20260119T042754Z-synthetic-hardened-0a1b"
    assert outcome.t0_ns == 1_768_800_000_000_000_000
    assert outcome.expectation.harness_error is None
    held = {v.name: v.status for v in outcome.verdicts}
    assert held["chain_consistency"] == "pass"
    assert held["fund_conservation"] == "pass"
    assert outcome.run_counts["ops"] == 40


def test_the_current_version_reads_as_the_previous_one(tmp_path: Path) -> None:
    old = check_run(V0_RUN)
    new = check_run(copy_of_v0(tmp_path, record_version=RECORD_VERSION))
    assert [(v.name, v.status) for v in new.verdicts] == [(v.name, v.status) for v in old.verdicts]
    assert new.coverage_json() == old.coverage_json()


@pytest.mark.parametrize("version", [RECORD_VERSION + 1, "two", None, 1.5, True])
def test_an_unknown_version_is_refused_naming_both(tmp_path: Path, version: object) -> None:
    run_dir = copy_of_v0(tmp_path, record_version=version)
    with pytest.raises(RecordVersionError) as err:
        check_run(run_dir)
    msg = str(err.value)
    assert msg.startswith(f"{run_dir / 'run.json'}: record_version: ")
    assert f"has record_version {version!r}" in msg
    assert f"reads record versions {LEGACY_VERSION} (run.json without record_version)" in msg
    assert f" and {RECORD_VERSION};" in msg


def test_the_cli_refuses_an_unknown_version_with_exit_2(tmp_path: Path) -> None:
    run_dir = copy_of_v0(tmp_path, record_version=RECORD_VERSION + 1)
    done = l2chaos("check", str(run_dir))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert f"has record_version {RECORD_VERSION + 1}" in done.stderr + done.stdout
    assert not (run_dir / "result.json").exists()


def test_the_runner_writer_stamps_the_version_and_keeps_it(tmp_path: Path) -> None:
    rd = RunDir.create(tmp_path, "s")
    rd.write_run(RunInfo(run_id=rd.run_id, phase="starting"))
    rd.update_run(phase="running", t0_ns=5)
    data = json.loads(rd.file("run.json").read_text())
    assert data["record_version"] == RECORD_VERSION
    assert rd.read_run() == RunInfo(
        run_id=rd.run_id, phase="running", t0_ns=5, record_version=RECORD_VERSION
    )
    with pytest.raises(TypeError):
        rd.update_run(phaze="typo")


def test_keys_it_does_not_name_survive_an_update(tmp_path: Path) -> None:
    rd = RunDir.create(tmp_path, "s")
    rd.file("run.json").write_text(json.dumps({"phase": "starting", "l7": {"port": 1}}))
    rd.update_run(phase="finished")
    data = json.loads(rd.file("run.json").read_text())
    assert data["l7"] == {"port": 1}
    assert data["record_version"] == LEGACY_VERSION


SCENARIOS = sorted((Path(__file__).parents[3] / "scenarios").glob("*.yaml"))


@pytest.mark.parametrize("path", SCENARIOS[:6], ids=lambda p: p.stem)
def test_check_reads_the_scenario_type_the_runner_writes(path: Path) -> None:
    written = load_scenario(path).resolved()
    as_file = json.loads(json.dumps(written.to_json()))
    assert ResolvedScenario.from_json(as_file) == written


@pytest.mark.parametrize(
    ("change", "field", "problem"),
    [
        ({"invariants": {"name": "x"}}, "invariants", "expected a list of {name, params}"),
        ({"invariants": [{"params": {}}]}, "invariants[0]", "expected {name, params}"),
        ({"tags": "fast"}, "tags", "expected a list of strings"),
        ({"seed": "one"}, "seed", "expected an integer, got 'one'"),
        ({"expect": {"hardened": True}}, "expect.hardened", "expected an object, got bool"),
        ({"stack": {"path": 3}}, "stack.path", "expected a string, got 3"),
    ],
)
def test_a_scenario_record_of_the_wrong_shape_names_the_field(
    tmp_path: Path, change: dict[str, Any], field: str, problem: str
) -> None:
    run_dir = copy_of_v0(tmp_path)
    scenario = json.loads((run_dir / SCENARIO_JSON).read_text())
    (run_dir / SCENARIO_JSON).write_text(json.dumps({**scenario, **change}))
    with pytest.raises(UsageError) as err:
        check_run(run_dir)
    assert str(err.value).startswith(f"{run_dir / SCENARIO_JSON}: {field}: {problem}")


def test_a_probe_sample_reads_back_as_written(tmp_path: Path) -> None:
    head = Block(7, "0xab", "0xaa")
    written = Sample(5, 6, {"db": True}, {"db": False}, 7, None, None, "timeout", head)
    (tmp_path / "probes.jsonl").write_text(
        json.dumps(written.to_json()) + "\n" + '{"mono_ns": 1}\n'  # no time: skipped
    )
    assert list(RunRecord(tmp_path).samples()) == [written]
    run_dir = copy_of_v0(tmp_path)
    samples = list(RunRecord(run_dir).samples())
    assert len(samples) == len((run_dir / "probes.jsonl").read_text().splitlines())
    assert all(s.healthy == (s.order_ok is True) for s in samples)
