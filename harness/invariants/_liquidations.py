"""Shared by the liquidation checkers: evidence of a liquidation event, and the work a
run gave them.

Work = liquidation attempts: `liquidation` and `liquidation_blocked` events, plus
takeovers the record shows without such an event (the liquidator account's position
grows in the ledger of any other event). A stack that liquidates without exporting the
evidence therefore makes the liquidation checkers fail vacuously instead of pass.
"""

from __future__ import annotations

from typing import Any

from .record import RunRecord

LIQUIDATION_KINDS = ("liquidation", "liquidation_blocked")


def liquidation_evidence(ev: dict[str, Any], canonical: frozenset[int] | None) -> dict[str, Any]:
    """The common evidence of a liquidation event: where, when, who, at what prices."""
    data = ev.get("data") or {}
    bs = ev.get("block_seq")
    return {
        "block": ev.get("block"),
        "block_seq": bs,
        "event_seq": ev.get("seq"),
        "host_ts_ns": ev.get("host_ts_ns"),
        "canonical": None if canonical is None or bs is None else bs in canonical,
        "account": data.get("account"),
        "market": data.get("market"),
        "size": data.get("size"),
        "price": data.get("price"),
        "oracle_price": data.get("oracle_price"),
        "mark_price": data.get("mark_price"),
        "tx": ev.get("tx"),
    }


def unrecorded_takeovers(record: RunRecord) -> int:
    """Events other than liquidations in which the liquidator account's position grew."""

    def compute() -> int:
        header = record.header
        liq = header.account("liquidator") if header is not None else None
        if liq is None:
            return 0
        needle = str(liq)
        sizes: dict[str, int] = {}
        count = 0
        for ev in record.jsonl("audit/events.jsonl", contains=(needle,)):
            ledger = ev.get("ledger")
            if not isinstance(ledger, dict):
                continue
            grew = False
            for entry in ledger.get("pos") or ():
                if not isinstance(entry, (list, tuple)) or len(entry) != 4 or entry[0] != liq:
                    continue
                market, size = entry[1], entry[2]
                if not isinstance(size, int):
                    continue
                if abs(size) > abs(sizes.get(market, 0)):
                    grew = True
                sizes[market] = size
            if grew and ev.get("kind") not in LIQUIDATION_KINDS:
                count += 1
        return count

    return record.memo("unrecorded_takeovers", compute)
