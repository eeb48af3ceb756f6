"""Registration errors name the class and its module instead of skipping it silently."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from l2chaos import registry
from l2chaos.errors import UsageError
from l2chaos.faults.base import Fault
from l2chaos.stacks.perpdex import STACK_FILE

from tests._support.plugins import write_dist_info

GOOD = """
    from l2chaos.faults.base import Details, Fault, FaultContext
    from l2chaos.params import NoParams, param, params


    @params
    class WaitParams:
        n: int = param(1, "how many")


    class Wait(Fault[WaitParams]):
        name = "test.wait"
        summary = "waits"

        def inject(self, ctx: FaultContext) -> Details:
            return {"n": self.p.n}


    class _Base(Fault[NoParams]):  # private: a base for others, never registered
        def inject(self, ctx: FaultContext) -> Details:
            return {}
"""

BAD = {
    "no_name": (
        """
        class Nameless(Fault[NoParams]):
            summary = "forgot its name"

            def inject(self, ctx: FaultContext) -> Details:
                return {}
        """,
        "mod.Nameless sets no `name`",
    ),
    "old_params": (
        """
        class Old(Fault[NoParams]):
            name = "test.old"
            summary = "the tuple of Param of before"
            params = ("latency",)

            def inject(self, ctx: FaultContext) -> Details:
                return {}
        """,
        "mod.Old sets `params`, which is no longer read",
    ),
    "bad_model": (
        """
        @params
        class Loose:
            x: object = param(None, "anything")


        class Vague(Fault[Loose]):
            name = "test.vague"
            summary = "a parameter of no known type"

            def inject(self, ctx: FaultContext) -> Details:
                return {}
        """,
        "mod.Vague: its parameters: Loose.x: unsupported parameter type",
    ),
}


def _package(root: Path, name: str, body: str) -> None:
    pkg = root / name
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "mod.py").write_text(
        textwrap.dedent(GOOD) + textwrap.dedent(body) if body else textwrap.dedent(GOOD)
    )


def _collect(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, body: str
) -> dict[str, Any]:
    _package(tmp_path, name, body)  # a package name per test: modules are cached
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("L2CHAOS_NO_PLUGINS", "1")
    base: type[Fault[Any]] = Fault  # type: ignore[type-abstract]
    return registry._collect(name, "l2chaos.tests.none", base, registry._check_params)


def test_a_good_plugin_module_registers_its_public_classes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    found = _collect(tmp_path, monkeypatch, "plug_good", "")
    assert list(found) == ["test.wait"]
    assert found["test.wait"].params_model().__name__ == "WaitParams"


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_broken_plugin_class_is_an_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    body, message = BAD[case]
    with pytest.raises(UsageError) as err:
        _collect(tmp_path, monkeypatch, f"plug_{case}", body)
    assert f"plug_{case}.{message}" in str(err.value)


# ------------------------------------------------------------------ stack plug-ins


@pytest.fixture
def stack_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A site folder on sys.path for stack plug-ins, with plug-ins enabled; the registry's
    cached stacks are forgotten before and after."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delenv("L2CHAOS_NO_PLUGINS", raising=False)
    registry.stack_files.cache_clear()
    yield site
    registry.stack_files.cache_clear()


def _stack_plugin(site: Path, module: str, entry: str, stack_file: Path) -> None:
    (site / f"{module}.py").write_text(
        f"from pathlib import Path\n\nSTACK_FILE = Path({str(stack_file)!r})\n"
    )
    write_dist_info(site, module, "1.0", {"l2chaos.stacks": {entry: f"{module}:STACK_FILE"}})


def test_a_stack_plugin_registers_its_stack_file(stack_site: Path, tmp_path: Path) -> None:
    mine = tmp_path / "mine" / "stack.yaml"
    mine.parent.mkdir()
    mine.write_text("name: mine\nservices: {a: {command: [x], port: 1}}\n")
    _stack_plugin(stack_site, "stackplug_mine", "mine", mine)
    found = registry.stack_files()
    assert found["mine"] == mine
    assert found["perpdex"] == Path(STACK_FILE)  # the shipped entry point names its own folder


def test_a_stack_plugin_taking_a_shipped_name_is_an_error(stack_site: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.yaml"
    other.write_text("name: other\nservices: {a: {command: [x], port: 1}}\n")
    _stack_plugin(stack_site, "stackplug_clash", "perpdex", other)
    with pytest.raises(UsageError) as err:
        registry.stack_files()
    assert str(err.value) == (
        f"plugin 'perpdex' (stackplug_clash:STACK_FILE) in l2chaos.stacks: stack 'perpdex' "
        f"is already provided by {STACK_FILE}"
    )


def test_a_stack_plugin_without_its_file_is_an_error(stack_site: Path, tmp_path: Path) -> None:
    missing = tmp_path / "gone" / "stack.yaml"
    _stack_plugin(stack_site, "stackplug_gone", "gone", missing)
    with pytest.raises(UsageError) as err:
        registry.stack_files()
    assert str(err.value) == (
        f"plugin 'gone' (stackplug_gone:STACK_FILE) in l2chaos.stacks: {missing} is not a file"
    )
