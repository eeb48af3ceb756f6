"""The sequencer's two database paths, each one connection.

WRITE (block commits) reconnects at once and tells the node it reconnected after a
loss (so the node can invalidate what it cached). READ (loading market data) behaves
like a connection pool: after losing its connection it waits before reconnecting,
starting at `backoff_ms` and doubling up to `backoff_max_ms`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import asyncpg
from l2chaos.stacks.perpdex.common.log import JsonLog

__all__ = ["ReadPath", "WritePath", "connect"]


async def connect(dsn: str, timeout_s: float, name: str) -> Any:
    return await asyncpg.connect(
        dsn, timeout=timeout_s, server_settings={"application_name": f"perpdex-{name}"}
    )


async def _close(conn: Any) -> None:
    if conn is None:
        return
    with contextlib.suppress(Exception):  # already gone
        conn.terminate()


async def _close_gracefully(conn: Any) -> None:
    """Close within 2 s, else drop the connection (_close)."""
    if conn is not None:
        try:
            await asyncio.wait_for(conn.close(), 2)
        except Exception:
            await _close(conn)


class WritePath:
    def __init__(
        self, dsn: str, timeout_s: float, log: JsonLog, on_reconnect: Callable[[], None]
    ) -> None:
        self.dsn = dsn
        self.timeout_s = timeout_s
        self.log = log
        self.on_reconnect = on_reconnect
        self.conn: Any = None
        self.lost = False  # the connection broke since the last successful connect
        self.ok = False

    async def get(self) -> Any:
        if self.conn is not None and self.conn.is_closed():
            self.lost = True
            self.conn = None
        if self.conn is None:
            self.conn = await connect(self.dsn, self.timeout_s, "sequencer-write")
            self.ok = True
            if self.lost:
                self.lost = False
                self.log.warning("write connection re-established")
                self.on_reconnect()
        return self.conn

    async def broken(self, exc: BaseException) -> None:
        if self.ok:
            self.log.warning("write connection lost", error=repr(exc))
        self.ok = False
        self.lost = True
        conn, self.conn = self.conn, None
        await _close(conn)

    async def close(self) -> None:
        conn, self.conn = self.conn, None
        await _close_gracefully(conn)


class ReadPath:
    def __init__(
        self, dsn: str, timeout_s: float, log: JsonLog, backoff_ms: int, backoff_max_ms: int
    ) -> None:
        self.dsn = dsn
        self.timeout_s = timeout_s
        self.log = log
        self.backoff_ms = backoff_ms
        self.backoff_max_ms = backoff_max_ms
        self.conn: Any = None
        self._ever = False
        self._lock = asyncio.Lock()

    async def get(self) -> Any:
        async with self._lock:
            if self.conn is not None and not self.conn.is_closed():
                return self.conn
            delay = 0 if not self._ever else self.backoff_ms
            while True:
                if delay:
                    await asyncio.sleep(delay / 1000)
                try:
                    self.conn = await connect(self.dsn, self.timeout_s, "sequencer-read")
                except (
                    TimeoutError,
                    OSError,
                    asyncpg.PostgresError,
                    asyncpg.InterfaceError,
                ) as exc:
                    delay = min(max(delay * 2, self.backoff_ms), self.backoff_max_ms)
                    self.log.info("read connection failed", error=repr(exc), retry_ms=delay)
                    continue
                if self._ever:
                    self.log.warning("read connection re-established", waited_ms=delay)
                self._ever = True
                return self.conn

    async def broken(self) -> None:
        conn, self.conn = self.conn, None
        await _close(conn)

    async def close(self) -> None:
        conn, self.conn = self.conn, None
        await _close_gracefully(conn)
