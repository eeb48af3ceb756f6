"""Fixtures for the L7 proxy tests: the perpdex stack (tests/integration/perpdex) and
shipped scenario runs on both profiles (tests/integration/scenarios), loaded by path."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).parent


def _load(name: str, path: Path) -> ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


_perpdex = _load("l2chaos_tests_perpdex_conftest", HERE.parent / "perpdex" / "conftest.py")
_scenarios = _load("l2chaos_tests_scenarios_conftest", HERE.parent / "scenarios" / "conftest.py")

perpdex = _perpdex.perpdex
run_profiles = _scenarios.run_profiles
