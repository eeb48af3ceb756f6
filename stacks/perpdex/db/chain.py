"""The sequencer's persistence: a sealed block written in one statement (so one
transaction and one round trip), the state loaded back on start, and rollback.

A block is written with a single INSERT ... WITH (data-modifying CTEs) statement fed
with arrays: block row, transactions, events, account snapshots and current accounts,
positions, orders, fills, liquidations, funding payments, market data, consumed bridge
messages and the chain head. Either all of it commits or none.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from l2chaos.stacks.perpdex.engine.book import Order
from l2chaos.stacks.perpdex.engine.exchange import BlockBody, BlockContext, BlockOutput
from l2chaos.stacks.perpdex.engine.state import Account, MarketData, Position

__all__ = ["ChainStore", "LoadedState", "SealedBlock"]


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


@dataclass
class SealedBlock:
    """A block as the exchange ended it, the hashes that seal it, and the market rows
    written with it."""

    out: BlockOutput  # context, body, state root and mode, unchanged
    hash: str
    parent_hash: str
    tx_root: str
    markets: list[MarketData] = field(default_factory=list)  # current market rows to write
    market_history: list[MarketData] = field(default_factory=list)  # rows that changed

    @property
    def ctx(self) -> BlockContext:
        return self.out.ctx

    @property
    def body(self) -> BlockBody:
        return self.out.body


@dataclass
class LoadedState:
    head: dict[str, Any] | None
    accounts: list[Account]
    open_orders: list[Order]
    consumed: dict[int, int]
    markets: list[MarketData]
    next_event_seq: int
    next_order_id: int
    next_fill_id: int
    next_block_seq: int
    meta: dict[str, Any]


# The orders table: an Order's fields in their order, each under its own name but the id.
_ORDER_COLUMNS = (
    ("order_id", "bigint"),
    ("account", "bigint"),
    ("market", "text"),
    ("side", "text"),
    ("type", "text"),
    ("price", "bigint"),
    ("size", "bigint"),
    ("remaining", "bigint"),
    ("post_only", "boolean"),
    ("reduce_only", "boolean"),
    ("client_id", "text"),
    ("tx", "text"),
    ("status", "text"),
    ("reason", "text"),
    ("created_block_seq", "bigint"),
)
_ORDER_FIELDS = tuple("id" if c == "order_id" else c for c, _ in _ORDER_COLUMNS)


class _Sql:
    """Builds the one-statement block commit from table descriptions."""

    def __init__(self) -> None:
        self.n = 10  # $1..$10: block scalars
        self.ctes: list[str] = []

    def arrays(self, types: Sequence[str]) -> list[str]:
        out = []
        for t in types:
            self.n += 1
            out.append(f"${self.n}::{t}[]")
        return out

    def insert(
        self,
        name: str,
        table: str,
        cols: Sequence[tuple[str, str]],
        consts: dict[str, str] | None = None,
        conflict: str = "",
    ) -> None:
        consts = consts or {}
        params = self.arrays([t for _, t in cols])
        aliases = [f"c{i}" for i in range(len(cols))]
        select = [
            f"u.{a}::jsonb" if t == "text" and c.endswith("_json") else f"u.{a}"
            for a, (c, t) in zip(aliases, cols, strict=True)
        ]
        names = [c.removesuffix("_json") for c, _ in cols] + list(consts)
        select += list(consts.values())
        self.ctes.append(
            f"{name} AS (INSERT INTO {table} ({', '.join(names)}) "
            f"SELECT {', '.join(select)} FROM unnest({', '.join(params)}) AS u({', '.join(aliases)}) "
            f"{conflict})"
        )


def _build_commit_sql() -> str:
    s = _Sql()
    s.ctes.append(
        "b AS (INSERT INTO blocks (seq, number, hash, parent_hash, state_root, tx_root, "
        "chain_ts_ns, host_ts_ns, tx_count, mode) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10))"
    )
    blk = {"block_seq": "$1::bigint", "block": "$2::bigint"}
    s.insert(
        "t",
        "transactions",
        [
            ("idx", "int"),
            ("hash", "text"),
            ("kind", "text"),
            ("account", "bigint"),
            ("status", "text"),
            ("reason", "text"),
            ("order_id", "bigint"),
            ("client_id", "text"),
            ("nonce", "text"),
            ("body_json", "text"),
            ("receipt_json", "text"),
        ],
        blk,
    )
    s.insert(
        "e",
        "events",
        [
            ("seq", "bigint"),
            ("kind", "text"),
            ("tx", "text"),
            ("account", "bigint"),
            ("data_json", "text"),
            ("ledger_json", "text"),
        ],
        {**blk, "host_ts_ns": "$8::bigint", "chain_ts_ns": "$7::bigint"},
    )
    s.insert(
        "sn",
        "account_snapshots",
        [("account", "bigint"), ("cash", "bigint"), ("positions_json", "text")],
        blk,
    )
    touched = f"${s.n - 2}::bigint[]"  # the snapshot accounts array
    snap_cash = f"${s.n - 1}::bigint[]"
    s.ctes.append(
        f"a AS (INSERT INTO accounts (account, cash, updated_block_seq) "
        f"SELECT u.a, u.c, $1 FROM unnest({touched}, {snap_cash}) AS u(a, c) "
        "ON CONFLICT (account) DO UPDATE SET cash = excluded.cash, "
        "updated_block_seq = excluded.updated_block_seq)"
    )
    s.insert(
        "p",
        "positions",
        [("account", "bigint"), ("market", "text"), ("size", "bigint"), ("cached_index", "bigint")],
        conflict="ON CONFLICT (account, market) DO UPDATE SET size = excluded.size, "
        "cached_index = excluded.cached_index",
    )
    pa, pm = f"${s.n - 3}::bigint[]", f"${s.n - 2}::text[]"
    s.ctes.append(
        f"pd AS (DELETE FROM positions x WHERE x.account = ANY({touched}) AND NOT EXISTS "
        f"(SELECT 1 FROM unnest({pa}, {pm}) AS n(a, m) WHERE n.a = x.account AND n.m = x.market))"
    )
    s.insert(
        "o",
        "orders",
        _ORDER_COLUMNS,
        {"updated_block_seq": "$1::bigint"},
        conflict="ON CONFLICT (order_id) DO UPDATE SET remaining = excluded.remaining, "
        "status = excluded.status, reason = excluded.reason, "
        "updated_block_seq = excluded.updated_block_seq",
    )
    s.insert(
        "f",
        "fills",
        [
            ("fill_id", "bigint"),
            ("market", "text"),
            ("price", "bigint"),
            ("size", "bigint"),
            ("buyer", "bigint"),
            ("seller", "bigint"),
            ("maker_order", "bigint"),
            ("taker_order", "bigint"),
            ("maker_fee", "bigint"),
            ("taker_fee", "bigint"),
        ],
        blk,
    )
    s.insert(
        "l",
        "liquidations",
        [
            ("event_seq", "bigint"),
            ("account", "bigint"),
            ("market", "text"),
            ("size", "bigint"),
            ("price", "bigint"),
            ("oracle_price", "bigint"),
            ("mark_price", "bigint"),
            ("fee", "bigint"),
        ],
        blk,
    )
    s.insert(
        "fp",
        "funding_payments",
        [
            ("event_seq", "bigint"),
            ("account", "bigint"),
            ("market", "text"),
            ("size", "bigint"),
            ("index_from", "bigint"),
            ("index_to", "bigint"),
            ("cash", "bigint"),
            ("dust_micro", "bigint"),
        ],
        blk,
    )
    market_cols = [
        ("market", "text"),
        ("index_price", "bigint"),
        ("index_ts_ns", "bigint"),
        ("mark_price", "bigint"),
        ("funding_index", "bigint"),
        ("funding_ts_ns", "bigint"),
    ]
    s.insert(
        "ms",
        "market_state",
        market_cols,
        {"updated_block_seq": "$1::bigint"},
        conflict="ON CONFLICT (market) DO UPDATE SET index_price = excluded.index_price, "
        "index_ts_ns = excluded.index_ts_ns, mark_price = excluded.mark_price, "
        "funding_index = excluded.funding_index, funding_ts_ns = excluded.funding_ts_ns, "
        "updated_block_seq = excluded.updated_block_seq",
    )
    s.insert("ph", "prices", market_cols, blk)
    s.insert(
        "cm",
        "consumed_messages",
        [("nonce", "bigint"), ("account", "bigint"), ("amount", "bigint")],
        {"block_seq": "$1::bigint"},
    )
    s.ctes.append(
        "cs AS (INSERT INTO chain_state (id, head_seq, head_number, head_hash, mode) "
        "VALUES (1, $1, $2, $3, $10) ON CONFLICT (id) DO UPDATE SET head_seq = excluded.head_seq, "
        "head_number = excluded.head_number, head_hash = excluded.head_hash, mode = excluded.mode)"
    )
    return "WITH " + ",\n".join(s.ctes) + "\nSELECT 1"


_COMMIT_SQL = _build_commit_sql()


def _market_arrays(rows: Sequence[MarketData]) -> list[list[Any]]:
    return [
        [r.market for r in rows],
        [r.index_price for r in rows],
        [r.index_ts_ns for r in rows],
        [r.mark_price for r in rows],
        [r.funding_index for r in rows],
        [r.funding_ts_ns for r in rows],
    ]


def commit_args(blk: SealedBlock) -> list[Any]:
    """The statement's parameters, in order."""
    ctx, out, body = blk.ctx, blk.out, blk.body
    args: list[Any] = [
        ctx.seq,
        ctx.number,
        blk.hash,
        blk.parent_hash,
        out.state_root,
        blk.tx_root,
        ctx.chain_ts_ns,
        ctx.host_ts_ns,
        len(body.receipts),
        out.mode,
    ]
    txs = body.receipts
    args += [
        list(range(len(txs))),
        [t.hash for t, _ in txs],
        [t.kind for t, _ in txs],
        [t.account for t, _ in txs],
        [r["status"] for _, r in txs],
        [r.get("reason") for _, r in txs],
        [r.get("order_id") for _, r in txs],
        [t.client_id for t, _ in txs],
        [t.nonce for t, _ in txs],
        [_dumps(t.body()) for t, _ in txs],
        [_dumps(r) for _, r in txs],
    ]
    evs = body.events
    args += [
        [e.seq for e in evs],
        [e.kind for e in evs],
        [e.tx for e in evs],
        [e.account for e in evs],
        [_dumps(e.data) for e in evs],
        [None if e.ledger is None else _dumps(e.ledger.to_json()) for e in evs],
    ]
    touched = sorted(body.touched.items())
    args += [
        [a for a, _ in touched],
        [s["cash"] for _, s in touched],
        [_dumps(s["positions"]) for _, s in touched],
    ]
    pos = [(a, m, sc[0], sc[1]) for a, s in touched for m, sc in s["positions"].items()]
    args += [[p[0] for p in pos], [p[1] for p in pos], [p[2] for p in pos], [p[3] for p in pos]]
    orders = [body.orders[k] for k in sorted(body.orders)]
    args += [[getattr(o, f) for o in orders] for f in _ORDER_FIELDS]
    fk = ("fill_id", "market", "price", "size", "buyer", "seller", "maker_order", "taker_order")
    args += [[f[k] for f in body.fills] for k in (*fk, "maker_fee", "taker_fee")]
    lk = ("event_seq", "account", "market", "size", "price", "oracle_price", "mark_price", "fee")
    args += [[x[k] for x in body.liquidations] for k in lk]
    pk = ("event_seq", "account", "market", "size", "index_from", "index_to", "cash", "dust_micro")
    args += [[x[k] for x in body.funding] for k in pk]
    args += _market_arrays(blk.markets)
    args += _market_arrays(blk.market_history)
    args += [
        [c[0] for c in body.consumed],
        [c[1] for c in body.consumed],
        [c[2] for c in body.consumed],
    ]
    return args


def _order(r: Any) -> Order:
    return Order(**{f: r[c] for f, (c, _) in zip(_ORDER_FIELDS, _ORDER_COLUMNS, strict=True)})


def _market(r: Any) -> MarketData:
    return MarketData(
        r["market"],
        r["index_price"],
        r["index_ts_ns"],
        r["mark_price"],
        r["funding_index"],
        r["funding_ts_ns"],
    )


class ChainStore:
    """Queries over one asyncpg connection (the caller owns and replaces it)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    async def commit_block(self, blk: SealedBlock, timeout: float | None = None) -> None:
        await self.conn.execute(_COMMIT_SQL, *commit_args(blk), timeout=timeout)

    async def has_genesis(self) -> bool:
        return bool(await self.conn.fetchval("SELECT EXISTS (SELECT 1 FROM blocks)"))

    async def put_meta(self, values: dict[str, Any]) -> None:
        await self.conn.executemany(
            "INSERT INTO meta (key, value) VALUES ($1, $2::jsonb) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [(k, _dumps(v)) for k, v in values.items()],
        )

    async def load_markets(self) -> list[MarketData]:
        rows = await self.conn.fetch("SELECT * FROM market_state ORDER BY market")
        return [_market(r) for r in rows]

    async def chain_markets(self) -> dict[str, MarketData]:
        """Market data as the canonical chain's events last set it: the latest
        `price_update` per market (else the genesis funding index). What a reload is
        validated against."""
        c = self.conn
        out: dict[str, MarketData] = {}
        genesis = await c.fetchval(
            "SELECT data FROM events WHERE kind = 'genesis' ORDER BY seq LIMIT 1"
        )
        gen_ts = await c.fetchval("SELECT chain_ts_ns FROM blocks ORDER BY seq LIMIT 1")
        for m, fi in (json.loads(genesis)["funding_index"] if genesis else {}).items():
            out[m] = MarketData(m, 0, 0, 0, int(fi), int(gen_ts or 0))
        rows = await c.fetch(
            "SELECT DISTINCT ON (e.data->>'market') e.data, e.chain_ts_ns FROM events e "
            "JOIN blocks b ON b.seq = e.block_seq AND b.canonical "
            "WHERE e.kind = 'price_update' ORDER BY e.data->>'market', e.seq DESC"
        )
        for r in rows:
            d = json.loads(r["data"])
            out[d["market"]] = MarketData(
                d["market"], d["price"], d["observed_ts_ns"], d["mark_price"],
                d["funding_index"], r["chain_ts_ns"],
            )  # fmt: skip
        return out

    async def load_state(self) -> LoadedState:
        c = self.conn
        async with c.transaction(isolation="repeatable_read", readonly=True):
            head_row = await c.fetchrow(
                "SELECT b.seq, b.number, b.hash, b.state_root, b.chain_ts_ns, b.host_ts_ns, cs.mode "
                "FROM chain_state cs JOIN blocks b ON b.seq = cs.head_seq"
            )
            accounts: dict[int, Account] = {
                r["account"]: Account(r["account"], r["cash"])
                for r in await c.fetch("SELECT account, cash FROM accounts")
            }
            for r in await c.fetch("SELECT account, market, size, cached_index FROM positions"):
                if r["size"] != 0:
                    a = accounts.setdefault(r["account"], Account(r["account"]))
                    a.positions[r["market"]] = Position(r["size"], r["cached_index"])
            orders = [
                _order(r)
                for r in await c.fetch(
                    "SELECT * FROM orders WHERE status = 'open' ORDER BY order_id"
                )
            ]
            consumed = {
                r["nonce"]: r["block_seq"]
                for r in await c.fetch("SELECT nonce, block_seq FROM consumed_messages")
            }
            markets = [_market(r) for r in await c.fetch("SELECT * FROM market_state")]
            counters = await c.fetchrow(
                "SELECT (SELECT coalesce(max(seq), 0) FROM events) AS ev, "
                "(SELECT coalesce(max(order_id), 0) FROM orders) AS ord, "
                "(SELECT coalesce(max(fill_id), 0) FROM fills) AS fill, "
                "(SELECT coalesce(max(seq), -1) FROM blocks) AS blk"
            )
            meta = {r["key"]: json.loads(r["value"]) for r in await c.fetch("SELECT * FROM meta")}
        return LoadedState(
            head=dict(head_row) if head_row is not None else None,
            accounts=list(accounts.values()),
            open_orders=orders,
            consumed=consumed,
            markets=markets,
            next_event_seq=counters["ev"] + 1,
            next_order_id=counters["ord"] + 1,
            next_fill_id=counters["fill"] + 1,
            next_block_seq=counters["blk"] + 1,
            meta=meta,
        )

    async def recent_receipts(self, after_seq: int) -> list[tuple[str, int, dict[str, Any]]]:
        rows = await self.conn.fetch(
            "SELECT t.hash, t.block_seq, t.receipt FROM transactions t "
            "JOIN blocks b ON b.seq = t.block_seq AND b.canonical "
            "WHERE t.block_seq > $1 AND t.kind <> 'price' ORDER BY t.block_seq, t.idx",
            after_seq,
        )
        return [(r["hash"], r["block_seq"], json.loads(r["receipt"])) for r in rows]

    async def block_by_number(self, number: int) -> dict[str, Any] | None:
        r = await self.conn.fetchrow(
            "SELECT seq, number, hash, state_root FROM blocks WHERE canonical AND number = $1",
            number,
        )
        return dict(r) if r is not None else None

    async def rollback(self, number: int) -> dict[str, Any]:
        """Make block `number` the head again: later blocks orphaned (kept), current
        accounts, positions, market data and consumed messages restored from the
        snapshots and history of canonical blocks <= number. One transaction."""
        c = self.conn
        async with c.transaction():
            target = await c.fetchrow(
                "SELECT seq, number, hash, state_root FROM blocks WHERE canonical AND number = $1",
                number,
            )
            if target is None:
                raise LookupError(f"no canonical block {number}")
            orphaned = [
                r["seq"]
                for r in await c.fetch(
                    "UPDATE blocks SET canonical = false WHERE canonical AND number > $1 "
                    "RETURNING seq",
                    number,
                )
            ]
            orphaned.sort()
            await c.execute("DELETE FROM accounts")
            await c.execute("DELETE FROM positions")
            await c.execute(
                "CREATE TEMP TABLE restore_snap ON COMMIT DROP AS "
                "SELECT DISTINCT ON (s.account) s.account, s.cash, s.positions, s.block_seq "
                "FROM account_snapshots s JOIN blocks b ON b.seq = s.block_seq AND b.canonical "
                "ORDER BY s.account, s.block_seq DESC"
            )
            await c.execute(
                "INSERT INTO accounts (account, cash, updated_block_seq) "
                "SELECT account, cash, block_seq FROM restore_snap"
            )
            await c.execute(
                "INSERT INTO positions (account, market, size, cached_index) "
                "SELECT r.account, p.key, (p.value->>0)::bigint, (p.value->>1)::bigint "
                "FROM restore_snap r, jsonb_each(r.positions) p WHERE (p.value->>0)::bigint <> 0"
            )
            await c.execute("DELETE FROM market_state")
            await c.execute(
                "INSERT INTO market_state (market, index_price, index_ts_ns, mark_price, "
                "funding_index, funding_ts_ns, updated_block_seq) "
                "SELECT DISTINCT ON (p.market) p.market, p.index_price, p.index_ts_ns, "
                "p.mark_price, p.funding_index, p.funding_ts_ns, p.block_seq "
                "FROM prices p JOIN blocks b ON b.seq = p.block_seq AND b.canonical "
                "ORDER BY p.market, p.block_seq DESC"
            )
            await c.execute(
                "DELETE FROM consumed_messages WHERE block_seq = ANY($1::bigint[])", orphaned
            )
            await c.execute(
                "UPDATE chain_state SET head_seq = $1, head_number = $2, head_hash = $3",
                target["seq"],
                target["number"],
                target["hash"],
            )
        return {
            "to_block": target["number"],
            "to_seq": target["seq"],
            "to_hash": target["hash"],
            "state_root": target["state_root"],
            "orphaned": orphaned,
        }
