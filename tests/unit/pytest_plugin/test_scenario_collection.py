"""The pytest11 plugin collects scenario files, and only those, as test items.

Runs pytest in a subprocess on a scratch project (its own pytest.ini, so the
collection rules are the plugin's defaults), through the installed entry point."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCENARIO = """name: {name}
tags: {tags}
stack: perpdex
duration: 10s
timeline: []
invariants: [fund_conservation]
"""


def project(tmp_path: Path) -> Path:
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\n")
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
        "# l2chaos: scenario\n" + SCENARIO.format(name="custom", tags="[]")
    )
    # YAML that is not a scenario: never collected
    (marked / "config.yaml").write_text("name: not-a-scenario\n")
    (tmp_path / "docker-compose.yml").write_text("services: {}\n")
    (sc / "notes.txt").write_text("not yaml\n")
    return tmp_path


def pytest_in(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
    )


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
    root = project(tmp_path)
    (root / "pytest.ini").write_text("[pytest]\nl2chaos_scenario_patterns = *.scenario.yaml\n")
    res = pytest_in(root, "--collect-only", "-q", ".")
    assert collected(res) == ["elsewhere/custom.yaml::custom", "smoke.scenario.yaml::smoke"]


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
        "l2chaos_scenario_patterns",
    ):
        assert opt in res.stdout, opt
