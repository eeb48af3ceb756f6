"""Readiness checks: one attempt of a service's `ready:` check, whatever the platform.

`attempt_for(check, ...)` turns a check of the stack file (harness/stackspec.py) into a
callable that makes one attempt and says (ready, what it saw). The orchestrator calls it
until it says ready, the unit exits, or the timeout passes. Every attempt is bounded in
time; the orchestrator's own readiness traffic goes to the service directly.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import struct
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from l2chaos.childproc import run_captured
from l2chaos.stackspec import (
    CommandReady,
    HttpReady,
    JsonRpcReady,
    PostgresReady,
    ReadyCheck,
    RunningReady,
    TcpReady,
)

from .base import Endpoint

__all__ = ["Attempt", "ReadyTarget", "attempt_for", "pg_handshake", "quantity"]

Attempt = Callable[[], tuple[bool, str]]
_ATTEMPT_S = 2.0
_COMMAND_S = 10.0


@dataclass
class ReadyTarget:
    """What a check needs of the service it waits for."""

    endpoint: Callable[[], Endpoint]  # reached directly from this host
    http: httpx.Client
    postgres_login: tuple[str, str] | None = None  # (user, database)
    command_values: Callable[[], Mapping[str, str]] = dict
    command_env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    on_postgres_version: Callable[[str], None] = lambda _v: None


def attempt_for(check: ReadyCheck, target: ReadyTarget) -> Attempt:
    if isinstance(check, HttpReady):
        return lambda: _http(target, check.path)
    if isinstance(check, TcpReady):
        return lambda: _tcp(target.endpoint())
    if isinstance(check, JsonRpcReady):
        return _JsonRpc(check, target)
    if isinstance(check, CommandReady):
        return lambda: _command(check, target)
    if isinstance(check, PostgresReady):
        return lambda: _postgres(target)
    assert isinstance(check, RunningReady)
    return lambda: (True, "running")


def _http(target: ReadyTarget, path: str) -> tuple[bool, str]:
    url = target.endpoint().url(path)
    try:
        resp = target.http.get(url, timeout=_ATTEMPT_S)
    except httpx.HTTPError as exc:
        return False, f"GET {url}: {type(exc).__name__} {exc}"
    if resp.status_code == 200:
        return True, "200"
    return False, f"GET {url} answered {resp.status_code}: {resp.text[:200]}"


def _tcp(ep: Endpoint) -> tuple[bool, str]:
    """A connection the service keeps open: a published docker port accepts every
    connection and closes it at once when nothing listens behind it."""
    try:
        with socket.create_connection((ep.host, ep.port), timeout=1.0) as s:
            s.settimeout(0.3)
            try:
                closed = s.recv(1) == b""
            except TimeoutError:
                closed = False
            except OSError:
                closed = True
            return (not closed), "closed at once" if closed else "open"
    except OSError as exc:
        return False, f"connect {ep.hostport}: {exc}"


def quantity(value: Any) -> int | None:
    """A JSON-RPC quantity: an integer, or a hex string like ``"0x1b4"``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.lower().startswith("0x"):
        with contextlib.suppress(ValueError):
            return int(value, 16)
    return None


def _same(result: Any, expected: Any) -> bool:
    want, got = quantity(expected), quantity(result)
    if want is not None and got is not None:
        return want == got
    return bool(result == expected)


class _JsonRpc:
    """A JSON-RPC call (and, with `advances`, a quantity that must grow)."""

    def __init__(self, check: JsonRpcReady, target: ReadyTarget) -> None:
        self.check = check
        self.target = target
        self._ids = itertools.count(1)
        self._first: int | None = None

    def _call(self, method: str, params: list[Any]) -> tuple[bool, Any]:
        url = self.target.endpoint().url(self.check.path)
        body = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}
        try:
            resp = self.target.http.post(url, json=body, timeout=_ATTEMPT_S)
            data = resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            return False, f"{method} at {url}: {type(exc).__name__} {exc}"
        if not isinstance(data, dict) or "error" in data or "result" not in data:
            return False, f"{method} answered {str(data)[:200]}"
        return True, data["result"]

    def __call__(self) -> tuple[bool, str]:
        c = self.check
        if c.check_result:
            ok, result = self._call(c.method, list(c.params))
            if not ok:
                return False, str(result)
            if not _same(result, c.result):
                return False, f"{c.method} returned {result!r}, waiting for {c.result!r}"
        if c.advances is None:
            return True, f"{c.method} returned {c.result!r}"
        ok, result = self._call(c.advances, list(c.params) if c.advances == c.method else [])
        if not ok:
            return False, str(result)
        now = quantity(result)
        if now is None:
            return False, f"{c.advances} returned {result!r}, not a quantity"
        if self._first is None or now < self._first:
            self._first = now
        if now > self._first:
            return True, f"{c.advances} advanced {self._first} -> {now}"
        return False, f"{c.advances} stays at {now}"


def _command(check: CommandReady, target: ReadyTarget) -> tuple[bool, str]:
    from l2chaos.stackspec import render

    values = target.command_values()
    argv = [render(part, values) for part in check.command]
    try:
        done = run_captured(
            argv, timeout_s=_COMMAND_S, cwd=target.cwd, env={**os.environ, **target.command_env}
        )
    except subprocess.TimeoutExpired:
        return False, f"{argv[0]} did not finish within {_COMMAND_S:g}s"
    except OSError as exc:
        return False, f"cannot run {argv[0]!r}: {exc}"
    if done.returncode == 0:
        return True, "exit 0"
    out = (done.stdout + done.stderr).strip()[-200:]
    return False, f"{argv[0]} exited {done.returncode}: {out}"


def _postgres(target: ReadyTarget) -> tuple[bool, str]:
    assert target.postgres_login is not None
    ep = target.endpoint()
    ok, info = pg_handshake(ep.host, ep.port, *target.postgres_login)
    if ok:
        target.on_postgres_version(info)
    return ok, info


def pg_handshake(
    host: str, port: int, user: str, database: str, timeout_s: float = 2.0
) -> tuple[bool, str]:
    """A PostgreSQL startup handshake, like pg_isready but for this user and database.

    (True, server_version) when the server accepts the session (trust auth), else
    (False, the reason: refused, closed, "the database system is starting up", ...).
    Through a published port a connection always opens (the engine's proxy accepts
    it), so only the server's own answer counts.
    """
    params = b"".join(
        k + b"\0" + v.encode() + b"\0" for k, v in ((b"user", user), (b"database", database))
    )
    body = struct.pack("!i", 196608) + params + b"\0"
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as s:
            s.settimeout(timeout_s)
            s.sendall(struct.pack("!i", len(body) + 4) + body)
            return _pg_answer(s)
    except OSError as exc:
        return False, f"{type(exc).__name__}: {exc}"


def _pg_answer(s: socket.socket) -> tuple[bool, str]:
    buf = b""
    version = "?"
    for _ in range(64):  # a handful of messages follow AuthenticationOk
        while len(buf) < 5:
            chunk = s.recv(4096)
            if not chunk:
                return False, "connection closed before the server answered"
            buf += chunk
        kind, length = buf[:1], struct.unpack("!i", buf[1:5])[0]
        while len(buf) < 1 + length:
            chunk = s.recv(4096)
            if not chunk:
                return False, "connection closed mid-message"
            buf += chunk
        payload, buf = buf[5 : 1 + length], buf[1 + length :]
        if kind == b"E":
            fields = {f[:1]: f[1:] for f in payload.split(b"\0") if f}
            return False, fields.get(b"M", b"error").decode(errors="replace")
        if kind == b"R" and struct.unpack("!i", payload[:4])[0] != 0:
            return False, "the server asks for a password (expected trust auth)"
        if kind == b"S":
            name, _, value = payload.partition(b"\0")
            if name == b"server_version":
                version = value.rstrip(b"\0").decode(errors="replace")
        if kind == b"Z":
            with contextlib.suppress(OSError):
                s.sendall(b"X\0\0\0\4")
            return True, version
    return False, "no ReadyForQuery from the server"
