"""Shared by the benchmark scripts (run as `python benchmarks/<script>.py`)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def tinystack() -> ModuleType:
    """The backend tests' small stack (Postgres and two tiny HTTP services), by path."""
    path = ROOT / "tests" / "integration" / "backends" / "tinystack.py"
    spec = importlib.util.spec_from_file_location("bench_tinystack", path)
    assert spec is not None
    assert spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_tinystack"] = mod
    spec.loader.exec_module(mod)
    return mod


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) by nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]
