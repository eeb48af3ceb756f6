"""A fault that needs a control its platform lacks is refused before the run starts,
naming the scenario's file, line and entry (`Fault.needs_backend` against
`Platform.capabilities`)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import ClassVar

import pytest
from l2chaos.backends.docker import DockerPlatform
from l2chaos.backends.local import LocalPlatform
from l2chaos.errors import ScenarioError
from l2chaos.runner import check_platform
from l2chaos.scenario import load_scenario

STACK = Path(__file__).parent / "data" / "teststack"


class NoPausePlatform(LocalPlatform):
    name = "nopause"
    capabilities: ClassVar[frozenset[str]] = frozenset({"kill", "stop"})


def scenario(tmp_path: Path, entry: str) -> Path:
    p = tmp_path / "scenario.yaml"
    body = f"""\
        name: needs
        stack: {{ref: {STACK}}}
        duration: 60s
        timeline:
          - {{at: 1s, fault: network.latency, target: worker->api, for: 5s, with: {{latency: 1ms}}}}
          - {entry}
        """
    p.write_text(textwrap.dedent(body))
    return p


PAUSE = "{at: 10s, fault: process.pause, target: api, for: 5s}"
NEMESIS = (
    "{at: 10s, fault: nemesis.random, for: 20s, with: {every: [1s, 2s], "
    "faults: [{fault: process.kill, target: api}, {fault: process.pause, target: worker}]}}"
)


@pytest.mark.parametrize("entry", [PAUSE, NEMESIS])
def test_a_missing_control_is_a_scenario_error(tmp_path: Path, entry: str) -> None:
    path = scenario(tmp_path, entry)
    sc = load_scenario(path)
    with pytest.raises(ScenarioError) as info:
        check_platform(sc, NoPausePlatform)
    message = str(info.value)
    assert message.startswith(f"{path}:6: timeline[1].fault: ")
    assert "can pause a service; platform 'nopause' can: kill, stop" in message


@pytest.mark.parametrize("entry", [PAUSE, NEMESIS])
def test_the_shipped_platforms_have_every_control(tmp_path: Path, entry: str) -> None:
    sc = load_scenario(scenario(tmp_path, entry))
    for platform in (LocalPlatform, DockerPlatform):
        check_platform(sc, platform)


def test_process_faults_declare_their_controls() -> None:
    from l2chaos.registry import faults

    needs = {name: cls.needs_backend for name, cls in faults().items() if cls.needs_backend}
    assert needs == {
        "process.kill": {"kill"},
        "process.crash_loop": {"kill"},
        "process.stop": {"stop"},
        "process.restart": {"stop"},
        "process.restart_race": {"stop"},
        "process.pause": {"pause"},
    }
