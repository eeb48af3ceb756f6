"""Calls a stack's chaos hooks (its admin API) directly, with the run's admin token.

Hooks are declared in the stack file (`hooks:` → service, method, path). The call goes
to the service's direct address, never through Toxiproxy, so a network fault can never
block the hook that heals it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import httpx

from .errors import FaultError
from .stackspec import HookSpec

__all__ = ["HttpHookClient"]


class HttpHookClient:
    """`HookClient` over HTTP. `base_url(service)` gives a service's direct base URL."""

    def __init__(
        self,
        hooks: Mapping[str, HookSpec],
        base_url: Callable[[str], str],
        admin_token: str,
        timeout_s: float = 10.0,
    ) -> None:
        self._hooks = dict(hooks)
        self._base_url = base_url
        self._client = httpx.Client(
            timeout=timeout_s, headers={"Authorization": f"Bearer {admin_token}"}
        )

    def has(self, hook: str) -> bool:
        return hook in self._hooks

    def call(self, hook: str, body: Mapping[str, Any]) -> Any:
        spec = self._hooks.get(hook)
        if spec is None:
            raise FaultError(f"the stack provides no hook {hook!r}")
        url = self._base_url(spec.service) + spec.path
        try:
            resp = self._client.request(
                spec.method, url, json=dict(body) if spec.method != "GET" else None
            )
        except httpx.HTTPError as exc:
            raise FaultError(f"hook {hook!r} ({spec.method} {url}) failed: {exc}") from exc
        if resp.status_code >= 400:
            raise FaultError(
                f"hook {hook!r} ({spec.method} {url}) answered {resp.status_code}: {resp.text[:300]}"
            )
        if not resp.content:
            return None
        try:
            return resp.json()
        except ValueError:
            return resp.text

    def close(self) -> None:
        self._client.close()
