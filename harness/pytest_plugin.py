"""pytest plugin: scenario files are collected as tests (``pytest scenarios/``).

Registered as the ``l2chaos`` pytest11 entry point, so it is active in every pytest
run of the environment, including other projects'. It therefore collects only what a
project opts into, never YAML by its place alone:

- by name: the project's ini option ``l2chaos_scenarios`` (none by default), e.g.
  ``l2chaos_scenarios = ["scenarios/*.yaml"]`` under ``[tool.pytest.ini_options]``; a
  pattern with a ``/`` matches the trailing part of the path, one without the file name;
- or by marker: a file with the line ``# l2chaos: scenario`` among its leading comments.

Each file becomes one test item named after the scenario's ``name:``. Its ``tags:``
become pytest markers (``pytest scenarios/ -m incident``), and every item carries the
``l2chaos_scenario`` marker. The item runs the scenario with
``l2chaos.runner.run_scenario`` and fails with the terminal summary when the
expectation of the profile that ran is not met (exit code 1), or with the error when
the input is bad (2) or the harness or stack broke (3).

Options: ``--l2chaos-profile``, ``--l2chaos-backend``, ``--l2chaos-time-scale``,
``--l2chaos-out``. Ctrl-C during a scenario stops its run (teardown completes) and the
whole session, as Ctrl-C does anywhere in pytest.
"""

from __future__ import annotations

import fnmatch
import importlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .errors import EXIT_INTERRUPTED, InputError, L2ChaosError
from .yamlsrc import LocDict, load_yaml

__all__ = ["INI", "MARKER_LINE", "ScenarioFile", "ScenarioItem", "is_scenario_file"]

MARKER_LINE = "# l2chaos: scenario"
INI = "l2chaos_scenarios"
SCENARIO_MARK = "l2chaos_scenario"
_TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("l2chaos", "l2chaos scenarios")
    group.addoption(
        "--l2chaos-profile",
        default=None,
        help="stack profile to run scenarios with (default: the scenario's)",
    )
    group.addoption(
        "--l2chaos-backend",
        default=None,
        help="backend to run scenarios on: auto, local or docker (default: the scenario's)",
    )
    group.addoption(
        "--l2chaos-time-scale",
        default=None,
        type=float,
        help="multiply every scenario duration by this factor (e.g. 0.1 for a quick run)",
    )
    group.addoption(
        "--l2chaos-out",
        default=None,
        help="where run directories go (default: runs)",
    )
    group.addoption(
        "--l2chaos-allow-exec",
        action="store_true",
        help="let scenarios run commands on this host (exec.command); docs/security.md",
    )
    group.addoption(
        "--l2chaos-allow-target",
        action="append",
        default=[],
        metavar="HOST",
        help="a non-loopback host that is yours; docs/security.md",
    )
    parser.addini(
        INI,
        type="linelist",
        default=[],
        help="file patterns of l2chaos scenario files to collect as tests, e.g. scenarios/*.yaml",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{SCENARIO_MARK}: an l2chaos scenario file")


def _matches(path: Path, patterns: list[str], root: Path) -> bool:
    try:
        parts = path.resolve().relative_to(root.resolve()).parts
    except ValueError:
        parts = path.resolve().parts
    for pattern in patterns:
        if "/" not in pattern:
            if fnmatch.fnmatchcase(path.name, pattern):
                return True
            continue
        for i in range(len(parts)):
            if fnmatch.fnmatchcase("/".join(parts[i:]), pattern):
                return True
    return False


def _has_marker_line(path: Path) -> bool:
    """The marker among the file's leading comment lines (after a yaml-language-server
    modeline, say); the first other line ends the search."""
    try:
        with path.open(encoding="utf-8", errors="replace") as fh:
            for _ in range(20):
                line = fh.readline(200).strip()
                if line == MARKER_LINE:
                    return True
                if line and not line.startswith("#"):
                    return False
    except OSError:
        return False
    return False


def is_scenario_file(path: Path, patterns: list[str], root: Path) -> bool:
    """Whether `path` is a scenario: a .yaml/.yml file matching a pattern or marked."""
    if path.suffix not in (".yaml", ".yml"):
        return False
    return _matches(path, patterns, root) or _has_marker_line(path)


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    config = parent.config
    patterns = [str(p) for p in config.getini(INI)]
    if is_scenario_file(file_path, patterns, config.rootpath):
        return ScenarioFile.from_parent(parent, path=file_path)
    return None


class ScenarioFile(pytest.File):
    """One scenario file: yields one item."""

    def collect(self) -> Iterator[pytest.Item]:
        name = self.path.stem
        tags: list[str] = []
        problem: str | None = None
        try:
            doc = load_yaml(self.path)
        except InputError as exc:
            doc, problem = None, str(exc)
        if isinstance(doc, LocDict):
            if isinstance(doc.get("name"), str) and doc["name"]:
                name = doc["name"]
            raw = doc.get("tags", [])
            if isinstance(raw, str):
                raw = [raw]
            if not isinstance(raw, list) or not all(isinstance(t, str) for t in raw):
                problem = f"{self.path}:{doc.line_of('tags')}: tags: expected a list of strings, got {raw!r}"
            else:
                bad = [t for t in raw if not _TAG.fullmatch(t)]
                if bad:
                    problem = (
                        f"{self.path}:{doc.line_of('tags')}: tags: {bad[0]!r} is not usable as a "
                        "pytest marker; allowed: letters, digits, '_', '.' and '-', starting with a letter or digit"
                    )
                else:
                    tags = list(raw)
        elif problem is None:
            problem = f"{self.path}: expected a mapping (a scenario), got {type(doc).__name__}"
        item = ScenarioItem.from_parent(self, name=name, problem=problem)
        item.add_marker(SCENARIO_MARK)
        for tag in tags:
            self.config.addinivalue_line("markers", f"{tag}: l2chaos scenario tag")
            item.add_marker(tag)
        yield item


class ScenarioFailed(Exception):
    """The scenario ran and its expectation was not met, or it could not run."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


class ScenarioItem(pytest.Item):
    """Runs one scenario through the runner; fails with its terminal summary."""

    def __init__(self, *, problem: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.problem = problem

    def _options(self) -> Any:
        runner = importlib.import_module("l2chaos.runner")
        kwargs: dict[str, Any] = {}
        for key, opt in (
            ("profile", "l2chaos_profile"),
            ("backend", "l2chaos_backend"),
            ("time_scale", "l2chaos_time_scale"),
        ):
            value = self.config.getoption(opt)
            if value is not None:
                kwargs[key] = value
        out = self.config.getoption("l2chaos_out")
        if out is not None:
            kwargs["out_dir"] = Path(out)
        kwargs["allow_exec"] = bool(self.config.getoption("l2chaos_allow_exec"))
        kwargs["allow_targets"] = tuple(self.config.getoption("l2chaos_allow_target") or ())
        return runner.run_scenario, runner.RunOptions(**kwargs)

    def runtest(self) -> None:
        if self.problem is not None:
            raise ScenarioFailed(self.problem)
        run_scenario, options = self._options()
        try:
            result = run_scenario(self.path, options)
        except L2ChaosError as exc:
            raise ScenarioFailed(f"exit code {exc.exit_code}: {exc}") from exc
        if result.exit_code == EXIT_INTERRUPTED:
            # Ctrl-C stopped the run (and its teardown completed): stop the session too,
            # as Ctrl-C does anywhere else in pytest, instead of starting the next scenario.
            raise KeyboardInterrupt(result.error or "interrupted")
        if result.exit_code != 0:
            summary = str(getattr(result, "summary", "") or "")
            raise ScenarioFailed(
                f"exit code {result.exit_code} (run directory {result.run_dir})\n{summary}".rstrip()
            )

    def repr_failure(
        self,
        excinfo: pytest.ExceptionInfo[BaseException],
        style: Any = None,
    ) -> str:
        if isinstance(excinfo.value, ScenarioFailed):
            return excinfo.value.text
        return str(super().repr_failure(excinfo, style=style))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"scenario: {self.name}"
