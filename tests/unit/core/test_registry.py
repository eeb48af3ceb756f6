"""Registration errors name the class and its module instead of skipping it silently."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from l2chaos import registry
from l2chaos.errors import UsageError
from l2chaos.faults.base import Fault

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
