"""The harness side of the L7 proxy: `L7Client` (its control API over httpx) and
`L7Links`, the `MessageControl` faults use (rules on a stack's ``layer: http`` links).

Links are named in the proxy as in Toxiproxy (``ui-api.rpc`` for ``ui-api->rpc``), so
the name needs no escaping in URLs.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import httpx
from l2chaos.errors import FaultError
from l2chaos.httpbody import error_detail

from .rules import Rule

__all__ = ["L7Client", "L7Error", "L7Links"]


class L7Error(FaultError):
    """A control call failed. `status` is the HTTP status (None: no answer)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class L7Client:
    """The control API at `api` (``host:port``) with the run's token. Thread-safe."""

    def __init__(self, api: str, token: str, timeout_s: float = 10.0) -> None:
        self.api = api
        self._http = httpx.Client(
            base_url=f"http://{api}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout_s,
            trust_env=False,
        )

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, json: Any = None, ok404: bool = False) -> Any:
        try:
            resp = self._http.request(method, path, json=json)
        except httpx.HTTPError as exc:
            raise L7Error(f"L7 proxy {method} {path} at {self.api}: {exc}") from exc
        if resp.status_code == 404 and ok404:
            return None
        if resp.status_code >= 400:
            raise L7Error(
                f"L7 proxy {method} {path}: {resp.status_code} {error_detail(resp)}",
                resp.status_code,
            )
        return resp.json()

    def ping(self) -> bool:
        try:
            return self._http.get("/version", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    def version(self) -> str:
        return str(self._call("GET", "/version")["version"])

    def links(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/links"))

    def add_link(self, name: str, listen: str, upstream: str) -> None:
        self._call("POST", "/links", {"name": name, "listen": listen, "upstream": upstream})

    def add_rule(self, link: str, rule: Rule) -> dict[str, Any]:
        return dict(self._call("POST", f"/links/{link}/rules", rule.to_json()))

    def remove_rule(self, link: str, rule_id: str) -> dict[str, Any] | None:
        out = self._call("DELETE", f"/links/{link}/rules/{rule_id}", ok404=True)
        return dict(out) if out is not None else None

    def reset(self) -> None:
        self._call("POST", "/reset")


class L7Links:
    """`MessageControl` for a stack: link names (``a->b``) mapped onto proxy links."""

    def __init__(self, client: L7Client, links: Mapping[str, str]) -> None:
        self.client = client
        self._links = dict(links)
        self._lock = threading.Lock()

    def _name(self, link: str) -> str:
        try:
            return self._links[link.replace(" ", "")]
        except KeyError:
            raise FaultError(
                f"link {link!r} has no L7 proxy (declare it `layer: http` in the stack file); "
                f"links with one: {', '.join(self._links) or 'none'}"
            ) from None

    def links(self) -> list[str]:
        return list(self._links)

    def add_rule(self, link: str, rule: Rule) -> dict[str, Any]:
        return self.client.add_rule(self._name(link), rule)

    def remove_rule(self, link: str, rule_id: str) -> dict[str, Any] | None:
        return self.client.remove_rule(self._name(link), rule_id)

    def reset(self) -> None:
        self.client.reset()
