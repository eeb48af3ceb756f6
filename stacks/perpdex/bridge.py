"""The L1 <-> L2 bridge: an L1 escrow ledger (schema `l1`) and a relayer.

Deposit: lock on L1 (ledger `lock`, message l1_to_l2 pending, one transaction), then
the relayer submits an L1-handler transaction, signed with the bridge's key, through rpc; L2 credits a message nonce
at most once, so retries never double-credit. A message is marked credited only when
its `deposit_credited` event is seen in the L2 event stream.

Withdraw: burned on L2 (a `withdrawal` event); the bridge records the L2->L1 message
and releases it on L1 (ledger `release`) once its block is PERPDEX_FINALITY_BLOCKS
deep, and only when the event follower is caught up with the head it saw, so a
rollback it has not processed yet can never release an orphaned withdrawal.

Rollback: the follower sees the `rollback` event: L1 deposits credited in orphaned
blocks go back to pending (the relayer credits them again), withdrawals from orphaned
blocks not yet released are dropped, so escrow = N + pending deposits + pending
withdrawals holds across it.

Genesis: every account (traders, probe, adversaries) and the insurance fund and
liquidator vault are funded through this same path; /ready waits until all of it is
credited on L2.

API: POST /deposits {kind: "l1_deposit", account, amount, client_id, signature}, signed
by the account's key (common/signing.py; 403 otherwise) -> 201 {nonce, status, l1_seq,
replayed}: the same (account, client_id) again is the same deposit (its nonce back,
nothing locked again; 409 when the amount differs). At most MAX_DEPOSIT quanta per
deposit and PERPDEX_MAX_ESCROW (default MAX_ESCROW) in escrow (422 `escrow_limit` beyond: every L2 balance stays far
from the bigint range). GET /state; admin POST /admin/chaos/relayer {stalled: bool}.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from l2chaos.stacks.perpdex.common.config import Common, ConfigError, env_int, env_str, env_url
from l2chaos.stacks.perpdex.common.db import DB_ERRORS, wait_for_pool
from l2chaos.stacks.perpdex.common.http import (
    ApiError,
    Service,
    dumps,
    json_response,
    read_json,
    run_main,
)
from l2chaos.stacks.perpdex.common.keys import KeyRing
from l2chaos.stacks.perpdex.common.log import JsonLog
from l2chaos.stacks.perpdex.common.signing import SignatureError, Verifier, sign
from l2chaos.stacks.perpdex.db.migrate import migrate
from l2chaos.stacks.perpdex.markets import INSURANCE, LIQUIDATOR, QUOTE_SCALE, AccountLayout

__all__ = ["BridgeService"]

_EVENT_KINDS = ["deposit_credited", "withdrawal", "rollback"]
_CLIENT_ID = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")
MAX_DEPOSIT = 10**15  # quote quanta: $1e9, the trader API's bound
MAX_ESCROW = 2**60  # quote quanta in escrow: Σ L2 cash can never reach a bigint's range


@dataclass(frozen=True)
class BridgeConfig:
    common: Common
    rpc_url: str
    db_url: str
    layout: AccountLayout
    finality_blocks: int
    genesis_user: int  # quote quanta per user account
    genesis_system: int  # liquidator vault
    genesis_insurance: int  # insurance fund
    relay_interval_ms: int
    retry_after_ms: int
    batch: int
    max_escrow: int

    @classmethod
    def from_env(cls, common: Common, env: Mapping[str, str]) -> BridgeConfig:
        user = env_int(env, "PERPDEX_GENESIS_USD", 100_000, min=0)
        system = env_int(env, "PERPDEX_GENESIS_SYSTEM_USD", 10_000_000, min=0)
        insurance = env_int(env, "PERPDEX_INSURANCE_FUND_USD", system, min=0)
        if max(user, system, insurance) * QUOTE_SCALE >= 2**62:
            raise ConfigError("PERPDEX_GENESIS_USD", "too large")
        return cls(
            common=common,
            rpc_url=env_url(env, "PERPDEX_RPC_URL"),
            db_url=env_str(env, "PERPDEX_DB_URL"),
            layout=AccountLayout(env_int(env, "PERPDEX_ACCOUNTS", 1000, min=1, max=1_000_000)),
            finality_blocks=env_int(env, "PERPDEX_FINALITY_BLOCKS", 50, min=1),
            genesis_user=user * QUOTE_SCALE,
            genesis_system=system * QUOTE_SCALE,
            genesis_insurance=insurance * QUOTE_SCALE,
            relay_interval_ms=env_int(env, "PERPDEX_RELAY_INTERVAL_MS", 200, min=10),
            retry_after_ms=env_int(env, "PERPDEX_RELAY_RETRY_MS", 3000, min=10),
            batch=env_int(env, "PERPDEX_RELAY_BATCH", 250, min=1, max=1000),
            max_escrow=env_int(env, "PERPDEX_MAX_ESCROW", MAX_ESCROW, min=1, max=MAX_ESCROW),
        )


class BridgeService(Service):
    def __init__(self, cfg: BridgeConfig, log: JsonLog) -> None:
        super().__init__(cfg.common, log)
        self.cfg = cfg
        ring = KeyRing(cfg.common.seed, cfg.common.admin_token)
        self.signing_key = ring.signing_key("bridge")
        self.verifier = Verifier(ring)
        self.pool: Any = None
        self.rpc: aiohttp.ClientSession | None = None
        self.stalled = False
        self.genesis_pending = True
        self._tasks: list[asyncio.Task[None]] = []
        self._rid = 0
        self.app.router.add_post("/deposits", self.post_deposit)
        self.app.router.add_get("/state", self.get_state)
        self.app.router.add_get("/admin/state", self.get_state)
        self.app.router.add_post("/admin/chaos/relayer", self.admin_relayer)

    def ready(self) -> tuple[bool, str]:
        if self.pool is None:
            return False, "starting"
        if self.genesis_pending:
            return False, "genesis deposits not yet credited on L2"
        return True, "serving"

    async def start(self) -> None:
        self.pool = await wait_for_pool(
            self.cfg.db_url, name="perpdex-bridge", log=self.log, max_size=4
        )
        async with self.pool.acquire() as conn:
            await migrate(conn)
            await self._genesis(conn)
        timeout = aiohttp.ClientTimeout(total=20, connect=3)
        self.rpc = aiohttp.ClientSession(
            base_url=self.cfg.rpc_url, timeout=timeout, json_serialize=dumps
        )
        self._tasks = [
            asyncio.create_task(self._loop("relayer", self._relay)),
            asyncio.create_task(self._loop("follower", self._follow)),
        ]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.rpc is not None:
            await self.rpc.close()
        if self.pool is not None:
            self.pool.terminate()

    async def _genesis(self, conn: Any) -> None:
        async with conn.transaction():
            done = await conn.fetchval("SELECT genesis_done FROM l1.state WHERE id = 1 FOR UPDATE")
            if done:
                return
            funds = [(a, self.cfg.genesis_user) for a in self.cfg.layout.users()]
            funds += [
                (INSURANCE, self.cfg.genesis_insurance),
                (LIQUIDATOR, self.cfg.genesis_system),
            ]
            for account, amount in funds:
                if amount > 0:
                    await self._lock(conn, account, amount)
            await conn.execute("UPDATE l1.state SET genesis_done = true WHERE id = 1")
        self.log.info("genesis deposits locked on L1", accounts=len(funds))

    async def _lock(
        self, conn: Any, account: int, amount: int, client_id: str | None = None
    ) -> tuple[int, int]:
        now = time.time_ns()
        escrow = await conn.fetchval(
            "UPDATE l1.state SET escrow_balance = escrow_balance + $1 "
            "WHERE id = 1 AND escrow_balance + $1 <= $2 RETURNING escrow_balance",
            amount,
            self.cfg.max_escrow,
        )
        if escrow is None:
            raise ApiError(
                422,
                "escrow_limit",
                f"the escrow would exceed {self.cfg.max_escrow} quote quanta",
                "amount",
            )
        nonce = await conn.fetchval("SELECT nextval('l1.deposit_nonce')")
        seq = await conn.fetchval(
            "INSERT INTO l1.ledger (host_ts_ns, kind, nonce, account, amount) "
            "VALUES ($1, 'lock', $2, $3, $4) RETURNING seq",
            now,
            nonce,
            account,
            amount,
        )
        await conn.execute(
            "INSERT INTO l1.messages (direction, nonce, account, amount, status, created_ns, "
            "updated_ns, client_id) VALUES ('l1_to_l2', $1, $2, $3, 'pending', $4, $4, $5)",
            nonce,
            account,
            amount,
            now,
            client_id,
        )
        return nonce, seq

    async def _deposit_once(
        self, account: int, amount: int, client_id: str | None
    ) -> dict[str, Any]:
        """Lock a deposit, or answer the one already locked under (account, client_id)."""
        async with self.pool.acquire() as conn, conn.transaction():
            if client_id is not None:
                # serialise requests for the same client_id: the second sees the first
                await conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                    f"deposit|{account}|{client_id}",
                )
                row = await conn.fetchrow(
                    "SELECT m.nonce, m.amount, m.status, l.seq FROM l1.messages m "
                    "JOIN l1.ledger l ON l.kind = 'lock' AND l.nonce = m.nonce "
                    "WHERE m.direction = 'l1_to_l2' AND m.account = $1 AND m.client_id = $2",
                    account,
                    client_id,
                )
                if row is not None:
                    if row["amount"] != amount:
                        raise ApiError(
                            409,
                            "conflict",
                            f"client_id {client_id!r} is a deposit of {row['amount']} quanta",
                            "client_id",
                        )
                    return {
                        "nonce": row["nonce"],
                        "status": "locked" if row["status"] == "pending" else row["status"],
                        "l1_seq": row["seq"],
                        "replayed": True,
                    }
            nonce, seq = await self._lock(conn, account, amount, client_id)
        return {"nonce": nonce, "status": "locked", "l1_seq": seq, "replayed": False}

    # ------------------------------------------------------------------ API

    async def post_deposit(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        if not isinstance(body, dict) or body.get("kind") != "l1_deposit":
            raise ApiError(
                400, "invalid", "expected {kind: l1_deposit, account, amount, client_id}", "(body)"
            )
        account, amount = body.get("account"), body.get("amount")
        client_id = body.get("client_id")
        if not isinstance(client_id, str) or not _CLIENT_ID.fullmatch(client_id):
            raise ApiError(
                400,
                "invalid",
                "client_id must be 1-64 characters of A-Z a-z 0-9 _ . : -",
                "client_id",
            )
        if (
            isinstance(account, bool)
            or not isinstance(account, int)
            or not self.cfg.layout.is_user(account)
        ):
            raise ApiError(400, "invalid", "unknown account", "account")
        if isinstance(amount, bool) or not isinstance(amount, int) or not 0 < amount <= MAX_DEPOSIT:
            raise ApiError(
                400,
                "invalid",
                f"amount must be a positive integer of at most {MAX_DEPOSIT} quote quanta",
                "amount",
            )
        try:
            self.verifier.verify(body)
        except SignatureError as exc:
            raise ApiError(403, "bad_signature", exc.message, exc.field) from None
        try:
            answer = await self._deposit_once(account, amount, client_id)
        except DB_ERRORS as exc:
            raise ApiError(503, "unavailable", f"L1 unavailable: {exc!r}") from None
        return json_response(answer, 201)

    async def get_state(self, request: web.Request) -> web.Response:
        try:
            async with self.pool.acquire() as conn:
                st = await conn.fetchrow("SELECT * FROM l1.state WHERE id = 1")
                counts = await conn.fetch(
                    "SELECT direction, status, count(*)::bigint AS n, "
                    "coalesce(sum(amount), 0)::bigint AS amount "
                    "FROM l1.messages GROUP BY direction, status ORDER BY 1, 2"
                )
        except DB_ERRORS as exc:
            raise ApiError(503, "unavailable", f"L1 unavailable: {exc!r}") from None
        return json_response(
            {
                "escrow_balance": st["escrow_balance"],
                "event_cursor": st["event_cursor"],
                "genesis_done": st["genesis_done"],
                "genesis_pending": self.genesis_pending,
                "relayer_stalled": self.stalled,
                "messages": [dict(r) for r in counts],
            }
        )

    async def admin_relayer(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        stalled = body.get("stalled") if isinstance(body, dict) else None
        if not isinstance(stalled, bool):
            raise ApiError(400, "invalid", "stalled must be true or false", "stalled")
        self.stalled = stalled
        self.log.warning("relayer stall set", stalled=stalled)
        return json_response({"stalled": stalled})

    # ------------------------------------------------------------------ background

    async def _loop(self, name: str, step: Any) -> None:
        interval = self.cfg.relay_interval_ms / 1000
        failures = 0
        while True:
            try:
                busy = await step()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                if failures == 1 or failures % 50 == 0:
                    self.log.warning(f"{name} step failed", error=repr(exc), failures=failures)
                busy = False
            if not busy:
                await asyncio.sleep(interval)

    async def _rpc(self, method: str, params: Any) -> Any:
        assert self.rpc is not None
        self._rid += 1
        async with self.rpc.post(
            "/", json={"jsonrpc": "2.0", "id": self._rid, "method": method, "params": params}
        ) as r:
            answer = await r.json(content_type=None)
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer["result"]

    async def _relay(self) -> bool:
        """Submit pending L1->L2 messages (not tried within the retry interval)."""
        if self.stalled:
            return False
        now = time.time_ns()
        cutoff = now - self.cfg.retry_after_ms * 1_000_000
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                "UPDATE l1.messages SET attempts = attempts + 1, last_attempt_ns = $1 "
                "WHERE (direction, nonce) IN (SELECT direction, nonce FROM l1.messages "
                "WHERE direction = 'l1_to_l2' AND status = 'pending' AND last_attempt_ns < $2 "
                "ORDER BY nonce LIMIT $3) RETURNING nonce, account, amount",
                now,
                cutoff,
                self.cfg.batch,
            )
        if not rows:
            return False
        assert self.rpc is not None
        batch = [
            {
                "jsonrpc": "2.0",
                "id": r["nonce"],
                "method": "starknet_addInvokeTransaction",
                "params": {
                    "invoke_transaction": sign(
                        self.signing_key,
                        {
                            "kind": "deposit",
                            "account": r["account"],
                            "amount": r["amount"],
                            "nonce": r["nonce"],
                            "relayer_key": "bridge",  # names the relayer; the signature proves it
                        },
                    )
                },
            }
            for r in sorted(rows, key=lambda r: r["nonce"])
        ]
        async with self.rpc.post("/", json=batch) as resp:
            answers = await resp.json(content_type=None)
        bad = [a for a in answers if "error" in a] if isinstance(answers, list) else [answers]
        if bad:
            self.log.info(
                "relayed with errors", sent=len(batch), errors=len(bad), first=bad[0].get("error")
            )
        return len(rows) == self.cfg.batch

    async def _follow(self) -> bool:
        """Apply L2 events (credits, withdrawals, rollbacks) in order, then release final
        withdrawals. Returns True when more events are waiting."""
        async with self.pool.acquire() as conn:
            cursor = await conn.fetchval("SELECT event_cursor FROM l1.state WHERE id = 1")
        page = await self._rpc(
            "starknet_getEvents",
            {"filter": {"from_seq": cursor, "kinds": _EVENT_KINDS, "chunk_size": 1000}},
        )
        events = page["events"]
        async with self.pool.acquire() as conn, conn.transaction():
            for ev in events:
                await self._apply_event(conn, ev)
            await conn.execute(
                "UPDATE l1.state SET event_cursor = $1 WHERE id = 1", page["last_seq"]
            )
        more = page["continuation_token"] is not None
        if not more and page["head"] is not None:
            await self._release(page["head"]["block_number"])
            if self.genesis_pending:
                await self._check_genesis()
        return more

    async def _apply_event(self, conn: Any, ev: dict[str, Any]) -> None:
        d = ev["data"]
        now = time.time_ns()
        if ev["kind"] == "deposit_credited":
            await conn.execute(
                "UPDATE l1.messages SET status = 'credited', l2_tx = $2, l2_block = $3, "
                "l2_block_seq = $4, updated_ns = $5 WHERE direction = 'l1_to_l2' AND nonce = $1",
                d["nonce"],
                ev["tx"],
                ev["block"],
                ev["block_seq"],
                now,
            )
        elif ev["kind"] == "withdrawal":
            await conn.execute(
                "INSERT INTO l1.messages (direction, nonce, account, amount, status, l2_tx, l2_block, "
                "l2_block_seq, created_ns, updated_ns) VALUES ('l2_to_l1', $1, $2, $3, 'pending', $4, $5, $6, $7, $7) "
                "ON CONFLICT DO NOTHING",
                d["nonce"],
                d["account"],
                d["amount"],
                ev["tx"],
                ev["block"],
                ev["block_seq"],
                now,
            )
        elif ev["kind"] == "rollback":
            orphaned = [int(s) for s in d.get("orphaned", [])]
            back = await conn.execute(
                "UPDATE l1.messages SET status = 'pending', l2_tx = NULL, l2_block = NULL, "
                "l2_block_seq = NULL, last_attempt_ns = 0, updated_ns = $2 "
                "WHERE direction = 'l1_to_l2' AND status = 'credited' AND l2_block_seq = ANY($1::bigint[])",
                orphaned,
                now,
            )
            dropped = await conn.execute(
                "UPDATE l1.messages SET status = 'dropped', updated_ns = $2 "
                "WHERE direction = 'l2_to_l1' AND status = 'pending' AND l2_block_seq = ANY($1::bigint[])",
                orphaned,
                now,
            )
            self.log.warning(
                "L2 rollback applied to the bridge",
                to_block=d.get("to_block"),
                deposits_pending_again=back,
                withdrawals_dropped=dropped,
            )

    async def _release(self, head: int) -> None:
        horizon = head - self.cfg.finality_blocks
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "UPDATE l1.messages SET status = 'released', updated_ns = $2 "
                "WHERE direction = 'l2_to_l1' AND status = 'pending' AND l2_block <= $1 "
                "RETURNING nonce, account, amount",
                horizon,
                time.time_ns(),
            )
            now = time.time_ns()
            for r in sorted(rows, key=lambda r: r["nonce"]):
                await conn.execute(
                    "INSERT INTO l1.ledger (host_ts_ns, kind, nonce, account, amount) "
                    "VALUES ($1, 'release', $2, $3, $4)",
                    now,
                    r["nonce"],
                    r["account"],
                    r["amount"],
                )
                await conn.execute(
                    "UPDATE l1.state SET escrow_balance = escrow_balance - $1 WHERE id = 1",
                    r["amount"],
                )

    async def _check_genesis(self) -> None:
        async with self.pool.acquire() as conn:
            left = await conn.fetchval(
                "SELECT count(*) FROM l1.messages WHERE direction = 'l1_to_l2' AND status = 'pending'"
            )
        if left == 0:
            self.genesis_pending = False
            self.log.info("genesis deposits credited on L2")


def main() -> None:
    run_main("bridge", BridgeService, BridgeConfig.from_env)


if __name__ == "__main__":
    main()
