"""Shared by the liquidation checkers: evidence of a liquidation event, and the work a
run gave them.

Work = liquidation attempts: `liquidation` and `liquidation_blocked` events, plus
takeovers the record shows without such an event (the liquidator account's position
grows in the ledger of any other event). A stack that liquidates without exporting the
evidence therefore makes the liquidation checkers fail vacuously instead of pass.
"""

from __future__ import annotations

from l2chaos.rundir.events import Event

from .record import RunRecord

LIQUIDATION_KINDS = ("liquidation", "liquidation_blocked")


def liquidation_evidence(ev: Event, canonical: frozenset[int] | None) -> dict[str, object]:
    """The common evidence of a liquidation event: where, when, who, at what prices."""
    data = ev.payload
    bs = ev.block_seq
    return {
        "block": ev.block,
        "block_seq": bs,
        "event_seq": ev.seq,
        "host_ts_ns": ev.host_ts_ns,
        "canonical": None if canonical is None or bs is None else bs in canonical,
        "account": data.get("account"),
        "market": data.get("market"),
        "size": data.get("size"),
        "price": data.get("price"),
        "oracle_price": data.get("oracle_price"),
        "mark_price": data.get("mark_price"),
        "tx": ev.tx,
    }


def unrecorded_takeovers(record: RunRecord) -> int:
    """Events other than liquidations in which the liquidator account's position grew."""

    def compute() -> int:
        header = record.header
        liq = header.account("liquidator") if header is not None else None
        if liq is None:
            return 0
        sizes: dict[str, int] = {}
        count = 0
        for ev in record.events_mentioning(str(liq)):
            if ev.ledger is None:
                continue
            grew = False
            for acct, market, size, _ in ev.ledger.pos or ():
                if acct != liq:
                    continue
                if abs(size) > abs(sizes.get(market, 0)):
                    grew = True
                sizes[market] = size
            if grew and ev.kind not in LIQUIDATION_KINDS:
                count += 1
        return count

    return record.memo("unrecorded_takeovers", compute)
