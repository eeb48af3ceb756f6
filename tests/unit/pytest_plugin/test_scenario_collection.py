"""The pytest11 plugin collects the scenario files a project opted into, and only those,
as test items.

Runs pytest in a subprocess on a scratch project (its own pytest.ini), through the
installed entry point, as in any project of the same environment."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from l2chaos.childproc import run_captured

SCENARIO = """name: {name}
tags: {tags}
stack: perpdex
duration: 10s
timeline: []
invariants: [fund_conservation]
"""


OPT_IN = "l2chaos_scenarios =\n    scenarios/*.yaml\n    scenarios/*.yml\n    *.scenario.yaml\n"


def project(tmp_path: Path, opt_in: str = OPT_IN) -> Path:
    (tmp_path / "pytest.ini").write_text(f"[pytest]\naddopts = -p no:cacheprovider\n{opt_in}")
    sc = tmp_path / "scenarios"
    sc.mkdir()
    (sc / "db_restart.yaml").write_text(
        SCENARIO.format(name="db-restart", tags="[incident, nightly]")
    )
    (sc / "rollback.yml").write_text(SCENARIO.format(name="rollback", tags="[nightly]"))
    (tmp_path / "smoke.scenario.yaml").write_text(SCENARIO.format(name="smoke", tags="[quick]"))
    marked = tmp_path / "elsewhere"
    marked.mkdir()
    (marked / "custom.yaml").write_text(
        "# yaml-language-server: $schema=scenario.schema.json\n# l2chaos: scenario\n"
        + SCENARIO.format(name="custom", tags="[]")
    )
    # YAML that is not a scenario: never collected
    (marked / "config.yaml").write_text("name: not-a-scenario\n")
    (tmp_path / "docker-compose.yml").write_text("services: {}\n")
    (sc / "notes.txt").write_text("not yaml\n")
    return tmp_path


def pytest_in(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_captured([sys.executable, "-m", "pytest", *args], timeout_s=120, cwd=root)


def collected(res: subprocess.CompletedProcess[str]) -> list[str]:
    return sorted(line for line in res.stdout.splitlines() if "::" in line)


def test_collects_scenarios_by_pattern_and_marker_only(tmp_path: Path) -> None:
    root = project(tmp_path)
    res = pytest_in(root, "--collect-only", "-q", ".")
    assert res.returncode == 0, res.stdout + res.stderr
    assert collected(res) == [
        "elsewhere/custom.yaml::custom",
        "scenarios/db_restart.yaml::db-restart",
        "scenarios/rollback.yml::rollback",
        "smoke.scenario.yaml::smoke",
    ]


def test_tags_become_markers_for_selection(tmp_path: Path) -> None:
    root = project(tmp_path)
    res = pytest_in(
        root, "--collect-only", "-q", "--strict-markers", "-m", "nightly and not incident", "."
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert collected(res) == ["scenarios/rollback.yml::rollback"]
    res = pytest_in(root, "--collect-only", "-q", "-m", "l2chaos_scenario and quick", ".")
    assert collected(res) == ["smoke.scenario.yaml::smoke"]


def test_patterns_are_an_ini_option(tmp_path: Path) -> None:
    root = project(tmp_path, "l2chaos_scenarios = *.scenario.yaml\n")
    res = pytest_in(root, "--collect-only", "-q", ".")
    assert collected(res) == ["elsewhere/custom.yaml::custom", "smoke.scenario.yaml::smoke"]


def test_a_project_that_did_not_opt_in_keeps_its_yaml(tmp_path: Path) -> None:
    """An unrelated project in the same environment: its scenarios/fixtures.yaml is its
    own test data, not an l2chaos scenario (it failed with `unknown key 'users'`)."""
    root = project(tmp_path, opt_in="")
    (root / "scenarios" / "fixtures.yaml").write_text("users: [alice, bob]\n")
    (root / "tests").mkdir()
    (root / "tests" / "test_app.py").write_text("def test_app() -> None:\n    pass\n")
    res = pytest_in(root, "--collect-only", "-q", ".")
    # only the file that says it is a scenario
    assert collected(res) == ["elsewhere/custom.yaml::custom", "tests/test_app.py::test_app"]
    (root / "elsewhere" / "custom.yaml").unlink()
    res = pytest_in(root, "-q", ".")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "1 passed" in res.stdout


def test_bad_input_fails_the_item_with_one_clear_line(tmp_path: Path) -> None:
    root = project(tmp_path)
    (root / "scenarios" / "broken.yaml").write_text(
        "name: broken\nstack: perpdex\nduration: soon\n"
    )
    (root / "scenarios" / "badtag.yaml").write_text("name: badtag\ntags: ['has space']\n")
    res = pytest_in(
        root, "-q", "scenarios/broken.yaml", "scenarios/badtag.yaml", "--l2chaos-time-scale", "0.5"
    )
    assert res.returncode == 1, res.stdout + res.stderr
    out = res.stdout
    assert "exit code 2: " in out
    assert "scenarios/broken.yaml" in out
    assert "tags: 'has space' is not usable as a pytest marker" in out
    assert "Traceback" not in out
    assert "2 failed" in out


def test_options_are_registered(tmp_path: Path) -> None:
    res = pytest_in(project(tmp_path), "--help")
    for opt in (
        "--l2chaos-profile",
        "--l2chaos-backend",
        "--l2chaos-time-scale",
        "l2chaos_scenarios",
    ):
        assert opt in res.stdout, opt
