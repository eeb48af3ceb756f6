"""`layer: http` links in the stack file, and message faults validated against them."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from l2chaos.errors import InputError, StackSpecError
from l2chaos.faults.rpc import RpcCorrupt
from l2chaos.scenario import load_scenario
from l2chaos.stackspec import load_stack

from tests._support.stackfile import MINI_STACK, stack_file

# the mini stack with web -> api declared an HTTP link
STACK = MINI_STACK.replace(
    'links: ["api -> db", "web->api"]', "links:\n  - api -> db\n  - web -> api: {layer: http}"
)


def test_links_carry_their_layer(tmp_path: Path) -> None:
    spec = load_stack(stack_file(tmp_path, STACK))
    assert [(lk.name, lk.layer) for lk in spec.links] == [("api->db", "tcp"), ("web->api", "http")]
    link = spec.link("web -> api")
    assert link is not None
    assert link.layer == "http"
    assert spec.link("web->db") is None


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("- web -> api: {layer: udp}", "links[1].layer"),
        ("- web -> api: {layr: http}", "unknown key 'layr'"),
        (
            "- {web -> api: {layer: http}, api -> db: {}}",
            "expected 'client -> server: {layer: http}'",
        ),
        ("- api -> db: {layer: http}", "PostgreSQL"),
    ],
)
def test_bad_link_declarations(tmp_path: Path, entry: str, message: str) -> None:
    text = STACK.replace("  - web -> api: {layer: http}", "  " + entry)
    if "api -> db: {layer" in entry:
        text = text.replace("  - api -> db\n", "  - web -> api\n")
    with pytest.raises(StackSpecError) as info:
        load_stack(stack_file(tmp_path, text))
    assert message in str(info.value)
    assert "stack.yaml:1" in str(info.value)  # the line of the entry


def scenario(tmp_path: Path, entry: str) -> Path:
    stack = stack_file(tmp_path, STACK)
    p = tmp_path / "scenario.yaml"
    p.write_text(
        textwrap.dedent(
            f"""\
            name: l7
            stack: {{ref: {stack}}}
            duration: 30s
            timeline:
              - at: 5s
                for: 5s
            """
        )
        + textwrap.indent(textwrap.dedent(entry), "    ")
    )
    return p


def test_message_fault_on_an_http_link_loads(tmp_path: Path) -> None:
    sc = load_scenario(
        scenario(
            tmp_path,
            """\
            fault: rpc.corrupt
            target: web->api
            with: {methods: [starknet_call], set: {result.price: 0}, probability: 0.5}
            """,
        )
    )
    fault = sc.timeline[0].fault
    assert isinstance(fault, RpcCorrupt)
    rule = fault.rule(3)
    assert rule.family == "rpc"
    assert rule.match.methods == ("starknet_call",)
    assert rule.probability == 0.5
    assert rule.action.to_json() == {
        "kind": "corrupt",
        "set": [["result.price", 0]],
        "target": "response",
    }


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("fault: rpc.error\ntarget: api->db\n", "must be declared `api -> db: {layer: http}`"),
        ("fault: http.corrupt\ntarget: web->api\nwith: {set: {'a[': 1}}\n", "set: cannot read"),
        ("fault: http.status\ntarget: web->api\nwith: {status: 99}\n", "with.status"),
        ("fault: rpc.delay\ntarget: web->api\nwith: {when: soon}\n", "with.when"),
    ],
)
def test_bad_message_faults(tmp_path: Path, entry: str, message: str) -> None:
    with pytest.raises(InputError) as info:
        load_scenario(scenario(tmp_path, entry))
    assert message in str(info.value)
