"""`l2chaos run` refuses, before it starts anything, a scenario whose fault needs a
control the chosen platform lacks (`Fault.needs_backend` against
`Platform.capabilities`): exit 2 and one message naming the file, line, field and what
the platform can do.

The fault is a real plug-in, found through its entry point as after `pip install`; it
needs `disconnect`, which only the docker platform does natively, and the run asks for
the local one."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests._support.cli import l2chaos
from tests._support.plugins import plugin_env, write_dist_info

pytestmark = pytest.mark.integration

STACK = Path(__file__).resolve().parents[2] / "unit" / "scenario" / "data" / "teststack"

PLUGIN = '''\
"""A fault that only a platform with a native disconnect can carry out."""

from l2chaos.faults.base import Details, Fault, FaultContext, NoParams, TargetKind


class Isolate(Fault[NoParams]):
    name = "needsdocker.isolate"
    summary = "Takes a service off the network with the platform's own disconnect."
    target_kind = TargetKind.SERVICE
    needs_backend = frozenset({"disconnect"})

    def inject(self, ctx: FaultContext) -> Details:
        raise AssertionError("a refused fault was injected")
'''


def test_a_fault_the_local_platform_cannot_do_is_refused_before_the_run(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "needsdocker.py").write_text(PLUGIN)
    write_dist_info(site, "needsdocker", "1.0", {"l2chaos.faults": {"isolate": "needsdocker"}})
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(
        textwrap.dedent(
            f"""\
            name: needs-docker
            stack: {{ref: {STACK}}}
            duration: 20s
            timeline:
              - at: 1s
                fault: needsdocker.isolate
                target: api
                for: 5s
            """
        )
    )
    out = tmp_path / "runs"
    env = plugin_env(site)

    listed = l2chaos("list", "faults", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "needsdocker.isolate" in listed.stdout  # the plug-in is there to be refused

    done = l2chaos(
        "run", str(scenario), "--backend", "local", "--out", str(out), "--no-progress", env=env
    )
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr.strip().splitlines() == [
        f"l2chaos: {scenario}:5: timeline[0].fault: needsdocker.isolate needs a platform that "
        "can disconnect a service; platform 'local' can: kill, pause, stop "
        "(l2chaos list platforms)"
    ]
    assert "Traceback" not in done.stdout + done.stderr
    assert not out.exists() or not any(out.iterdir())  # no run directory: nothing started
