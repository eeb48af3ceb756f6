"""JSON-RPC hook params: templates over the fault's body."""

from __future__ import annotations

import pytest
from l2chaos.errors import FaultError
from l2chaos.hooks import render_params


def test_whole_placeholders_take_the_value_or_its_hex() -> None:
    body = {"to_block": 26, "blocks_back": 5, "tag": "latest"}
    assert render_params(["{to_block:hex}", "{to_block}", "{tag}", 1, "x{to_block}"], body) == [
        "0x1a", 26, "latest", 1, "x{to_block}",
    ]  # fmt: skip
    assert render_params({"n": ["{blocks_back}"]}, body) == {"n": [5]}


def test_a_missing_or_non_integer_value_is_a_fault_error() -> None:
    with pytest.raises(FaultError, match="the fault gave blocks_back"):
        render_params(["{to_block:hex}"], {"blocks_back": 5})
    with pytest.raises(FaultError, match="not an integer"):
        render_params(["{tag:hex}"], {"tag": "latest"})
