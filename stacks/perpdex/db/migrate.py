"""Schema migrations: every migrations/NNN_*.sql not yet applied, in order, once.

Safe to run from several services at once (an advisory lock serialises them).
"""

from __future__ import annotations

from importlib import resources
from typing import Any

__all__ = ["migrate"]

_LOCK_ID = 73210001


def _files() -> list[tuple[int, str, str]]:
    root = resources.files("l2chaos.stacks.perpdex.db").joinpath("migrations")
    out = []
    for entry in root.iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:3].isdigit():
            out.append((int(name[:3]), name, entry.read_text()))
    return sorted(out)


async def migrate(conn: Any) -> list[str]:
    """Apply missing migrations on an asyncpg connection; returns the names applied."""
    applied: list[str] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_ID)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for version, name, sql in _files():
            if version in done:
                continue
            await conn.execute(sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", version, name
            )
            applied.append(name)
    return applied
