"""Fixtures for the docker tests, and their count in the terminal summary.

Docker tests never skip silently. The `engine` fixture makes sure an engine answers
(starting a local dockerd as `bash .ci/setup --docker` would); when none can run, every
docker test *fails* with the reason. A local user may opt out with
``L2CHAOS_SKIP_DOCKER=1``: the docker tests are then skipped with that reason (CI never
sets it). The summary at the end says how many docker tests ran.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from tests.docker import dockerstack

SKIP_ENV = "L2CHAOS_SKIP_DOCKER"


_counts: dict[str, int] = {"passed": 0, "failed": 0, "skipped": 0}
_skip_reasons: set[str] = set()
_docker_items: set[str] = set()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    _docker_items.update(i.nodeid for i in items if i.get_closest_marker("docker"))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.nodeid not in _docker_items:
        return
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        _counts[report.outcome] = _counts.get(report.outcome, 0) + 1
        if report.outcome == "skipped" and isinstance(report.longrepr, tuple):
            _skip_reasons.add(str(report.longrepr[2]))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    ran = _counts["passed"] + _counts["failed"]
    if not _docker_items:
        return
    terminalreporter.write_sep("-", "docker tests")
    terminalreporter.write_line(
        f"docker tests: {ran} ran ({_counts['passed']} passed, {_counts['failed']} failed), "
        f"{_counts['skipped']} skipped"
    )
    for reason in sorted(_skip_reasons):
        terminalreporter.write_line(f"  skipped because: {reason}")


@pytest.fixture(scope="session")
def engine() -> Iterator[Any]:
    """The Docker engine; started if it is local and down. Fails (never skips) when no
    engine can run, unless the user opted out with L2CHAOS_SKIP_DOCKER=1."""
    if os.environ.get(SKIP_ENV, "").strip() not in ("", "0"):
        pytest.skip(f"{SKIP_ENV}={os.environ[SKIP_ENV]}: the docker tests were opted out")
    from l2chaos.backends.docker_engine import EngineUnavailable, ensure

    try:
        eng = ensure(say=lambda text: print(f"[docker] {text}"))
    except EngineUnavailable as exc:
        pytest.fail(f"Docker cannot run here, so the docker tests cannot either:\n{exc}")
    yield eng
    eng.close()


@pytest.fixture(scope="session")
def ds() -> ModuleType:
    return dockerstack


@pytest.fixture(scope="module")
def stack(engine: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The tiny test stack up on docker for a whole module."""
    with dockerstack.up_stack(tmp_path_factory.mktemp("dstack")) as st:
        yield st
