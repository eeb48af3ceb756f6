"""Keys derived deterministically from the run: trader API keys and the relayer key.

key = HMAC-SHA256("perpdex|{seed}|{admin_token}", purpose). With the admin token in the
derivation, a run's keys cannot be computed from the (published) seed alone; a stack
started without a token (by hand) derives them from the seed only.
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

    def relayer_key(self) -> str:
        return self._derive("relayer", 64)
