"""Signed transactions: only a key holder can write to the chain, whoever reaches the port.

Every transaction sent to the rpc (`starknet_addInvokeTransaction`) or the sequencer
(`POST /tx`, `/txs`, `/oracle/prices`) carries `signature`: the hex HMAC-SHA256 of its
canonical form under the signer's key. The signer follows from the transaction:

- `order`, `cancel`, `withdraw`: the account's key (the ui-api signs for its traders);
- `l1_deposit`, the request to the bridge to lock a deposit for an account
  (`POST /deposits`): the account's key too;
- `deposit` (the L1 handler): the bridge's key;
- `price`: the oracle's key.

canonical = "perpdex-tx-v1|" + the JSON object without `signature`, keys sorted, no
spaces, ASCII escapes. Keys come from the KeyRing (seed and the run's admin token), so
the verifiers (rpc, sequencer) derive them and nobody else can. HMAC rather than
Ed25519: the verifiers hold the derivation secret anyway, and it costs ~2 µs.

A signed account transaction must name itself (`client_id` or `nonce`): a replay of
the same bytes has the same hash and gets the first receipt back (within the
sequencer's dedup window); deposits are consumed once by their L1 nonce.
"""

from __future__ import annotations

import hmac
import json
from functools import lru_cache
from typing import Any

from l2chaos.stacks.perpdex.common.keys import KeyRing

__all__ = ["SIGNATURE", "SignatureError", "Verifier", "sign", "signer_of"]

SIGNATURE = "signature"
_DOMAIN = b"perpdex-tx-v1|"
_ACCOUNT_KINDS = ("order", "cancel", "withdraw", "l1_deposit")
_SERVICE_SIGNERS = {"deposit": "bridge", "price": "oracle"}


class SignatureError(ValueError):
    """The transaction is not signed by whom it must be: `field` names what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _canonical(tx: dict[str, Any]) -> bytes:
    body = {k: v for k, v in tx.items() if k != SIGNATURE}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return _DOMAIN + text.encode()


def _mac(key: bytes, tx: dict[str, Any]) -> str:
    return hmac.digest(key, _canonical(tx), "sha256").hex()  # the one-shot C path


def sign(key: bytes, tx: dict[str, Any]) -> dict[str, Any]:
    """The transaction with its signature under `key`."""
    return {**tx, SIGNATURE: _mac(key, tx)}


def signer_of(tx: dict[str, Any]) -> str:
    """Whose key signs this transaction: "account:N", "bridge" or "oracle"."""
    kind = tx.get("kind")
    if kind in _ACCOUNT_KINDS:
        account = tx.get("account")
        if isinstance(account, bool) or not isinstance(account, int):
            raise SignatureError("account", "an account transaction needs an integer account")
        if tx.get("client_id") is None and tx.get("nonce") is None:
            raise SignatureError(
                "client_id", "a signed transaction names itself with a client_id or a nonce"
            )
        return f"account:{account}"
    if isinstance(kind, str) and kind in _SERVICE_SIGNERS:
        return _SERVICE_SIGNERS[kind]
    raise SignatureError("kind", f"no signer accepts transactions of kind {kind!r}")


class Verifier:
    """Checks signatures; keys are derived on demand and the recent ones kept."""

    def __init__(self, ring: KeyRing) -> None:
        self._key = lru_cache(maxsize=65_536)(ring.signing_key)

    def verify(self, tx: dict[str, Any]) -> None:
        signer = signer_of(tx)
        given = tx.get(SIGNATURE)
        if not isinstance(given, str):
            raise SignatureError(SIGNATURE, f"missing: the transaction must be signed by {signer}")
        if not hmac.compare_digest(
            given.encode("ascii", "replace"), _mac(self._key(signer), tx).encode()
        ):
            raise SignatureError(SIGNATURE, f"not a valid signature of {signer}")
