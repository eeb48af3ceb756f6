from __future__ import annotations

from pathlib import Path

import pytest
from l2chaos.errors import InputError, StackSpecError
from l2chaos.stackspec import StackRun, load_stack, render

from tests._support.stackfile import MINI_STACK as BASE
from tests._support.stackfile import stack_file


def load(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    return load_stack(stack_file(tmp_path, text))


def test_loads_order_links_and_env(tmp_path: Path) -> None:
    spec = load(tmp_path, BASE)
    assert spec.start_order() == ["db", "api", "web"]
    assert spec.link_names == ["api->db", "web->api"]
    assert [lk.name for lk in spec.links_of("api")] == ["api->db", "web->api"]
    run = StackRun(spec, "closed", {"gate": True}, {"tick": 250_000_000}, seed=5)
    env = run.common_env(admin_token="t", run_id="r")
    assert env["L2CHAOS_SWITCHES"] == '{"gate":true}'
    assert env["TICK_MS"] == "250"
    assert render(spec.services["api"].env["DB"], {"link:api->db": "127.0.0.1:21000"}) == (
        "postgresql://app@127.0.0.1:21000/app"
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ('links: ["api -> db", "web->api"]', 'links: ["api -> dbx"]'),
            "stack.yaml:16: links[0]: unknown service 'dbx'",
        ),
        (("name: mini", "name: Mini Stack"), "stack.yaml:1: name: expected a lower-case name"),
        (
            ("    depends_on: [api]", "    depends_on: [apx]"),
            "stack.yaml:15: services.web.depends_on: unknown service 'apx'",
        ),
        (
            ("{link:web->api}", "{link:web->db}"),
            "stack.yaml:14: services.web.env.API: {link:web->db} names no link",
        ),
        (("{port}", "{prot}"), "stack.yaml:6: services.api.command[4]: unknown placeholder {prot}"),
        (
            ("open: {gate: false}", "open: {gaet: false}"),
            "stack.yaml:18: profiles.open.gaet: unknown switch 'gaet'",
        ),
        (
            ("default_profile: closed", "default_profile: shut"),
            "stack.yaml:19: default_profile: unknown profile 'shut'",
        ),
        (
            ("    health: /health", "    health: health"),
            "stack.yaml:8: services.api.health: expected an HTTP path",
        ),
        (
            ("kind: duration", "kind: time"),
            "stack.yaml:21: settings.tick.kind: expected one of duration",
        ),
        (
            ("    port: 8001", "    port: 99999"),
            "stack.yaml:13: services.web.port: expected a port number 1-65535",
        ),
        (
            ("    depends_on: [db]", "    depends_on: [web]"),
            "services.api.depends_on: dependency cycle",
        ),
    ],
)
def test_bad_stack_files(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    text = BASE.replace(*change)
    with pytest.raises(StackSpecError) as info:
        load(tmp_path, text)
    shown = str(info.value).replace(str(tmp_path / "stack.yaml"), "stack.yaml")
    assert message in shown


RPC_PARTS = """\
hooks:
  rollback: {service: api, jsonrpc: debug_setHead, params: ["{to_block:hex}"], head: eth_blockNumber}
probes:
  chain: {service: api, api: evm, timeout: 2s}
  order: {service: web, path: /probe, interval: 1s}
load: {rpc: api, protocol: evm, options: {funding: none, fund_eth: 5}}
"""


def test_json_rpc_hooks_chain_probe_and_load_protocol(tmp_path: Path) -> None:
    spec = load(tmp_path, BASE + RPC_PARTS)
    hook = spec.hooks["rollback"]
    assert (hook.jsonrpc, hook.params, hook.head, hook.path) == (
        "debug_setHead", ("{to_block:hex}",), "eth_blockNumber", "/",
    )  # fmt: skip
    assert spec.probes["chain"]["api"] == "evm"
    assert spec.load == {"rpc": "api"}
    assert spec.load_protocol == "evm"
    assert spec.load_options["funding"] == "none"
    assert spec.load_options["fund_eth"] == 5.0
    assert spec.load_options["max_fee_gwei"] == 100.0  # defaults filled in


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("api: evm", "api: solana"), "probes.chain.api: expected evm or starknet"),
        (("timeout: 2s", "timeout: soon"), "probes.chain.timeout:"),
        (("protocol: evm", "protocol: ftp"), "load.protocol: unknown load protocol 'ftp'"),
        (("fund_eth: 5", "fund_eht: 5"), "load.options.fund_eht: unknown parameter"),
        (
            ("jsonrpc: debug_setHead, ", "jsonrpc: debug_setHead, verb: GET, "),
            "hooks.rollback.verb",
        ),
    ],
)
def test_bad_json_rpc_parts(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    with pytest.raises(InputError) as info:
        load(tmp_path, BASE + RPC_PARTS.replace(*change))
    assert message in str(info.value)
