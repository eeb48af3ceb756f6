"""The L7 proxy process: one HTTP listener per link, forwarding to the link's upstream
through aiohttp, applying the link's rules (engine.py), and a small control API.

Forwarding keeps what a plain proxy would: the verb, path and query, every end-to-end
header (hop-by-hop ones are dropped, as RFC 9110 asks), the status and the body bytes
untouched unless a rule rewrote them. Bodies are read into memory up to `max_body`
bytes; a longer request or answer is streamed through as it is, with no rule applied
(logged as ``oversize``), so the proxy never buffers without bound. When the upstream
gives no answer (refused, reset, cut), the client's connection is closed without one,
as a TCP proxy would do (no made-up 502).

Control API (on its own port, every route needs ``Authorization: Bearer <token>``):

    GET    /version                      {"version"}
    GET    /links                        [{"name", "listen", "upstream", "rules": [...]}]
    POST   /links                        {"name", "listen": "host:port", "upstream": "host:port"}
    DELETE /links/{name}
    POST   /links/{name}/rules           a rule (rules.py) -> {"id", "matched", "hit", "snapshot"?}
    DELETE /links/{name}/rules/{id}      -> {"id", "matched", "hit", ...} (404: no such rule)
    POST   /reset                        remove every rule of every link

A stale_head rule's snapshot is taken when it is added: the proxy asks the upstream for
its head (``starknet_blockNumber``, else ``eth_blockNumber``) and fails the POST (502)
when no head can be read.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from .engine import ActiveRule, Exchange, HeadSnapshot, LinkState
from .messages import dumps
from .rules import Rule, RuleError, StaleHead

__all__ = ["DEFAULT_MAX_BODY", "VERSION", "DecisionLog", "L7Server"]

log = logging.getLogger(__name__)

VERSION = "1"
DEFAULT_MAX_BODY = 8 * 1024 * 1024
_HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection",
        "Keep-Alive",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
        "Host",
        "Content-Length",
    )
)
_CHUNK = 64 * 1024


class DecisionLog:
    """Appends decisions as JSON lines; every line is flushed (a killed proxy loses none)."""

    def __init__(self, path: Path | None) -> None:
        self._f = open(path, "a", encoding="utf-8") if path is not None else None  # noqa: SIM115

    def write(self, record: dict[str, Any]) -> None:
        if self._f is not None:
            self._f.write(json.dumps(record, separators=(",", ":")) + "\n")
            self._f.flush()

    def close(self) -> None:
        if self._f is not None:
            self._f.close()


@dataclass
class _Link:
    state: LinkState
    listen: str
    upstream: str
    runner: web.AppRunner
    session: aiohttp.ClientSession


def _split(hostport: str) -> tuple[str, int]:
    host, sep, port = hostport.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise RuleError(f"expected host:port, got {hostport!r}")
    return host, int(port)


def _headers(src: Any, *, identity: bool = False) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in src.items():
        lk = k.lower()
        if lk in _HOP_BY_HOP or (identity and lk == "accept-encoding"):
            continue
        out[k] = v
    return out


async def _read_capped(stream: aiohttp.StreamReader, cap: int) -> tuple[bytes, bool]:
    """Up to cap+1 bytes of a body; True when it is longer than `cap`."""
    parts: list[bytes] = []
    size = 0
    while size <= cap:
        chunk = await stream.read(min(_CHUNK, cap + 1 - size))
        if not chunk:
            return b"".join(parts), False
        parts.append(chunk)
        size += len(chunk)
    return b"".join(parts), True


def _abort(request: web.Request) -> web.StreamResponse:
    """Close the client's connection with no answer (what a dead or cut peer gives)."""
    if request.transport is not None:
        request.transport.abort()
    raise asyncio.CancelledError


class L7Server:
    """Links and rules of one proxy process. Runs on one asyncio loop."""

    def __init__(self, decisions: DecisionLog, max_body: int = DEFAULT_MAX_BODY) -> None:
        self.decisions = decisions
        self.max_body = max_body
        self.links: dict[str, _Link] = {}

    # ------------------------------------------------------------ links

    async def add_link(self, name: str, listen: str, upstream: str) -> None:
        if name in self.links:
            raise RuleError(f"link {name!r} exists")
        host, port = _split(listen)
        _split(upstream)
        state = LinkState(name)
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, use_dns_cache=False),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept"),
        )
        app = web.Application(client_max_size=self.max_body)
        app.router.add_route("*", "/{tail:.*}", self._handler(state, upstream, session))
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port, reuse_address=True).start()
        except OSError:
            await runner.cleanup()
            await session.close()
            raise
        self.links[name] = _Link(state, listen, upstream, runner, session)

    async def remove_link(self, name: str) -> None:
        link = self.links.pop(name, None)
        if link is not None:
            await link.runner.cleanup()
            await link.session.close()

    async def close(self) -> None:
        for name in list(self.links):
            await self.remove_link(name)
        self.decisions.close()

    # ------------------------------------------------------------ rules

    async def add_rule(self, link_name: str, rule: Rule) -> ActiveRule:
        link = self.links[link_name]
        if rule.id in link.state.rules:
            raise RuleError(f"rule {rule.id!r} exists on {link_name}")
        snapshot = None
        if isinstance(rule.action, StaleHead):
            snapshot = await self._head(link, rule.action)
        active = ActiveRule(rule, snapshot)
        link.state.rules[rule.id] = active
        return active

    async def _head(self, link: _Link, action: StaleHead) -> HeadSnapshot:
        flavors = ("starknet", "evm") if action.flavor == "auto" else (action.flavor,)
        problems: list[str] = []
        for flavor in flavors:
            prefix = "eth" if flavor == "evm" else "starknet"
            try:
                height = await self._rpc(link, action.path, f"{prefix}_blockNumber")
                n = int(height, 16) if isinstance(height, str) else int(height)
            except (TimeoutError, aiohttp.ClientError, ValueError, TypeError, KeyError) as exc:
                problems.append(f"{prefix}_blockNumber: {exc!r}")
                continue
            snap = HeadSnapshot(flavor, n)
            if flavor == "starknet":
                try:
                    hn = await self._rpc(link, action.path, "starknet_blockHashAndNumber")
                    snap.hash_and_number = hn if isinstance(hn, dict) else None
                except (TimeoutError, aiohttp.ClientError, ValueError, KeyError):
                    pass
            return snap
        raise RuleError(f"cannot read the head at {link.upstream}: " + "; ".join(problems))

    async def _rpc(self, link: _Link, path: str, method: str) -> Any:
        body = {"jsonrpc": "2.0", "id": "l2chaos-l7-snapshot", "method": method, "params": []}
        url = f"http://{link.upstream}{path}"
        async with link.session.post(
            url,
            data=dumps(body),
            headers={"Content-Type": "application/json"},
            timeout=aiohttp.ClientTimeout(total=5),
        ) as resp:
            doc = json.loads(await resp.read())
        if not isinstance(doc, dict) or "result" not in doc:
            raise ValueError(f"no result: {str(doc)[:200]}")
        return doc["result"]

    def remove_rule(self, link_name: str, rule_id: str) -> ActiveRule | None:
        return self.links[link_name].state.rules.pop(rule_id, None)

    def reset(self) -> None:
        for link in self.links.values():
            link.state.rules.clear()

    # ------------------------------------------------------------ forwarding

    def _handler(
        self, state: LinkState, upstream: str, session: aiohttp.ClientSession
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            return await self._forward(request, state, upstream, session)

        return handle

    async def _forward(
        self, request: web.Request, state: LinkState, upstream: str, session: aiohttp.ClientSession
    ) -> web.StreamResponse:
        body, oversize = await _read_capped(request.content, self.max_body)
        url = f"http://{upstream}{request.rel_url}"
        if oversize:
            return await self._stream_through(request, url, body, session, state)
        ex = Exchange(state, request.method, request.path, body)
        try:
            return await self._exchange(request, ex, url, session)
        finally:
            for d in ex.decisions:
                self.decisions.write(d.to_json(state.name, ex.req))

    async def _exchange(
        self, request: web.Request, ex: Exchange, url: str, session: aiohttp.ClientSession
    ) -> web.StreamResponse:
        plan = ex.before()
        if plan.delay_s:
            await asyncio.sleep(plan.delay_s)
        if plan.local:
            assert plan.status is not None
            return web.Response(status=plan.status, body=plan.body, headers=plan.headers)
        try:
            async with session.request(
                request.method,
                url,
                data=plan.body if plan.body or request.can_read_body else None,
                headers=_headers(request.headers, identity=plan.identity),
                allow_redirects=False,
            ) as resp:
                answer, oversize = await _read_capped(resp.content, self.max_body)
                if oversize:
                    ex.upstream_failed("oversize answer")
                    return await self._relay_rest(request, resp, answer)
                status, headers = resp.status, _headers(resp.headers)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            ex.upstream_failed(f"upstream: {type(exc).__name__}")
            return _abort(request)
        after = ex.after(answer)
        if after.delay_s:
            await asyncio.sleep(after.delay_s)
        if after.drop == "drop":
            return _abort(request)
        if after.drop == "cut":
            return await self._cut(request, status, headers, after.body)
        return web.Response(status=status, body=after.body, headers=headers)

    async def _cut(
        self, request: web.Request, status: int, headers: dict[str, str], body: bytes
    ) -> web.StreamResponse:
        """Send the status, the headers and half of the body, then close."""
        resp = web.StreamResponse(status=status, headers=headers)
        resp.content_length = len(body)
        await resp.prepare(request)
        await resp.write(body[: len(body) // 2])
        return _abort(request)

    async def _relay_rest(
        self, request: web.Request, resp: aiohttp.ClientResponse, head: bytes
    ) -> web.StreamResponse:
        out = web.StreamResponse(status=resp.status, headers=_headers(resp.headers))
        if resp.content_length is not None:
            out.content_length = resp.content_length
        await out.prepare(request)
        await out.write(head)
        async for chunk in resp.content.iter_chunked(_CHUNK):
            await out.write(chunk)
        await out.write_eof()
        return out

    async def _stream_through(
        self,
        request: web.Request,
        url: str,
        head: bytes,
        session: aiohttp.ClientSession,
        state: LinkState,
    ) -> web.StreamResponse:
        """A request body over the cap: forwarded as a stream, no rule applied."""
        self.decisions.write(
            {
                "t_ns": time.time_ns(),
                "mono_ns": time.monotonic_ns(),
                "link": state.name,
                "req": state.next_seq(),
                "effect": "oversize",
                "call": {"verb": request.method, "path": request.path},
            }
        )

        async def body() -> Any:
            yield head
            async for chunk in request.content.iter_chunked(_CHUNK):
                yield chunk

        try:
            async with session.request(
                request.method,
                url,
                data=body(),
                headers=_headers(request.headers),
                allow_redirects=False,
            ) as resp:
                return await self._relay_rest(request, resp, b"")
        except (TimeoutError, aiohttp.ClientError, OSError):
            return _abort(request)

    # ------------------------------------------------------------ control API

    def control_app(self, token: str) -> web.Application:
        @web.middleware
        async def auth(
            request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
        ) -> web.StreamResponse:
            given = request.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                return _json({"error": "unauthorized"}, 401)
            try:
                return await handler(request)
            except RuleError as exc:
                return _json({"error": str(exc)}, 400)
            except KeyError as exc:
                return _json({"error": f"no such link {exc.args[0]!r}"}, 404)

        app = web.Application(middlewares=[auth], client_max_size=1024 * 1024)
        r = app.router
        r.add_get("/version", self._c_version)
        r.add_get("/links", self._c_links)
        r.add_post("/links", self._c_add_link)
        r.add_delete("/links/{name}", self._c_remove_link)
        r.add_post("/links/{name}/rules", self._c_add_rule)
        r.add_delete("/links/{name}/rules/{rule}", self._c_remove_rule)
        r.add_post("/reset", self._c_reset)
        return app

    async def _c_version(self, request: web.Request) -> web.Response:
        return _json({"version": VERSION})

    async def _c_links(self, request: web.Request) -> web.Response:
        return _json(
            [
                {
                    "name": name,
                    "listen": lk.listen,
                    "upstream": lk.upstream,
                    "rules": [{"id": rid, **ar.stats()} for rid, ar in lk.state.rules.items()],
                }
                for name, lk in self.links.items()
            ]
        )

    async def _c_add_link(self, request: web.Request) -> web.Response:
        body = await _body(request)
        try:
            await self.add_link(str(body["name"]), str(body["listen"]), str(body["upstream"]))
        except KeyError as exc:
            raise RuleError(f"missing {exc.args[0]!r}") from None
        except OSError as exc:
            return _json({"error": f"cannot listen on {body['listen']}: {exc}"}, 409)
        return _json({"name": body["name"]}, 201)

    async def _c_remove_link(self, request: web.Request) -> web.Response:
        await self.remove_link(request.match_info["name"])
        return _json({}, 200)

    async def _c_add_rule(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self.links:
            raise KeyError(name)
        rule = Rule.from_json(await _body(request))
        try:
            active = await self.add_rule(name, rule)
        except RuleError as exc:
            if isinstance(rule.action, StaleHead):
                return _json({"error": str(exc)}, 502)
            raise
        return _json({"id": rule.id, **active.stats()}, 201)

    async def _c_remove_rule(self, request: web.Request) -> web.Response:
        rule_id = request.match_info["rule"]
        active = self.remove_rule(request.match_info["name"], rule_id)
        if active is None:
            return _json({"error": f"no rule {rule_id!r}"}, 404)
        return _json({"id": rule_id, **active.stats()})

    async def _c_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return _json({})


async def _body(request: web.Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        raise RuleError("the body is not JSON") from None


def _json(obj: Any, status: int = 200) -> web.Response:
    return web.Response(body=dumps(obj), status=status, content_type="application/json")
