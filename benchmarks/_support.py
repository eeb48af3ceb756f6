"""Shared by the benchmark scripts (run as `python benchmarks/<script>.py`)."""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path
from types import ModuleType

from l2chaos.backends.base import Backend
from l2chaos.stackspec import StackRun

ROOT = Path(__file__).resolve().parent.parent


def arg_parser(doc: str | None) -> argparse.ArgumentParser:
    """A benchmark's command line, with its module docstring as the help text."""
    return argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )


def tinystack() -> ModuleType:
    """The backend tests' small stack (Postgres and two tiny HTTP services), imported as
    the tests import it (from the repository root)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from tests.integration.backends import tinystack

    return tinystack


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) by nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def up_down_times(
    backend: Backend, run: StackRun, starts: int, folder: Path, name: str
) -> tuple[list[float], list[float]]:
    """Seconds from `up` to a ready stack, and for its `down`, over `starts` fresh runs
    (each with its run directory under `folder`)."""
    ups: list[float] = []
    downs: list[float] = []
    for i in range(starts):
        t0 = time.perf_counter()
        stack = backend.up(
            run,
            run_id=f"bench-{name}-{i}-{uuid.uuid4().hex[:8]}",
            run_dir=folder / f"{name}-{i}",
            env={},
        )
        ups.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        backend.down(stack)
        downs.append(time.perf_counter() - t0)
    return ups, downs
