"""Signed transactions (common/signing.py): who signs what, and what breaks a signature."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from l2chaos.stacks.perpdex.common.keys import KeyRing
from l2chaos.stacks.perpdex.common.signing import SignatureError, Verifier, sign, signer_of

RING = KeyRing(7, "token")
WITHDRAW = {"kind": "withdraw", "account": 3, "amount": 5, "client_id": "w1"}


def _verify(tx: dict[str, Any], ring: KeyRing = RING) -> None:
    Verifier(ring).verify(tx)


def test_signers() -> None:
    assert signer_of(WITHDRAW) == "account:3"
    assert signer_of({"kind": "deposit", "account": 3}) == "bridge"
    assert signer_of({"kind": "price", "prices": []}) == "oracle"
    for tx, field in (
        ({"kind": "mode", "mode": "halted"}, "kind"),
        ({"kind": ["order"]}, "kind"),
        ({**WITHDRAW, "account": "3"}, "account"),
        ({**WITHDRAW, "client_id": None}, "client_id"),
    ):
        with pytest.raises(SignatureError) as exc:
            signer_of(tx)
        assert exc.value.field == field


def test_a_signature_verifies_and_key_order_does_not_matter() -> None:
    signed = sign(RING.signing_key("account:3"), WITHDRAW)
    _verify(signed)
    _verify(dict(reversed(list(signed.items()))))


@pytest.mark.parametrize(
    ("change", "signer"),
    [
        ({"amount": 6}, "account:3"),  # tampered after signing
        ({"account": 4}, "account:3"),  # moved to another account
        ({}, "account:4"),  # signed by another trader
        ({}, "oracle"),  # signed by a service for a trader
    ],
)
def test_what_breaks_a_signature(change: dict[str, Any], signer: str) -> None:
    signed = {**sign(RING.signing_key(signer), WITHDRAW), **change}
    with pytest.raises(SignatureError, match="not a valid signature"):
        _verify(signed)


def test_missing_signature_and_other_runs() -> None:
    with pytest.raises(SignatureError, match="must be signed by account:3"):
        _verify(WITHDRAW)
    other = sign(KeyRing(7, "another-run").signing_key("account:3"), WITHDRAW)
    with pytest.raises(SignatureError):
        _verify(other)
    with pytest.raises(SignatureError):
        _verify({**WITHDRAW, "signature": "\u0661" * 64})


def test_keys_are_distinct_per_signer() -> None:
    keys = {RING.signing_key(s) for s in ("account:1", "account:2", "bridge", "oracle")}
    assert len(keys) == 4
    assert RING.signing_key("bridge") != KeyRing(8, "token").signing_key("bridge")


@given(st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=8), max_size=6))
def test_any_extra_field_is_covered(extra: dict[str, Any]) -> None:
    signed = sign(RING.signing_key("account:3"), WITHDRAW)
    changed = {**signed, **{k: v for k, v in extra.items() if k != "signature"}}
    if changed == signed:
        _verify(changed)
    else:
        with pytest.raises(SignatureError):
            _verify(changed)
