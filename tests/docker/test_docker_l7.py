"""Message-level faults on the docker backend: the L7 proxy runs as a container
(image built offline like Toxiproxy's), the `l7` scenarios meet their expectations on
both profiles as on the local backend, its decisions reach the run directory, and
nothing of the run is left behind."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from l2chaos.backends.docker import run_objects

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]


def run(scenario: str, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "l2chaos.cli", "run", str(ROOT / "scenarios" / f"{scenario}.yaml"),
         "--backend", "docker", "--profile", "vulnerable", "--profile", "hardened",
         "--out", str(out), "--no-progress"],
        capture_output=True, text=True, timeout=900, check=False, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def runs(out: Path) -> dict[str, Path]:
    found = {}
    for path in sorted(out.glob("*/result.json")):
        found[str(json.loads(path.read_text())["profile"])] = path.parent
    return found


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.parametrize(
    ("scenario", "label", "effects"),
    [
        ("order-answer-lost", "answers-dropped", {"drop", "pass"}),
        # the oracle's reads of its price source, a container of its own
        ("oracle-zero-price-answer", "zero-price-answer", {"corrupted"}),
    ],
)
def test_l7_scenarios_on_docker(
    engine: Any, tmp_path: Path, scenario: str, label: str, effects: set[str]
) -> None:
    done = run(scenario, tmp_path)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    found = runs(tmp_path)
    assert set(found) == {"vulnerable", "hardened"}
    for run_dir in found.values():
        faults = [f for f in jsonl(run_dir / "faults.jsonl") if f.get("label") == label]
        rule = next(f["details"]["rule"] for f in faults if f["action"] == "inject")
        heal = next(f for f in faults if f["action"] == "heal")
        rows = [d for d in jsonl(run_dir / "l7.jsonl") if d.get("rule") == rule]
        assert rows
        assert {d["effect"] for d in rows} == effects
        assert heal["details"]["hit"] == sum(d["hit"] for d in rows)
        run_id = json.loads((run_dir / "run.json").read_text())["run_id"]
        left = run_objects(engine.client, run_id)
        assert left == {"containers": [], "networks": [], "volumes": []}, left
