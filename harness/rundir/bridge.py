"""The bridge's record in the audit export (docs/architecture.md, "Audit export"):
audit/bridge_l1.jsonl (the L1 escrow ledger), audit/bridge_messages.jsonl (the final
state of each message) and audit/bridge_state.json (what the bridge itself reports:
compared, never trusted). fund_conservation reconciles the escrow; deposits_settle and
the bridge path counters follow each deposit.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from .errors import RecordError

__all__ = [
    "BRIDGE_L1",
    "BRIDGE_MESSAGES",
    "BRIDGE_STATE",
    "BridgeMessage",
    "BridgeState",
    "L1Move",
    "read_bridge_state",
]

BRIDGE_L1 = "audit/bridge_l1.jsonl"
BRIDGE_MESSAGES = "audit/bridge_messages.jsonl"
BRIDGE_STATE = "audit/bridge_state.json"


class L1Move(msgspec.Struct, gc=False):
    """A `lock` (a deposit into the escrow) or `release` (a withdrawal paid out) on L1."""

    seq: int | None = None
    host_ts_ns: int | None = None
    kind: str | None = None
    nonce: int | None = None
    account: int | None = None
    amount: int | None = None


class BridgeMessage(msgspec.Struct, gc=False):
    """`direction` l1_to_l2 (a deposit: `pending` or `credited` at `l2_block_seq`) or
    l2_to_l1 (a withdrawal); `attempts` counts the relayer's tries."""

    nonce: int | None = None
    direction: str | None = None
    account: int | None = None
    amount: int | None = None
    status: str | None = None
    l2_block_seq: int | None = None
    attempts: int | None = None


class BridgeState(msgspec.Struct, gc=False):
    """`escrow_balance`: the bridge's own running total; `event_cursor`: the last L2
    event seq its follower applied (None when the stack does not say)."""

    escrow_balance: int | None = None
    event_cursor: int | None = None


def read_bridge_state(path: Path) -> BridgeState | None:
    """bridge_state.json (None when absent); a file of the wrong shape is a RecordError."""
    if not path.is_file():
        return None
    try:
        return msgspec.json.decode(path.read_bytes(), type=BridgeState)
    except (msgspec.DecodeError, OSError) as exc:
        raise RecordError(f"malformed bridge state: {exc}", file=path) from None
