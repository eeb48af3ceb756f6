"""audit/events.jsonl: the stack's event log, one line per state change
(docs/architecture.md, "Audit export").

Each line decodes straight into an `Event` (msgspec, no intermediate dict): the
envelope and the `ledger` typed as the format pins them, `data` (the per-kind payload,
whose fields the table in docs/architecture.md names) a JSON object each checker
narrows where it reads a field. A ledger of the wrong shape does not break the
record: the event keeps it as written in `malformed_ledger`, and replaying it
(`LedgerState.apply_json`) reports what is wrong. Any other line of the wrong shape
is a `RecordError` naming the file and line (l2chaos.rundir.jsonl).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import msgspec

from .jsonl import read_typed

__all__ = ["EVENTS", "Event", "Ledger", "read_events"]

EVENTS = "audit/events.jsonl"


class Ledger(msgspec.Struct, frozen=True, gc=False):
    """What an event moved: cash deltas `[account, delta]`, positions after
    `[account, market, size, cached_index]`, the dust account's delta in micro-quanta."""

    cash: list[tuple[int, int]] | None = None
    pos: list[tuple[int, str, int, int]] | None = None
    dust_micro: int | None = None


class Event(msgspec.Struct, gc=False):
    """One line of the event log. `data` is None when the line has no object there."""

    seq: int | None = None
    block: int | None = None
    block_seq: int | None = None
    host_ts_ns: int | None = None
    chain_ts_ns: int | None = None
    kind: str | None = None
    tx: str | None = None
    data: dict[str, object] | None = None
    ledger: Ledger | None = None
    # A `ledger` object of the wrong shape, as written (then `ledger` is None).
    malformed_ledger: dict[str, object] | None = None

    @property
    def has_ledger(self) -> bool:
        return self.ledger is not None or self.malformed_ledger is not None

    @property
    def payload(self) -> dict[str, object]:
        """`data`, or an empty object when the line has none."""
        return self.data if self.data is not None else {}

    def where(self) -> dict[str, object]:
        """Where the event is (sequence, kind, block, time, transaction): how a finding
        about it starts its evidence."""
        return {
            "event_seq": self.seq,
            "kind": self.kind,
            "block": self.block,
            "block_seq": self.block_seq,
            "host_ts_ns": self.host_ts_ns,
            "tx": self.tx,
        }


def _repair(raw: dict[str, object]) -> Event:
    """An event the typed decoder refused: its ledger or data of the wrong shape is kept
    aside (a malformed ledger is a finding of the checkers, not a broken record); a
    wrong envelope is a ValidationError."""
    ledger = raw.pop("ledger", None)
    raw.pop("malformed_ledger", None)
    if not isinstance(raw.get("data"), dict):
        raw.pop("data", None)
    ev = msgspec.convert(raw, Event)
    if isinstance(ledger, dict):
        try:
            ev.ledger = msgspec.convert(ledger, Ledger)
        except msgspec.ValidationError:
            ev.malformed_ledger = ledger
    return ev


def read_events(path: Path, contains: tuple[bytes, ...] = ()) -> Iterator[Event]:
    """Stream the event log (nothing when the file is missing). With `contains`, lines
    that hold none of those byte strings are skipped undecoded (a pre-filter)."""
    return read_typed(path, Event, contains, _repair)
