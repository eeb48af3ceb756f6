"""Keys derived deterministically from the run: trader API keys and signing keys.

key = HMAC-SHA256("perpdex|{seed}|{admin_token}", purpose). With the admin token in the
derivation, a run's keys cannot be computed from the (published) seed alone; a stack
started without a token (by hand) derives them from the seed only.

Signing keys (common/signing.py): "account:N" for trader N's transactions, "bridge"
for L1-handler deposits, "oracle" for price updates. They never leave the services
that sign (ui-api, bridge, oracle) or verify (rpc, sequencer).
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["KeyRing"]


class KeyRing:
    def __init__(self, seed: int, admin_token: str | None) -> None:
        self._secret = f"perpdex|{seed}|{admin_token or ''}".encode()

    def _derive(self, purpose: str, length: int = 40) -> str:
        return hmac.new(self._secret, purpose.encode(), hashlib.sha256).hexdigest()[:length]

    def api_key(self, account: int) -> str:
        return "pk_" + self._derive(f"api:{account}")

    def signing_key(self, signer: str) -> bytes:
        """The HMAC key of a signer: "account:N", "bridge" or "oracle"."""
        return hmac.new(self._secret, f"sign:{signer}".encode(), hashlib.sha256).digest()

    def relayer_key(self) -> str:
        """The bridge's signing key as hex (a secret: it must never reach a log or a run)."""
        return self.signing_key("bridge").hex()
