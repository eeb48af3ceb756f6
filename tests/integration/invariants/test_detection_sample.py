"""A sample of the mutation benchmark (benchmarks/bench_detection.py) in CI: three
planted bugs of the reference stack, each applied to a temporary copy of the package
and run through the real `l2chaos run` on `hardened`, must each be caught by an
invariant with evidence (the full benchmark, every mutant and three clean seeds, takes
hours and is run by hand)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from tests._support.modules import load_module

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]
FLAGSHIP = "paradex-2026-01-19-db-restart-race"


def _bench() -> ModuleType:
    return load_module("bench_detection", ROOT / "benchmarks" / "bench_detection.py")


@pytest.mark.parametrize(
    ("mutant", "invariant"),
    [
        # a fee rate, a funding sign and a state root: each keeps every sum balanced
        ("fee-rate", "value_flows"),
        ("funding-sign", "funding_continuity"),
        ("root-order", "chain_consistency"),
    ],
)
def test_a_planted_bug_is_caught_by_an_invariant(
    tmp_path: Path, mutant: str, invariant: str
) -> None:
    bench = _bench()
    m = {x.id: x for x in bench.MUTANTS}[mutant]
    res = bench.hunt(m, (FLAGSHIP,), tmp_path)
    hit = res.by_invariant
    assert hit is not None, res.verdict()
    assert invariant in hit.caught_by, hit.caught_by
    assert res.mutant.path  # the working tree itself was never touched
    assert m.edits[0][0] in (ROOT / m.path).read_text()
