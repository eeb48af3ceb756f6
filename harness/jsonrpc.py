"""A small synchronous JSON-RPC 2.0 client for the harness side (probes, hooks, the chain
record, the evm load's set-up). Never used inside Locust (which has its own session).

    rpc = RpcClient("http://127.0.0.1:8545", timeout_s=2.0)
    head = quantity(rpc.call("eth_blockNumber"))

`call` raises `RpcCallError` for a transport failure, an HTTP error status, a body that
is not JSON-RPC, or a JSON-RPC error object (its `code` kept).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

__all__ = ["RpcCallError", "RpcClient", "quantity"]


class RpcCallError(Exception):
    """A JSON-RPC call that did not return a result; `code` is the JSON-RPC error code
    when the node answered with one."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


def quantity(value: Any) -> int | None:
    """A JSON-RPC quantity: an integer, or a hex string ("0x1a"); None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value[:2] in ("0x", "0X"):
        try:
            return int(value, 16)
        except ValueError:
            return None
    return None


class RpcClient:
    """JSON-RPC over one httpx client. Thread-safe (httpx.Client is)."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 5.0,
        headers: Mapping[str, str] | None = None,
        client: httpx.Client | None = None,
    ) -> None:
        import httpx  # here: the Locust side imports `quantity` and must start fast

        self.url = url
        self._own = client is None
        self._http = client or httpx.Client(timeout=timeout_s, headers=dict(headers or {}))
        self._timeout = timeout_s
        self._ids = itertools.count(1)

    def call(self, method: str, params: Any = (), *, timeout_s: float | None = None) -> Any:
        body = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)
                if isinstance(params, tuple) else params}  # fmt: skip
        import httpx

        try:
            resp = self._http.post(self.url, json=body, timeout=timeout_s or self._timeout)
        except httpx.HTTPError as exc:
            raise RpcCallError(f"{method}: {type(exc).__name__}: {exc}") from None
        if resp.status_code >= 300:
            raise RpcCallError(f"{method}: HTTP {resp.status_code}: {resp.text[:200]}")
        try:
            data = resp.json()
        except ValueError:
            raise RpcCallError(f"{method}: the answer is not JSON: {resp.text[:200]}") from None
        if not isinstance(data, Mapping):
            raise RpcCallError(f"{method}: not a JSON-RPC answer: {str(data)[:200]}")
        err = data.get("error")
        if isinstance(err, Mapping):
            code = err.get("code")
            raise RpcCallError(
                f"{method}: JSON-RPC {code}: {err.get('message', '')}",
                code if isinstance(code, int) else None,
            )
        if "result" not in data:
            raise RpcCallError(f"{method}: JSON-RPC answer without a result")
        return data["result"]

    def close(self) -> None:
        if self._own:
            self._http.close()
