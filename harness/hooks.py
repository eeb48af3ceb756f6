"""Calls a stack's chaos hooks (its admin API) directly, with the run's admin token.

Hooks are declared in the stack file (`hooks:`): REST (service, method, path; the
fault's body is sent as JSON) or JSON-RPC (service, `jsonrpc` method, `params`). A
JSON-RPC hook's params are templates over the fault's body: ``"{to_block}"`` is the
value itself, ``"{to_block:hex}"`` a hex quantity; with `head` (a method answering
the head block number, e.g. `eth_blockNumber`) a body with `blocks_back` also gets
`from_block` (the head) and `to_block`. It answers the body's values with the call's
`result`, so a rollback through `debug_setHead` records the block it went back to.

The call goes to the service's direct address, never through Toxiproxy, so a network
fault can never block the hook that heals it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from .errors import FaultError
from .httpbody import answer_body
from .jsonrpc import RpcCallError, RpcClient, quantity
from .stackspec import HookSpec

__all__ = ["HttpHookClient", "render_params"]

_WHOLE = re.compile(r"^\{([a-z_][a-z0-9_]*)(?::(hex))?\}$")


def render_params(params: Any, values: Mapping[str, Any]) -> Any:
    """Fill a JSON-RPC hook's params from the fault's body (FaultError for a name the
    body does not have)."""
    if isinstance(params, (list, tuple)):
        return [render_params(p, values) for p in params]
    if isinstance(params, Mapping):
        return {k: render_params(v, values) for k, v in params.items()}
    if not isinstance(params, str):
        return params
    m = _WHOLE.match(params)
    if m is None:
        return params
    key, fmt = m.group(1), m.group(2)
    if key not in values:
        raise FaultError(f"hook parameter {params!r}: the fault gave {', '.join(values) or 'none'}")
    v = values[key]
    if fmt == "hex":
        if isinstance(v, bool) or not isinstance(v, int):
            raise FaultError(f"hook parameter {params!r}: {v!r} is not an integer")
        return hex(v)
    return v


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
        if spec.jsonrpc is not None:
            return self._call_rpc(spec, url, body)
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
        return answer_body(resp)

    def _call_rpc(self, spec: HookSpec, url: str, body: Mapping[str, Any]) -> dict[str, Any]:
        rpc = RpcClient(url, client=self._client)
        values = dict(body)
        try:
            if spec.head is not None and "blocks_back" in values and "to_block" not in values:
                head = quantity(rpc.call(spec.head))
                if head is None:
                    raise FaultError(f"hook {spec.name!r}: {spec.head} gave no block number")
                values["from_block"] = head
                values["to_block"] = max(0, head - int(values["blocks_back"]))
            params = render_params(list(spec.params), values)
            assert spec.jsonrpc is not None
            result = rpc.call(spec.jsonrpc, params)
        except RpcCallError as exc:
            raise FaultError(
                f"hook {spec.name!r} ({spec.jsonrpc} at {url}) failed: {exc}"
            ) from None
        return {**values, "params": params, "result": result}

    def close(self) -> None:
        self._client.close()
