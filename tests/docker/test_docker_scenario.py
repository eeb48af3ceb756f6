"""The flagship scenario on the docker backend: the same verdicts as on the local
backend; nothing left behind after a run or after SIGINT mid-run; and the
bring-your-own-images example stack runs the same scenario.

Runs go through the real CLI (`l2chaos run`) in a subprocess, at time scale 0.5.
"""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from l2chaos.backends.docker import run_objects

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
FLAGSHIP = ROOT / "scenarios" / "paradex-2026-01-19-db-restart-race.yaml"
OWN_IMAGES = ROOT / "stacks" / "examples" / "own-images"
TIME_SCALE = "0.5"
EMPTY: dict[str, list[str]] = {"containers": [], "networks": [], "volumes": []}


def l2chaos(*args: str) -> list[str]:
    return [sys.executable, "-m", "l2chaos.cli", *args]


def run_flagship(out: Path, backend: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        l2chaos("run", str(FLAGSHIP), "--backend", backend, "--profile", "vulnerable",
                "--profile", "hardened", "--time-scale", TIME_SCALE, "--out", str(out),
                "--no-progress", *extra),
        capture_output=True, text=True, timeout=900, check=False, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def results(out: Path) -> dict[str, dict[str, Any]]:
    """result.json of every run under `out`, by profile."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(out.glob("*/result.json")):
        r = json.loads(path.read_text())
        found[str(r["profile"])] = r
    return found


def statuses(result: dict[str, Any]) -> dict[str, str]:
    return {i["name"]: i["status"] for i in result["invariants"]}


@pytest.fixture(scope="module")
def flagship(engine: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Both profiles of the flagship on each backend: {backend: (process, results)}."""
    if not FLAGSHIP.is_file():
        pytest.fail(f"the flagship scenario is missing: {FLAGSHIP}")
    out: dict[str, Any] = {}
    for backend in ("local", "docker"):
        d = tmp_path_factory.mktemp(f"flagship-{backend}")
        out[backend] = (run_flagship(d, backend), results(d))
    return out


def test_flagship_gives_the_same_verdicts_on_docker_as_on_local(flagship: dict[str, Any]) -> None:
    for backend, (proc, _) in flagship.items():
        assert proc.returncode == 0, f"{backend}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    local, docker = flagship["local"][1], flagship["docker"][1]
    assert set(local) == set(docker) == {"vulnerable", "hardened"}
    for profile in ("vulnerable", "hardened"):
        assert docker[profile]["backend"] == "docker"
        assert local[profile]["backend"] == "local"
        assert statuses(docker[profile]) == statuses(local[profile]), profile
        assert docker[profile]["expectation"]["met"] is True
    assert statuses(docker["vulnerable"])["no_zero_price_liquidations"] == "fail"
    assert set(statuses(docker["hardened"]).values()) == {"pass"}


def test_a_finished_docker_run_leaves_nothing_labelled(
    flagship: dict[str, Any], engine: Any
) -> None:
    runs = flagship["docker"][1]
    assert len(runs) == 2
    for r in runs.values():
        assert run_objects(engine.client, r["run_id"]) == EMPTY
        logs = Path(r["run_dir"]) / "logs"
        assert {"db.log", "sequencer.log", "toxiproxy.log"} <= {p.name for p in logs.iterdir()}


class _Lines:
    """stderr of a child, line by line, read by a thread (so waits have deadlines)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._proc = proc
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._proc.stderr is not None
        for line in self._proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in self.lines):
                return True
            if self._proc.poll() is not None:
                break
            time.sleep(0.1)
        return any(text in line for line in self.lines)

    def join(self) -> None:
        self._thread.join(timeout=30)
        if self._proc.stderr is not None:
            self._proc.stderr.close()


@pytest.mark.parametrize(
    "when",
    ["docker: starting sequencer", "]: running"],
    ids=["during-bring-up", "mid-run"],
)
def test_sigint_tears_everything_down(engine: Any, ds: Any, tmp_path: Path, when: str) -> None:
    proc = subprocess.Popen(
        l2chaos("run", str(FLAGSHIP), "--backend", "docker", "--profile", "vulnerable",
                "--time-scale", TIME_SCALE, "--out", str(tmp_path)),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    lines = _Lines(proc)
    try:
        assert lines.wait_for(when, timeout=300), "\n".join(lines.lines[-40:])
        (run_json,) = tmp_path.glob("*/run.json")
        if when == "]: running":  # until probes sampled and the load flushed operations
            probes, history = run_json.parent / "probes.jsonl", run_json.parent / "history"
            assert ds.wait_until(
                lambda: probes.exists() and probes.read_text().count("\n") >= 2
                and any(p.stat().st_size for p in history.glob("worker-*.jsonl")),
                120,
            )  # fmt: skip
        run_id = json.loads(run_json.read_text())["run_id"]
        assert run_objects(engine.client, run_id)["containers"]  # it is really up
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
        lines.join()
    assert code == 130, "\n".join(lines.lines[-40:])
    assert run_objects(engine.client, run_id) == EMPTY
    record = json.loads(run_json.read_text())
    assert record["phase"] == "aborted"
    assert "interrupted by SIGINT" in record["error"]


def make_own_images(client: Any, spec: Any) -> list[str]:
    """The example's myorg/<service>:1.4 images, as a team's own build would make them:
    one image per service with its own CMD, here on top of the reference image."""
    from l2chaos.backends.images import ensure_images
    from l2chaos.stacks.perpdex import STACK_FILE
    from l2chaos.stackspec import load_stack

    reference = load_stack(STACK_FILE)
    plan = ensure_images(client, reference, print)
    made = []
    for name, svc in spec.services.items():
        if svc.image is None:
            continue
        module = reference.services[name].command[-1]  # l2chaos.stacks.perpdex.<service>
        dockerfile = f'FROM {plan.services[name]}\nCMD ["python3", "-m", "{module}"]\n'
        client.images.build(
            fileobj=io.BytesIO(dockerfile.encode()), tag=svc.image, rm=True, network_mode="none"
        )
        made.append(svc.image)
    return made


def test_the_own_images_example_runs_the_flagship(engine: Any, tmp_path: Path) -> None:
    """The flagship runs unchanged on the example stack of myorg/* images; with only
    images (no commands) the scenario's default backend (auto) is docker."""
    from l2chaos.stackspec import load_stack

    example = load_stack(OWN_IMAGES / "stack.yaml")
    assert all(not s.command for s in example.services.values())
    made = make_own_images(engine.client, example)
    assert len(made) == 5
    try:
        proc = subprocess.run(
            l2chaos("run", str(FLAGSHIP), "--profile", "vulnerable", "--profile", "hardened",
                    "--time-scale", TIME_SCALE, "--out", str(tmp_path), "--no-progress",
                    "--set", f"stack.ref={OWN_IMAGES}"),
            capture_output=True, text=True, timeout=900, check=False, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        runs = results(tmp_path)
        assert statuses(runs["vulnerable"])["no_zero_price_liquidations"] == "fail"
        assert set(statuses(runs["hardened"]).values()) == {"pass"}
        for r in runs.values():
            assert r["backend"] == "docker"
            record = json.loads((Path(r["run_dir"]) / "run.json").read_text())
            assert record["stack"]["images"]["sequencer"] == "myorg/sequencer:1.4"
            assert run_objects(engine.client, r["run_id"]) == EMPTY
    finally:
        for ref in made:
            engine.client.images.remove(ref)
