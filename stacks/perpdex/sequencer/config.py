"""The sequencer's settings, from the environment (see stack.yaml `settings`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from l2chaos.stacks.perpdex.common.config import Common, env_bool, env_int, env_str
from l2chaos.stacks.perpdex.engine.exchange import Guards
from l2chaos.stacks.perpdex.markets import AccountLayout

__all__ = ["SequencerConfig"]

MS = 1_000_000


@dataclass(frozen=True)
class SequencerConfig:
    common: Common
    db_url: str
    layout: AccountLayout
    guards: Guards
    block_interval_ms: int = 100
    max_block_txs: int = 2000
    mempool_limit: int = 20_000
    admission_mempool: int | None = None  # admission_control: the mempool's bound
    finality_blocks: int = 50
    stage_cancel_only_ms: int = 2000
    stage_post_only_ms: int = 2000
    write_retry_ms: int = 100
    read_backoff_ms: int = 1000
    read_backoff_max_ms: int = 8000
    dedup_blocks: int = 3000
    tx_timeout_ms: int = 10_000
    connect_timeout_ms: int = 3000

    @property
    def queue_bound(self) -> int:
        """Transactions the mempool takes before it answers 503: with admission control
        its tighter bound (about a block's worth: a write waits at most a block or two),
        else `mempool_limit`."""
        if self.admission_mempool is None:
            return self.mempool_limit
        return min(self.mempool_limit, self.admission_mempool)

    @classmethod
    def from_env(cls, common: Common, env: Mapping[str, str]) -> SequencerConfig:
        guards = Guards.from_switches(
            common.switches,
            max_price_age_ns=env_int(env, "PERPDEX_MAX_PRICE_AGE_MS", 3000, min=1) * MS,
            max_price_jump_bps=env_int(env, "PERPDEX_MAX_PRICE_JUMP_BPS", 1000, min=1),
            break_fee_path=env_bool(env, "PERPDEX_TEST_BREAK_FEE_PATH", False),
        )
        return cls(
            common=common,
            db_url=env_str(env, "PERPDEX_DB_URL"),
            layout=AccountLayout(env_int(env, "PERPDEX_ACCOUNTS", 1000, min=1, max=1_000_000)),
            guards=guards,
            block_interval_ms=env_int(env, "PERPDEX_BLOCK_INTERVAL_MS", 100, min=5, max=60_000),
            max_block_txs=env_int(env, "PERPDEX_MAX_BLOCK_TXS", 2000, min=1),
            mempool_limit=env_int(env, "PERPDEX_MEMPOOL_LIMIT", 20_000, min=1),
            admission_mempool=(
                env_int(env, "PERPDEX_ADMISSION_MEMPOOL", 2000, min=1)
                if common.switches.get("admission_control", False)
                else None
            ),
            finality_blocks=env_int(env, "PERPDEX_FINALITY_BLOCKS", 50, min=1),
            stage_cancel_only_ms=env_int(env, "PERPDEX_STAGE_CANCEL_ONLY_MS", 2000, min=0),
            stage_post_only_ms=env_int(env, "PERPDEX_STAGE_POST_ONLY_MS", 2000, min=0),
            write_retry_ms=env_int(env, "PERPDEX_WRITE_RETRY_MS", 100, min=1),
            read_backoff_ms=env_int(env, "PERPDEX_READ_RECONNECT_MS", 1000, min=1),
            read_backoff_max_ms=env_int(env, "PERPDEX_READ_RECONNECT_MAX_MS", 8000, min=1),
            dedup_blocks=env_int(env, "PERPDEX_DEDUP_BLOCKS", 3000, min=1),
            tx_timeout_ms=env_int(env, "PERPDEX_TX_TIMEOUT_MS", 10_000, min=1),
        )
