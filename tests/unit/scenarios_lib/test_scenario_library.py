"""The shipped scenario library: every scenario validates on every profile of its stack,
the library has the shape the docs promise (incident replays with an expectation and
coverage proof per profile, coverage scenarios, a soak kept out of CI), and the
generated catalogues in docs/ equal what `l2chaos list ... --markdown` prints."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from l2chaos.catalogue import scenario_files
from l2chaos.scenario import Scenario, load_scenario

from tests._support.cli import l2chaos as run_l2chaos

ROOT = Path(__file__).resolve().parents[3]
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))
DOCS = ROOT / "docs"

INCIDENTS = {
    "lighter-2025-10-10-load-spike",
    "paradex-2026-01-19-db-restart-race",
    "paradex-2026-01-19-post-only-band",
    "dydx-2025-10-10-oracle-restart-order",
    "chain-rollback-recovery",
}
KINDS = ("incident", "coverage", "soak")
# CI runs every scenario but the soak; .ci/run has 30 minutes for everything.
CI_MAX_DURATION_NS = 60 * 1_000_000_000
# Scenarios CI runs at a time scale (the times halved, the rates kept): the load-spike
# replay keeps the incident's 60 s spike in the file.
CI_TIME_SCALE = {"lighter-2025-10-10-load-spike": 0.5}


def _load(path: Path, profile: str | None = None, **kw: Any) -> Scenario:
    return load_scenario(path, profile=profile, **kw)


def _ids(paths: list[Path]) -> list[str]:
    return [p.stem for p in paths]


def test_the_library_is_there() -> None:
    names = {p.stem for p in SCENARIOS}
    assert names >= INCIDENTS
    assert len([p for p in SCENARIOS if "coverage" in _load(p).tags]) >= 5
    assert [p.stem for p in SCENARIOS if "soak" in _load(p).tags] == ["nemesis-soak"]
    # the package data is what `l2chaos list scenarios` reads
    assert {p.name for p in scenario_files()} == {p.name for p in SCENARIOS}


@pytest.mark.parametrize("path", SCENARIOS, ids=_ids(SCENARIOS))
def test_validates_on_every_profile(path: Path) -> None:
    base = _load(path)
    assert base.name == path.stem, "the file is named after the scenario"
    profiles = list(base.stack.spec.profiles)
    assert profiles, "the shipped scenarios run on stacks with profiles"
    for profile in profiles:
        sc = _load(path, profile)
        assert sc.profile == profile
        # the profile, plus what the scenario switches on top of it (the same on each)
        declared = (yaml.safe_load(path.read_text()).get("stack") or {}).get("switches") or {}
        assert sc.stack.switches == {**base.stack.spec.profiles[profile], **declared}
        # the time scale the README and the docs use: everything still fits
        _load(path, profile, time_scale=0.5)


@pytest.mark.parametrize("path", SCENARIOS, ids=_ids(SCENARIOS))
def test_shape(path: Path) -> None:
    sc = _load(path)
    kinds = [k for k in KINDS if k in sc.tags]
    assert len(kinds) == 1, f"exactly one of {KINDS} in tags, got {sc.tags}"
    assert len(sc.description.split()) >= 40, "a description says what it models and expects"
    assert sc.load is not None, "faults act under trader load"
    spikes = sc.load.rate.spikes() if sc.load.rate is not None else []
    assert sc.timeline or spikes, "every shipped scenario injects faults (or a load spike)"
    assert sc.invariants, "every shipped scenario names its invariants"
    assert sc.load.users > 0
    profiles = list(sc.stack.spec.profiles)
    assert set(sc.expect) == set(profiles), "an expectation per profile, stated"
    if kinds[0] != "soak":
        ci_ns = sc.duration_ns * CI_TIME_SCALE.get(sc.name, 1.0)
        assert ci_ns <= CI_MAX_DURATION_NS, "kept short for CI"
    # a pass is never vacuous: some rule proves a fault window (or, for a load spike
    # alone, the run) saw the work
    labels = {f.label for f in sc.timeline} or {"run"}
    for profile in profiles:
        rules = [r for r in sc.sometimes if r.applies_to(profile)]
        assert any(r.during in labels for r in rules), (profile, [r.text() for r in rules])


@pytest.mark.parametrize("name", sorted(INCIDENTS))
def test_incident_replays_catch_vulnerable_and_pass_hardened(name: str) -> None:
    sc = _load(ROOT / "scenarios" / f"{name}.yaml")
    assert "incident" in sc.tags
    assert sc.expect["vulnerable"].violated, "vulnerable must be caught by named invariants"
    assert sc.expect["hardened"].all_hold
    for inv in sc.expect["vulnerable"].violated:
        assert inv in {i.name for i in sc.invariants}
    # the description points at the real incident it replays
    assert re.search(r"20(25|26)", sc.description), "the incident's date"


def test_generated_catalogues_match_the_code() -> None:
    # the built-in catalogue: a plugin installed in this venv does not belong in docs/
    env = {**os.environ, "L2CHAOS_NO_PLUGINS": "1"}
    for what in ("faults", "invariants"):
        done = run_l2chaos("list", what, "--markdown", env=env)
        assert done.returncode == 0, done.stderr
        doc = (DOCS / f"{what}.md").read_text()
        assert doc == done.stdout, (
            f"docs/{what}.md is out of date: regenerate it with "
            f"`l2chaos list {what} --markdown > docs/{what}.md`"
        )


def _yaml_blocks(md: Path) -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", md.read_text(), flags=re.S)


def test_the_worked_example_in_the_docs_validates(tmp_path: Path) -> None:
    blocks = [b for b in _yaml_blocks(DOCS / "scenarios.md") if b.startswith("name:")]
    assert blocks, "docs/scenarios.md has a worked example"
    for i, text in enumerate(blocks):
        p = tmp_path / f"example-{i}.yaml"
        p.write_text(text)
        for profile in ("vulnerable", "hardened"):
            _load(p, profile)


def test_ci_pipelines_are_well_formed() -> None:
    files = sorted((DOCS / "ci").glob("*.yml"))
    assert {f.name for f in files} >= {"github-actions.yml", "gitlab-ci.yml"}
    for f in files:
        doc = yaml.safe_load(f.read_text())
        assert isinstance(doc, dict), f
        text = f.read_text()
        for ref in re.findall(r"scenarios/[a-z0-9.-]+\.yaml", text):
            assert (ROOT / ref).exists(), (f.name, ref)
        assert "junit.xml" in text or "--junitxml" in text, f"{f.name} publishes the JUnit XML"
        assert "report.html" in text, f"{f.name} publishes the HTML report"
