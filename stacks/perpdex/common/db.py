"""Connecting a service to PostgreSQL at start-up: the database may still be starting
(or restarting), so services wait for it, within a deadline, and say so in their log."""

from __future__ import annotations

import asyncio
import time

import asyncpg

from .log import JsonLog

__all__ = ["DB_ERRORS", "wait_for_pool"]

# What a connection attempt raises while the database is down or starting.
DB_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


async def wait_for_pool(
    url: str, *, name: str, log: JsonLog, max_size: int, deadline_s: float = 60.0
) -> asyncpg.Pool:
    """A connection pool as soon as the database accepts connections (retrying every
    0.5 s); the last error is raised after `deadline_s`."""
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            return await asyncpg.create_pool(
                url,
                min_size=1,
                max_size=max_size,
                timeout=3,
                command_timeout=10,
                server_settings={"application_name": name},
            )
        except DB_ERRORS as exc:
            if time.monotonic() > deadline:
                raise
            log.info("waiting for the database", error=repr(exc))
            await asyncio.sleep(0.5)
