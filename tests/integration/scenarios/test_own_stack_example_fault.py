"""The example plugin's fault (docs/own-stack/example, `example.link_flap`) against a
real Toxiproxy proxy of the tiny test stack: clients through the link see it come and
go during the window, and after the heal it works and stays up."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from l2chaos.faults.base import Target, TargetKind
from l2chaos.params import Duration

from tests._support.modules import load_module
from tests.integration.backends import tinystack

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
LINK = "front->api"
MS = 1_000_000


example_faults = load_module(
    "l2chaos_example_faults_test",
    ROOT / "docs" / "own-stack" / "example" / "l2chaos_example" / "faults.py",
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with tinystack.up_stack(tmp_path_factory.mktemp("stack"), stop_timeout_s=5.0) as st:
        yield st


def _through(stack: Any) -> bool:
    """One GET through the link's proxy, as its client (front) would make it."""
    try:
        status, _, _, _ = tinystack.http_get(
            str(stack.link_endpoint(LINK).hostport), "/bytes?n=10", timeout=1.0
        )
    except OSError:
        return False
    return bool(status == 200)


def test_link_flap_takes_the_link_down_and_up_and_leaves_it_up(stack: Any) -> None:
    cls = example_faults.LinkFlap
    target = Target(TargetKind.LINK, links=(LINK,), text=LINK)
    fault = cls.build(target, {"down": "300ms", "up": "300ms"}, Duration.of(s=3))
    assert fault.resources() == {f"link:{LINK}"}
    ctx = tinystack.fault_context(stack)
    assert _through(stack)
    seen: list[bool] = []

    def flapped() -> bool:  # down, up, down again: it flaps, while the fault is on
        seen.append(_through(stack))
        outages = sum(1 for a, b in zip([True, *seen], seen, strict=False) if a and not b)
        return outages >= 2

    details = fault.inject(ctx)
    try:
        assert details["down_ms"] == 300
        assert tinystack.wait_until(flapped, timeout=30), seen
    finally:
        healed = fault.heal(ctx)
    assert healed["flaps"] >= 2
    # the flapping thread has ended: nothing can take the link down again
    assert fault._thread is not None
    assert not fault._thread.is_alive()
    assert stack.links.is_enabled(LINK)
    assert _through(stack)
