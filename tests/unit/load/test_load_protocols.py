"""Trader protocols: the registry, JSON-RPC judging, evm keys and seeded choices."""

from __future__ import annotations

import sys

import pytest
from l2chaos.errors import UsageError
from l2chaos.jsonrpc import quantity
from l2chaos.load import protocol
from l2chaos.load.protocols.evm import STORAGE_INIT, STORAGE_RUNTIME, derive_keys
from l2chaos.load.rpc import classify_strict
from l2chaos.registry import protocols


def test_built_in_protocols_are_registered() -> None:
    assert {"perpdex", "evm", "starknet"} <= set(protocols())
    assert protocol("evm").write_ops == {"transfer", "contract_call"}
    assert protocol("perpdex").endpoints_needed({"maker": 1, "reader": 0}) == {"ui"}
    assert protocol("evm").endpoints_needed({"sender": 1}) == {"rpc"}
    with pytest.raises(UsageError, match="unknown load protocol 'ftp'"):
        protocol("ftp")


def test_a_json_rpc_error_inside_http_200_is_a_fail() -> None:
    assert classify_strict({"jsonrpc": "2.0", "id": 1, "result": "0x1"}).type == "ok"
    err = classify_strict(
        {"jsonrpc": "2.0", "id": 1, "error": {"code": -32601, "message": "no such method"}}
    )
    assert err == ("fail", "JSON-RPC -32601: no such method")
    assert classify_strict({"jsonrpc": "2.0", "id": 1}).type == "info"
    assert classify_strict("<html>").type == "info"


def test_quantities_are_hex_or_integers() -> None:
    assert quantity("0x1a") == 26
    assert quantity(26) == 26
    assert quantity("26") is None
    assert quantity("0xzz") is None
    assert quantity(True) is None


def test_evm_keys_are_stable_and_the_import_keeps_the_recursion_limit() -> None:
    limit = sys.getrecursionlimit()
    keys = derive_keys(7, 3)
    assert sys.getrecursionlimit() == limit  # py_ecc raises it to 100000 on import
    assert keys == derive_keys(7, 3)
    assert len(set(keys)) == 3
    assert keys != derive_keys(8, 3)
    hardhat = "test test test test test test test test test test test junk"
    # the well-known first account of this development mnemonic
    assert derive_keys(0, 1, hardhat)[0].endswith(
        "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
    )


def test_the_storage_contract_copies_its_whole_runtime() -> None:
    runtime = bytes.fromhex(STORAGE_RUNTIME)
    init = bytes.fromhex(STORAGE_INIT[2:])
    assert init[1] == len(runtime)  # PUSH1 size for CODECOPY
    assert init[3] == len(init) - len(runtime)  # PUSH1 offset: the runtime follows
    assert init.endswith(runtime)
