"""Audit export: the stack's full record as the files of docs/architecture.md
("Audit export"), straight from Postgres and the oracle.

    python -m l2chaos.stacks.perpdex.audit --db DSN --oracle URL \\
        --token-env L2CHAOS_ADMIN_TOKEN --out DIR

Every database file is streamed with COPY (Postgres renders each row as one JSON
line) inside one read-only REPEATABLE READ transaction, so the files are consistent
with each other even while the stack runs, and a run of 100k blocks never sits in
memory. bridge_state.json (the escrow balance the bridge reports: its own running
total, kept in l1.state in the same transactions as its ledger) comes from that same
snapshot; read live afterwards it could be ahead of the exported ledger by a release. Use direct addresses (never Toxiproxy). Exit codes: 0 written, 2 bad
arguments, 3 the database or a service could not be read.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx

__all__ = ["export", "main"]

# (file, query rendering one JSON object per row, in order)
_FILES: list[tuple[str, str]] = [
    (
        "blocks.jsonl",
        "SELECT json_build_object('seq', seq, 'number', number, 'hash', hash, "
        "'parent_hash', parent_hash, 'state_root', state_root, 'tx_root', tx_root, "
        "'chain_ts_ns', chain_ts_ns, 'host_ts_ns', host_ts_ns, 'tx_count', tx_count, "
        "'canonical', canonical, 'mode', mode) FROM blocks ORDER BY seq",
    ),
    (
        "transactions.jsonl",
        "SELECT json_build_object('hash', hash, 'block', block, 'block_seq', block_seq, "
        "'kind', kind, 'account', account, 'status', status, 'reason', reason, "
        "'order_id', order_id, 'client_id', client_id, 'nonce', nonce) "
        "FROM transactions ORDER BY block_seq, idx",
    ),
    (
        "events.jsonl",
        "SELECT CASE WHEN ledger IS NULL THEN json_build_object('seq', seq, 'block', block, "
        "'block_seq', block_seq, 'host_ts_ns', host_ts_ns, 'chain_ts_ns', chain_ts_ns, "
        "'kind', kind, 'tx', tx, 'data', data) ELSE json_build_object('seq', seq, "
        "'block', block, 'block_seq', block_seq, 'host_ts_ns', host_ts_ns, "
        "'chain_ts_ns', chain_ts_ns, 'kind', kind, 'tx', tx, 'data', data, 'ledger', ledger) "
        "END FROM events ORDER BY seq",
    ),
    (
        "balances.jsonl",
        "SELECT json_build_object('block_seq', block_seq, 'block', block, 'account', account, "
        "'cash', cash, 'positions', positions) FROM account_snapshots ORDER BY block_seq, account",
    ),
    (
        "market_state.jsonl",
        "SELECT json_build_object('block_seq', block_seq, 'block', block, 'market', market, "
        "'index_price', index_price, 'mark_price', mark_price, 'funding_index', funding_index, "
        "'index_ts_ns', index_ts_ns, 'funding_ts_ns', funding_ts_ns) "
        "FROM prices ORDER BY block_seq, market",
    ),
    (
        "bridge_l1.jsonl",
        "SELECT json_build_object('seq', seq, 'host_ts_ns', host_ts_ns, 'kind', kind, "
        "'nonce', nonce, 'account', account, 'amount', amount) FROM l1.ledger ORDER BY seq",
    ),
    (
        "bridge_messages.jsonl",
        "SELECT json_build_object('nonce', nonce, 'direction', direction, 'account', account, "
        "'amount', amount, 'status', status, 'l2_tx', l2_tx, 'l2_block', l2_block, "
        "'l2_block_seq', l2_block_seq, 'attempts', attempts) "
        "FROM l1.messages ORDER BY direction, nonce",
    ),
]


class AuditError(Exception):
    pass


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)


async def _export_db(dsn: str, out: Path) -> dict[str, Any]:
    try:
        conn = await asyncpg.connect(dsn, timeout=10)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        raise AuditError(f"cannot connect to the database: {exc}") from exc
    counts: dict[str, int] = {}
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            meta = {
                r["key"]: json.loads(r["value"]) for r in await conn.fetch("SELECT * FROM meta")
            }
            l1 = await conn.fetchrow("SELECT * FROM l1.state WHERE id = 1")
            for name, query in _FILES:
                path = out / name
                tmp = path.with_suffix(".tmp")
                # CSV with delimiter and quote characters that JSON never contains:
                # each row is written raw, one JSON object per line.
                status = await conn.copy_from_query(
                    query, output=str(tmp), format="csv", delimiter="\x02", quote="\x01"
                )
                os.replace(tmp, path)
                counts[name] = int(status.split()[-1]) if status else 0
    finally:
        await conn.close()
    return {"meta": meta, "counts": counts, "l1_state": dict(l1) if l1 is not None else None}


def _header(meta: dict[str, Any]) -> dict[str, Any]:
    return {
        "format": "l2chaos-audit/1",
        "stack": "perpdex",
        "scales": meta.get("scales"),
        "markets": meta.get("markets"),
        "system_accounts": meta.get("system_accounts"),
        "switches": meta.get("switches"),
        "accounts": meta.get("accounts"),
        "finality_blocks": meta.get("finality_blocks"),
        "seed": meta.get("seed"),
        "formulas": meta.get("formulas"),
        "exported_t_ns": time.time_ns(),
    }


def _fetch_oracle(url: str, token: str | None, out: Path) -> int:
    path = out / "oracle_reference.jsonl"
    tmp = path.with_suffix(".tmp")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    lines = 0
    with httpx.stream(
        "GET", url.rstrip("/") + "/admin/reference", headers=headers, timeout=60
    ) as r:
        if r.status_code != 200:
            raise AuditError(f"oracle answered {r.status_code} for /admin/reference")
        with open(tmp, "wb") as fh:
            for chunk in r.iter_bytes():
                fh.write(chunk)
                lines += chunk.count(b"\n")
    os.replace(tmp, path)
    return lines


def export(db: str, oracle: str | None, token: str | None, out: Path) -> dict[str, Any]:
    """Write every audit file into `out`; returns counts per file."""
    out.mkdir(parents=True, exist_ok=True)
    result = asyncio.run(_export_db(db, out))
    counts: dict[str, Any] = dict(result["counts"])
    _write_json(out / "header.json", _header(result["meta"]))
    l1 = result["l1_state"]
    if l1 is not None:
        _write_json(
            out / "bridge_state.json",
            {
                "escrow_balance": l1["escrow_balance"],
                # the last L2 event the bridge's follower applied (credits, rollbacks)
                "event_cursor": l1["event_cursor"],
                "source": "l1.state in the export's snapshot",
            },
        )
    if oracle:
        try:
            counts["oracle_reference.jsonl"] = _fetch_oracle(oracle, token, out)
        except httpx.HTTPError as exc:
            raise AuditError(f"oracle unavailable: {exc}") from exc
    return counts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m l2chaos.stacks.perpdex.audit", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("--db", required=True, help="PostgreSQL DSN (direct, not through Toxiproxy)")
    ap.add_argument("--oracle", help="the oracle's base URL (for the reference log)")
    ap.add_argument(
        "--token-env",
        default="L2CHAOS_ADMIN_TOKEN",
        help="environment variable holding the admin token",
    )
    ap.add_argument("--out", required=True, help="output folder")
    try:
        args = ap.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    token = os.environ.get(args.token_env) or None
    if args.oracle and token is None:
        print(
            f"audit: --token-env: ${args.token_env} is not set (the oracle's reference log needs it)",
            file=sys.stderr,
        )
        return 2
    try:
        counts = export(args.db, args.oracle, token, Path(args.out))
    except AuditError as exc:
        print(f"audit: {exc}", file=sys.stderr)
        return 3
    print(json.dumps({"out": args.out, "files": counts}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
