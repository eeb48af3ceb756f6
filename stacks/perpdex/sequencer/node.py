"""Block production: mempool -> engine -> sealed block -> one Postgres commit -> receipts.

Group commit: a transaction's receipt is released only after the block holding it is
committed, so an acknowledgement is durable. When a commit fails the sealed block is
retried until it commits; production stalls meanwhile and the mempool keeps filling
up to its bound (beyond it: 503 with Retry-After, the time the mempool takes to drain
at the rate blocks have been taking transactions). Without admission control the bound
is `mempool_limit` (20,000: minutes of work at the stack's rate); with it,
`admission_mempool`.

Market data (index, mark, funding index per market) lives in a cache loaded from the
database. After the write connection is lost and re-established the node invalidates
the cache (the database may have changed under it) and reloads it over its READ
connection, which reconnects with its own backoff. The write path meanwhile drains
the backlog at once. A price update cannot be applied to a market the cache has not
loaded (funding accrues from the previous state), so price transactions wait in the
mempool until the reload; everything else reads the cache as it is. Without the
readiness gate nothing waits for the reload: blocks in that window see unpriced (zero)
markets, liquidate against them and persist what they saw, so the reload reads the
zeros back: funding indices reset to 0 while the next oracle prices are right. With it,
matching, liquidation and market-data persistence wait until the cache is loaded and
every market has an oracle price received after the reconnect. Market-data validation
checks the data both ways: a market that has been priced is never persisted as zero,
and every row loaded (reload, start, rollback) must carry the funding index and
positive prices of the chain's last `price_update` for that market; a row that does not
is replaced by the chain's.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any

from l2chaos.stacks.perpdex.common.admission import DrainMeter, retry_after_s
from l2chaos.stacks.perpdex.common.log import JsonLog
from l2chaos.stacks.perpdex.db.chain import ChainStore, LoadedState, SealedBlock
from l2chaos.stacks.perpdex.db.migrate import migrate
from l2chaos.stacks.perpdex.engine.exchange import FORMULAS, BlockContext, BlockOutput, Exchange
from l2chaos.stacks.perpdex.engine.state import MarketCache, MarketData
from l2chaos.stacks.perpdex.engine.stateroot import GENESIS_PARENT, block_hash, tx_root
from l2chaos.stacks.perpdex.engine.txs import Tx
from l2chaos.stacks.perpdex.markets import (
    FUNDING_SCALE,
    MARKET_NAMES,
    MARKETS,
    QUOTE_DECIMALS,
    SYSTEM_ACCOUNTS,
)
from l2chaos.stacks.perpdex.sequencer.config import SequencerConfig
from l2chaos.stacks.perpdex.sequencer.dbconn import ReadPath, WritePath

__all__ = ["MempoolFull", "Node", "RollbackRefused", "genesis_funding_index"]

MS = 1_000_000
_MAX_FAILURES_BEFORE_FATAL = 600  # the same sealed block failing for ~a minute of attempts


class MempoolFull(Exception):
    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RollbackRefused(Exception):
    pass


class Fatal(Exception):
    """The node's state cannot be trusted any more; the process must stop."""


@dataclass(slots=True)
class Pending:
    tx: Tx
    fut: asyncio.Future[dict[str, Any]]


def genesis_funding_index(seed: int, market: str) -> int:
    """A seeded, realistic cumulative funding index: 0.5%-3% of the market's price,
    as if the market had been trading for a long time."""
    rng = random.Random(f"{seed}:{market}:genesis-funding")
    return int(MARKETS[market].ref_price * FUNDING_SCALE * rng.uniform(0.005, 0.03))


class Node:
    def __init__(self, cfg: SequencerConfig, log: JsonLog) -> None:
        self.cfg = cfg
        self.log = log
        self.cache = MarketCache()
        self.ex = Exchange(cfg.layout, cfg.guards, self.cache)
        self.mempool: deque[Pending] = deque()
        self.drained = DrainMeter()  # transactions taken into committed blocks
        self.inflight: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.receipts: dict[str, dict[str, Any]] = {}
        self._receipt_blocks: deque[tuple[int, list[str]]] = deque()
        self.recent_orders: OrderedDict[int, dict[str, Any]] = OrderedDict()
        self.head: dict[str, Any] = {}
        self.next_block_seq = 0
        self.clock_offset_ns = 0
        timeout = cfg.connect_timeout_ms / 1000
        self.write = WritePath(cfg.db_url, timeout, log, self._on_reconnect)
        self.read = ReadPath(cfg.db_url, timeout, log, cfg.read_backoff_ms, cfg.read_backoff_max_ms)
        self._reload_task: asyncio.Task[None] | None = None
        self._reconnect_mono = 0
        self._fresh: set[str] = set()
        self._stage: list[Any] | None = None  # [mode, deadline_mono_ns | None, reason]
        self._last_persisted: dict[str, MarketData] = {}
        self._rollback_req: tuple[int, asyncio.Future[dict[str, Any]]] | None = None
        self._rollback_event: dict[str, Any] | None = None
        self._mode_reqs: list[Pending] = []
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = False
        self.started = False
        self.stalled_since: int | None = None
        self.fatal: str | None = None
        # totals since start, for operators and the benchmark: blocks, txs, time spent
        self.stats = {"blocks": 0, "txs": 0, "build_ms": 0.0, "commit_ms": 0.0, "publish_ms": 0.0}

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        deadline = time.monotonic() + 60
        while True:  # the database may still be starting
            try:
                conn = await self.write.get()
                break
            except Exception as exc:
                if time.monotonic() > deadline:
                    raise
                self.log.info("waiting for the database", error=repr(exc))
                await asyncio.sleep(0.5)
        applied = await migrate(conn)
        if applied:
            self.log.info("migrations applied", names=applied)
        store = ChainStore(conn)
        await store.put_meta(self._meta())
        fresh_chain = not await store.has_genesis()
        if fresh_chain:
            await self._genesis(store)
        read = await self.read.get()
        st = await ChainStore(read).load_state()
        st.markets = await self._validated(ChainStore(read), st.markets)
        self._install(st)
        assert st.head is not None
        root = self.ex.state_root()
        if root != st.head["state_root"]:
            raise Fatal(
                f"state reloaded from the database has root {root}, block {st.head['number']} "
                f"recorded {st.head['state_root']}"
            )
        for h, seq, receipt in await ChainStore(read).recent_receipts(
            st.next_block_seq - 1 - self.cfg.dedup_blocks
        ):
            self._remember(h, seq, receipt)
        self._reconnect_mono = time.monotonic_ns()
        if not fresh_chain:
            self._begin_stages("restart")
        self.log.info(
            "state loaded",
            block=self.head["number"],
            block_seq=self.head["seq"],
            state_root=root,
            accounts=len(st.accounts),
            open_orders=len(st.open_orders),
            mode=self.ex.mode,
            switches=self.cfg.guards.switches(),
        )
        self._loop_task = asyncio.create_task(self._block_loop())
        self.started = True

    async def stop(self) -> None:
        self._stopping = True
        for t in (self._loop_task, self._reload_task):
            if t is not None:
                t.cancel()
        for t in (self._loop_task, self._reload_task):
            if t is not None:
                await asyncio.gather(t, return_exceptions=True)
        err = ConnectionError("sequencer stopping")
        for fut in list(self.inflight.values()):
            if not fut.done():
                fut.set_exception(err)
                fut.exception()  # mark retrieved
        await self.write.close()
        await self.read.close()

    def _meta(self) -> dict[str, Any]:
        layout = self.cfg.layout
        return {
            "stack": "perpdex",
            "seed": self.cfg.common.seed,
            "switches": self.cfg.guards.switches(),
            "scales": {"quote_decimals": QUOTE_DECIMALS, "funding_index_scale": FUNDING_SCALE},
            "markets": {m: MARKETS[m].header() for m in MARKET_NAMES},
            "system_accounts": SYSTEM_ACCOUNTS,
            "accounts": {
                "traders": layout.traders,
                "probe": layout.probe,
                "adversaries": list(layout.adversaries),
            },
            "finality_blocks": self.cfg.finality_blocks,
            "formulas": FORMULAS,
        }

    # ------------------------------------------------------------------ readiness

    def market_ready(self) -> bool:
        return self.cache.loaded and all(m in self._fresh for m in MARKET_NAMES)

    def ready(self) -> tuple[bool, str]:
        if self.fatal is not None:
            return False, f"fatal: {self.fatal}"
        if not self.started:
            return False, "starting"
        if self.stalled_since is not None:
            return False, "block production stalled: the database is unavailable"
        return True, "producing blocks"

    # ------------------------------------------------------------------ submission

    def submit(self, tx: Tx) -> asyncio.Future[dict[str, Any]]:
        """Queue a transaction; the future resolves with its receipt once committed.

        A transaction already committed (same hash) gets its receipt back; one already
        queued shares the pending future.
        """
        loop = asyncio.get_running_loop()
        done = self.receipts.get(tx.hash)
        if done is not None:
            fut: asyncio.Future[dict[str, Any]] = loop.create_future()
            fut.set_result(done)
            return fut
        pending = self.inflight.get(tx.hash)
        if pending is not None:
            return pending
        waiting = len(self.mempool)
        if waiting >= self.cfg.queue_bound:
            retry = retry_after_s(waiting, self.drained.rate(time.monotonic_ns()))
            raise MempoolFull(f"{waiting} transactions are waiting", retry)
        if self._stopping:
            raise MempoolFull("stopping", 1)
        fut = loop.create_future()
        tx.recv_mono_ns = time.monotonic_ns()
        self.mempool.append(Pending(tx, fut))
        self.inflight[tx.hash] = fut
        return fut

    def _remember(self, h: str, seq: int, receipt: dict[str, Any]) -> None:
        self.receipts[h] = receipt
        if self._receipt_blocks and self._receipt_blocks[-1][0] == seq:
            self._receipt_blocks[-1][1].append(h)
        else:
            self._receipt_blocks.append((seq, [h]))

    def _prune_receipts(self) -> None:
        horizon = self.next_block_seq - self.cfg.dedup_blocks
        while self._receipt_blocks and self._receipt_blocks[0][0] < horizon:
            _, hashes = self._receipt_blocks.popleft()
            for h in hashes:
                self.receipts.pop(h, None)

    # ------------------------------------------------------------------ market data

    def _on_reconnect(self) -> None:
        """The write connection came back after a loss: the cache may be stale."""
        self.cache.invalidate()
        self._fresh.clear()
        self._reconnect_mono = time.monotonic_ns()
        if self._reload_task is not None:
            self._reload_task.cancel()
        self._reload_task = asyncio.create_task(self._reload_markets(self.cache.epoch))
        self.log.warning("market data cache invalidated after reconnect; reloading")
        self._begin_stages("reconnect")

    async def _reload_markets(self, epoch: int) -> None:
        started = time.monotonic()
        while not self._stopping:
            try:
                conn = await self.read.get()
                rows = await ChainStore(conn).load_markets()
                rows = await self._validated(ChainStore(conn), rows)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.log.info("market data reload failed", error=repr(exc))
                await self.read.broken()
                continue
            if epoch != self.cache.epoch:
                return
            self.cache.load(rows)
            self._last_persisted = {r.market: r for r in rows}
            self.log.warning(
                "market data reloaded",
                after_ms=round((time.monotonic() - started) * 1000),
                markets={r.market: [r.index_price, r.funding_index] for r in rows},
            )
            return

    async def _validated(self, store: ChainStore, rows: list[MarketData]) -> list[MarketData]:
        """With market_data_validation: each loaded row checked against the chain."""
        if not self.cfg.guards.market_data_validation:
            return rows
        chain = await store.chain_markets()
        by_market = {r.market: r for r in rows}
        out: list[MarketData] = []
        for m in MARKET_NAMES:
            row, want = by_market.get(m), chain.get(m)
            if want is not None and not _agrees(row, want):
                self.log.warning(
                    "market data failed validation on load; using the chain's",
                    market=m,
                    loaded=None if row is None else row.to_json(),
                    chain=want.to_json(),
                )
                row = want
            if row is not None:
                out.append(row)
        return out

    def _persistable(self, row: MarketData) -> bool:
        """With market_data_validation a market once priced is never written as zero."""
        if not self.cfg.guards.market_data_validation:
            return True
        last = self._last_persisted.get(row.market)
        priced_before = last is not None and last.index_price > 0
        return not priced_before or (row.index_price > 0 and row.mark_price > 0)

    # ------------------------------------------------------------------ staged reopen

    def _begin_stages(self, reason: str) -> None:
        if self.cfg.guards.staged_reopen:
            self._stage = ["cancel_only", None, reason]

    def _stage_step(self) -> None:
        if self._stage is None:
            return
        mode, deadline, reason = self._stage
        now = time.monotonic_ns()
        if deadline is None:
            if self.ex.mode == "halted":
                self._stage = None
                return
            self.ex.set_mode("cancel_only", f"staged_reopen:{reason}")
            self._stage = ["cancel_only", now + self.cfg.stage_cancel_only_ms * MS, reason]
            return
        if now < deadline:
            return
        if self.cfg.guards.readiness_gate and not self.market_ready():
            return
        if mode == "cancel_only":
            self.ex.set_mode("post_only", f"staged_reopen:{reason}")
            self._stage = ["post_only", now + self.cfg.stage_post_only_ms * MS, reason]
        else:
            self.ex.set_mode("normal", f"staged_reopen:{reason}")
            self._stage = None

    # ------------------------------------------------------------------ blocks

    async def _block_loop(self) -> None:
        interval = self.cfg.block_interval_ms / 1000
        next_t = time.monotonic()
        try:
            while not self._stopping:
                next_t += interval
                delay = next_t - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    next_t = time.monotonic()
                if self._rollback_req is not None:
                    await self._serve_rollback()
                t0 = time.perf_counter()
                sealed = self._build()
                t1 = time.perf_counter()
                await self._commit(sealed)
                t2 = time.perf_counter()
                self._publish(sealed)
                st = self.stats
                st["blocks"] += 1
                st["txs"] += len(sealed.body.receipts)
                st["build_ms"] += (t1 - t0) * 1000
                st["commit_ms"] += (t2 - t1) * 1000
                st["publish_ms"] += (time.perf_counter() - t2) * 1000
        except asyncio.CancelledError:
            raise
        except Fatal as exc:
            self.fatal = str(exc)
            self.log.error("fatal", error=str(exc))
            raise
        except Exception as exc:
            self.fatal = repr(exc)
            self.log.error("block loop crashed", error=repr(exc))
            raise

    def _context(self) -> BlockContext:
        now = time.time_ns()
        return BlockContext(
            number=self.head["number"] + 1,
            seq=self.next_block_seq,
            chain_ts_ns=now + self.clock_offset_ns,
            host_ts_ns=now,
            market_ready=self.market_ready(),
        )

    def _build(self) -> SealedBlock:
        ctx = self._context()
        ex = self.ex
        ex.begin_block(ctx)
        if self._rollback_event is not None:
            ex.cancel_all("rollback")
            ex.note("rollback", self._rollback_event)
            self._rollback_event = None
        self._stage_step()
        taken: list[Pending] = []
        deferred: list[Pending] = []
        limit = self.cfg.max_block_txs
        while self.mempool and len(taken) < limit:
            p = self.mempool.popleft()
            if p.tx.kind == "price" and not self.cache.loaded:
                deferred.append(p)  # applies to loaded market state only
                continue
            taken.append(p)
        if deferred:
            self.mempool.extendleft(reversed(deferred))
        for p in taken:
            receipt = ex.apply(p.tx)
            if p.tx.kind == "price" and p.tx.recv_mono_ns >= self._reconnect_mono:
                for r in receipt.get("prices", ()):
                    if r["status"] == "accepted":
                        self._fresh.add(r["market"])
            elif p.tx.kind == "mode" and receipt["status"] == "accepted":
                self._stage = None  # an operator's mode overrides the staged reopen
        out = ex.end_block()
        persist = not (self.cfg.guards.readiness_gate and not ctx.market_ready)
        markets: list[MarketData] = []
        history: list[MarketData] = []
        if persist:
            markets = [m for m in self.cache.view().values() if self._persistable(m)]
            history = [m for m in markets if self._last_persisted.get(m.market) != m]
            for m in history:
                self._last_persisted[m.market] = m
        return self._seal(out, self.head["hash"], markets, history)

    def _seal(
        self, out: BlockOutput, parent: str, markets: list[MarketData], history: list[MarketData]
    ) -> SealedBlock:
        ctx = out.ctx
        receipts = out.body.receipts
        troot = tx_root(t.hash for t, _ in receipts)
        h = block_hash(ctx.number, parent, out.state_root, troot, ctx.chain_ts_ns)
        for _, r in receipts:
            r["block_number"] = ctx.number
            r["block_seq"] = ctx.seq
            r["block_hash"] = h
        return SealedBlock(out, h, parent, troot, markets, history)

    async def _commit(self, sealed: SealedBlock) -> None:
        seq, number = sealed.ctx.seq, sealed.ctx.number
        failures = 0
        timeout = max(5.0, self.cfg.connect_timeout_ms / 1000)
        while True:
            try:
                conn = await self.write.get()
                if failures:
                    got = await conn.fetchval(
                        "SELECT hash FROM blocks WHERE seq = $1", seq, timeout=timeout
                    )
                    if got == sealed.hash:
                        break  # it committed; only the answer was lost
                    if got is not None:
                        raise Fatal(f"block seq {seq} is taken by another block {got}")
                await ChainStore(conn).commit_block(sealed, timeout=timeout)
                break
            except (asyncio.CancelledError, Fatal):
                raise
            except Exception as exc:
                failures += 1
                if failures == 1:
                    self.stalled_since = time.monotonic_ns()
                    self.log.warning("block commit failed; retrying", block=number, error=repr(exc))
                elif failures % 50 == 0:
                    self.log.warning(
                        "block commit still failing",
                        block=number,
                        attempts=failures,
                        error=repr(exc),
                    )
                if failures >= _MAX_FAILURES_BEFORE_FATAL and not _is_connection_error(exc):
                    raise Fatal(f"block {number} cannot be committed: {exc!r}") from exc
                await self.write.broken(exc)
                await asyncio.sleep(self.cfg.write_retry_ms / 1000)
        if self.stalled_since is not None:
            stalled_ms = (time.monotonic_ns() - self.stalled_since) // MS
            self.log.warning("block production resumed", block=number, stalled_ms=stalled_ms)
        self.stalled_since = None

    def _publish(self, sealed: SealedBlock) -> None:
        ctx = sealed.ctx
        self.head = {
            "seq": ctx.seq,
            "number": ctx.number,
            "hash": sealed.hash,
            "state_root": sealed.out.state_root,
            "chain_ts_ns": ctx.chain_ts_ns,
            "host_ts_ns": ctx.host_ts_ns,
        }
        self.next_block_seq = ctx.seq + 1
        self.drained.add(time.monotonic_ns(), len(sealed.body.receipts))
        for tx, r in sealed.body.receipts:
            fut = self.inflight.pop(tx.hash, None)
            if fut is not None and not fut.done():
                fut.set_result(r)
            if tx.kind != "price":
                self._remember(tx.hash, ctx.seq, r)
        self._prune_receipts()
        for o in sealed.body.orders.values():
            if o.status != "open":
                self.recent_orders[o.id] = o.to_json()
                self.recent_orders.move_to_end(o.id)
        while len(self.recent_orders) > 100_000:
            self.recent_orders.popitem(last=False)

    async def _genesis(self, store: ChainStore) -> None:
        now = time.time_ns()
        seed = self.cfg.common.seed
        markets = [
            MarketData(m, 0, 0, 0, genesis_funding_index(seed, m), now) for m in MARKET_NAMES
        ]
        self.cache.load(markets)
        ctx = BlockContext(0, 0, now + self.clock_offset_ns, now, True)
        self.ex.begin_block(ctx)
        self.ex.note(
            "genesis",
            {
                "markets": {m: MARKETS[m].header() for m in MARKET_NAMES},
                "funding_index": {m.market: m.funding_index for m in markets},
                "switches": self.cfg.guards.switches(),
                "accounts": self.cfg.layout.last_user,
            },
        )
        out = self.ex.end_block()
        sealed = self._seal(out, GENESIS_PARENT, markets, markets)
        await store.commit_block(sealed)
        self.log.info("genesis block written", hash=sealed.hash)

    def _install(self, st: LoadedState) -> None:
        assert st.head is not None
        self.ex.load(
            st.accounts,
            st.open_orders,
            st.consumed,
            st.head["mode"],
            st.next_event_seq,
            st.next_order_id,
            st.next_fill_id,
        )
        self.cache.load(st.markets)
        self._last_persisted = {m.market: m for m in st.markets}
        self.head = {
            k: st.head[k]
            for k in ("seq", "number", "hash", "state_root", "chain_ts_ns", "host_ts_ns")
        }
        self.next_block_seq = st.next_block_seq

    # ------------------------------------------------------------------ rollback

    async def rollback(self, body: dict[str, Any]) -> dict[str, Any]:
        head = self.head["number"]
        if "to_block" in body:
            target = body["to_block"]
        elif "blocks_back" in body:
            back = body["blocks_back"]
            if isinstance(back, bool) or not isinstance(back, int) or back < 0:
                raise RollbackRefused("blocks_back must be an integer >= 0")
            target = head - back
        else:
            raise RollbackRefused("give to_block or blocks_back")
        if isinstance(target, bool) or not isinstance(target, int):
            raise RollbackRefused("to_block must be an integer")
        if target > head or target < 0:
            raise RollbackRefused(f"block {target} is not in the chain (head {head})")
        horizon = head - self.cfg.finality_blocks
        if target < horizon:
            raise RollbackRefused(
                f"block {target} is below the finality horizon {horizon} "
                f"(head {head} - {self.cfg.finality_blocks} finality blocks)"
            )
        if self._rollback_req is not None:
            raise RollbackRefused("a rollback is already in progress")
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._rollback_req = (target, fut)
        return await fut

    async def _serve_rollback(self) -> None:
        assert self._rollback_req is not None
        target, fut = self._rollback_req
        self._rollback_req = None
        from_block, from_seq = self.head["number"], self.head["seq"]
        try:
            if target < from_block - self.cfg.finality_blocks:
                raise RollbackRefused(f"block {target} fell below the finality horizon")
            conn = await self.write.get()
            store = ChainStore(conn)
            info = await store.rollback(target)
            st = await store.load_state()
            st.markets = await self._validated(store, st.markets)
        except Exception as exc:
            if not fut.done():
                fut.set_exception(exc)
            return
        self._install(st)
        root = self.ex.state_root()
        if root != info["state_root"]:
            err = Fatal(
                f"state after rollback has root {root}, block {target} has {info['state_root']}"
            )
            fut.set_exception(err)
            raise err
        orphaned = set(info["orphaned"])
        kept: deque[tuple[int, list[str]]] = deque()
        for seq, hashes in self._receipt_blocks:
            if seq in orphaned:
                for h in hashes:
                    self.receipts.pop(h, None)
            else:
                kept.append((seq, hashes))
        self._receipt_blocks = kept
        self._fresh.clear()
        self._reconnect_mono = time.monotonic_ns()
        self._begin_stages("rollback")
        self._rollback_event = {
            "to_block": target,
            "to_hash": info["to_hash"],
            "to_seq": info["to_seq"],
            "state_root": info["state_root"],
            "orphaned": info["orphaned"],
            "from_block": from_block,
            "from_seq": from_seq,
        }
        self.log.warning(
            "rolled back",
            from_block=from_block,
            to_block=target,
            orphaned=len(orphaned),
            state_root=root,
        )
        fut.set_result({**self._rollback_event, "state_root_verified": True})


def _agrees(row: MarketData | None, chain: MarketData) -> bool:
    if row is None or row.funding_index != chain.funding_index:
        return False
    return chain.index_price <= 0 or (row.index_price > 0 and row.mark_price > 0)


def _is_connection_error(exc: BaseException) -> bool:
    import asyncpg

    return isinstance(
        exc,
        OSError
        | asyncio.TimeoutError
        | ConnectionError
        | asyncpg.InterfaceError
        | asyncpg.PostgresConnectionError
        | asyncpg.exceptions.OperatorInterventionError
        | asyncpg.exceptions.CannotConnectNowError,
    )
