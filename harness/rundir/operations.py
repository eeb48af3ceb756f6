"""What a client operation is and how it ended, as history.jsonl records it
(docs/architecture.md, "history.jsonl"): the op kinds, the completion types, the
`Outcome` of one operation and the ids that join an acknowledged write to the stack's
record. The load generator (l2chaos.load) decides outcomes; the worker logs, the merge
and the checkers read them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

__all__ = ["COMPLETIONS", "READ_OPS", "WRITE_ID_FIELDS", "WRITE_OPS", "Outcome", "write_id"]

WRITE_OPS = frozenset({"place_order", "cancel_order", "deposit", "withdraw"})
READ_OPS = frozenset(
    {
        "get_markets",
        "get_account",
        "get_positions",
        "get_orders",
        "rpc_block_number",
        "rpc_get_block",
        "rpc_get_receipt",
    }
)
COMPLETIONS = frozenset({"ok", "fail", "info"})
# Fields of a write's result that identify it in the stack's record (any one suffices).
WRITE_ID_FIELDS = ("tx_hash", "order_id", "nonce")


class Outcome(NamedTuple):
    """How an operation ended: `type` is ok, fail or info; `error` says why if not ok."""

    type: str
    error: str | None = None


def write_id(result: Mapping[str, Any] | None) -> str | None:
    """The identifying field of a write's result (tx_hash, order_id or nonce), if any."""
    if not result:
        return None
    for key in WRITE_ID_FIELDS:
        if result.get(key) not in (None, ""):
            return key
    return None
