"""Fixtures for checker tests: a RecordWriter on a fresh run directory, and `check`
to run one registered checker on it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from l2chaos.invariants.base import Verdict
from l2chaos.invariants.check import run_checker
from l2chaos.invariants.record import RunRecord
from l2chaos.invariants.synth import RecordWriter
from l2chaos.params import Where, from_json
from l2chaos.registry import checkers


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return tmp_path / "run"


@pytest.fixture
def rw(run_dir: Path) -> Iterator[RecordWriter]:
    w = RecordWriter(run_dir)
    w.scenario()
    w.run(end_s=120)
    yield w
    w.close()


@pytest.fixture
def check(rw: RecordWriter, run_dir: Path) -> Callable[..., Verdict]:
    def run(name: str, **params: Any) -> Verdict:
        rw.close()
        cls = checkers()[name]
        # parameters as the run record keeps them (durations in ns)
        bound = from_json(cls.params_model(), params, Where("test", name))
        return run_checker(cls(bound), RunRecord(run_dir))

    return run
