"""Fixtures for the local backend tests: the tiny test stack, loaded by path."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest


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


tinystack = _load("l2chaos_tests_tinystack", Path(__file__).with_name("tinystack.py"))


@pytest.fixture(scope="module")
def ts() -> ModuleType:
    return tinystack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    with tinystack.up_stack(tmp_path_factory.mktemp("stack"), stop_timeout_s=5.0) as st:
        yield st
