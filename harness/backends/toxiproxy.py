"""A small typed client for the Toxiproxy HTTP API, and `LinkControl` over it.

Platform-neutral: the local platform runs ``toxiproxy-server`` as a child, the docker
platform as a container; both hand the orchestrator a `ToxiproxyClient` for its API,
and links.py maps the stack's links onto its proxies.

Why not the ``toxiproxy-python`` package (named by the issue): it keeps the server's
host and port in class attributes shared by every client in the process (two runs in
one process would talk to the same server), sends requests without timeouts through
``requests``, needs the Python-2 ``future`` shim, and is untyped. The API is six routes,
so this talks to it with httpx directly (`trust_env=False`: an HTTP proxy from the
environment must never sit between the harness and Toxiproxy).

Proxies are named after their link with ``.`` for the arrow (``sequencer.db`` for
``sequencer->db``): service names never contain a dot, and the name needs no escaping
in the API's URLs.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from l2chaos.errors import FaultError, StackError
from l2chaos.httpbody import answer_body, error_detail

from .base import Toxic
from .paths import cache_dir

__all__ = [
    "STREAMS",
    "TOXIC_TYPES",
    "Proxy",
    "ToxiproxyClient",
    "ToxiproxyError",
    "find_toxiproxy_server",
    "proxy_name",
]

# Toxic types of Toxiproxy 2.x and their integer attributes.
TOXIC_TYPES: dict[str, tuple[str, ...]] = {
    "latency": ("latency", "jitter"),  # ms
    "bandwidth": ("rate",),  # KB/s
    "slow_close": ("delay",),  # ms
    "timeout": ("timeout",),  # ms; 0 = never close, drop data until removed
    "reset_peer": ("timeout",),  # ms
    "slicer": ("average_size", "size_variation", "delay"),  # bytes, bytes, microseconds
    "limit_data": ("bytes",),
}
STREAMS = ("upstream", "downstream")


class ToxiproxyError(FaultError):
    """A Toxiproxy API call failed. `status` is the HTTP status (None: no answer)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


def proxy_name(link: str) -> str:
    """``"a->b"`` → ``"a.b"``."""
    client, sep, server = link.replace(" ", "").partition("->")
    if not sep or not client or not server:
        raise ValueError(f"not a link: {link!r} (expected client->server)")
    return f"{client}.{server}"


@dataclass(frozen=True)
class Proxy:
    name: str
    listen: str
    upstream: str
    enabled: bool
    toxics: tuple[Toxic, ...] = ()

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> Proxy:
        return cls(
            name=str(d["name"]),
            listen=str(d["listen"]),
            upstream=str(d["upstream"]),
            enabled=bool(d.get("enabled", True)),
            toxics=tuple(_toxic_from_api(t) for t in d.get("toxics") or ()),
        )


def _toxic_from_api(d: Mapping[str, Any]) -> Toxic:
    return Toxic(
        name=str(d["name"]),
        type=str(d["type"]),
        stream=str(d.get("stream", "downstream")),
        toxicity=float(d.get("toxicity", 1.0)),
        attributes={str(k): int(v) for k, v in dict(d.get("attributes") or {}).items()},
    )


class ToxiproxyClient:
    """The Toxiproxy HTTP API at `api` (``host:port``). Thread-safe (httpx.Client is)."""

    def __init__(self, api: str, timeout_s: float = 5.0) -> None:
        self.api = api
        self._http = httpx.Client(base_url=f"http://{api}", timeout=timeout_s, trust_env=False)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ToxiproxyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, json: Any = None) -> Any:
        try:
            resp = self._http.request(method, path, json=json)
        except httpx.HTTPError as exc:
            raise ToxiproxyError(f"toxiproxy {method} {path} at {self.api}: {exc}") from exc
        if resp.status_code >= 400:
            raise ToxiproxyError(
                f"toxiproxy {method} {path}: {resp.status_code} {error_detail(resp)}".rstrip(),
                resp.status_code,
            )
        return answer_body(resp)

    # -- server

    def version(self) -> str:
        """Server version without the leading v (``2.12.0``)."""
        data = self._call("GET", "/version")
        text = data.get("version", "") if isinstance(data, dict) else str(data)
        return str(text).strip().removeprefix("v")

    def ping(self) -> bool:
        try:
            self._http.get("/version", timeout=1.0)
        except httpx.HTTPError:
            return False
        return True

    def reset(self) -> None:
        """Enable every proxy and remove every toxic."""
        self._call("POST", "/reset")

    # -- proxies

    def proxies(self) -> dict[str, Proxy]:
        data = self._call("GET", "/proxies") or {}
        return {name: Proxy.from_api(d) for name, d in data.items()}

    def proxy(self, name: str) -> Proxy:
        return Proxy.from_api(self._call("GET", f"/proxies/{name}"))

    def create_proxy(self, name: str, listen: str, upstream: str, enabled: bool = True) -> Proxy:
        body = {"name": name, "listen": listen, "upstream": upstream, "enabled": enabled}
        return Proxy.from_api(self._call("POST", "/proxies", body))

    def delete_proxy(self, name: str, missing_ok: bool = True) -> None:
        try:
            self._call("DELETE", f"/proxies/{name}")
        except ToxiproxyError as exc:
            if not (missing_ok and exc.status == 404):
                raise

    def set_enabled(self, name: str, enabled: bool) -> Proxy:
        return Proxy.from_api(self._call("PATCH", f"/proxies/{name}", {"enabled": enabled}))

    def is_enabled(self, name: str) -> bool:
        return self.proxy(name).enabled

    # -- toxics

    def toxics(self, proxy: str) -> list[Toxic]:
        return [_toxic_from_api(t) for t in self._call("GET", f"/proxies/{proxy}/toxics") or ()]

    def add_toxic(self, proxy: str, toxic: Toxic) -> Toxic:
        if toxic.type not in TOXIC_TYPES:
            raise ToxiproxyError(
                f"unknown toxic type {toxic.type!r}; known: {', '.join(TOXIC_TYPES)}"
            )
        if toxic.stream not in STREAMS:
            raise ToxiproxyError(f"stream must be upstream or downstream, got {toxic.stream!r}")
        body = {
            "name": toxic.name,
            "type": toxic.type,
            "stream": toxic.stream,
            "toxicity": toxic.toxicity,
            "attributes": dict(toxic.attributes),
        }
        return _toxic_from_api(self._call("POST", f"/proxies/{proxy}/toxics", body))

    def remove_toxic(self, proxy: str, name: str, missing_ok: bool = True) -> bool:
        """Remove a toxic; False when it was not there (and `missing_ok`)."""
        try:
            self._call("DELETE", f"/proxies/{proxy}/toxics/{name}")
        except ToxiproxyError as exc:
            if missing_ok and exc.status == 404:
                return False
            raise
        return True


def find_toxiproxy_server() -> Path:
    """``$L2CHAOS_TOXIPROXY``, else ``<cache>/bin/toxiproxy-server``, else PATH."""
    explicit = os.environ.get("L2CHAOS_TOXIPROXY")
    if explicit:
        p = Path(explicit)
        if p.is_file() and os.access(p, os.X_OK):
            return p
        raise StackError(
            f"L2CHAOS_TOXIPROXY={explicit} is not an executable file; unset it or run `bash .ci/setup`"
        )
    cached = cache_dir() / "bin" / "toxiproxy-server"
    if cached.is_file() and os.access(cached, os.X_OK):
        return cached
    found = shutil.which("toxiproxy-server")
    if found:
        return Path(found)
    raise StackError(
        f"toxiproxy-server not found (looked at $L2CHAOS_TOXIPROXY, {cached} and PATH); "
        "install it with `bash .ci/setup`"
    )
