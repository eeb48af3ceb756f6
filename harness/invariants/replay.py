"""One replay of the event ledgers, shared by the checkers that follow the accounts.

fund_conservation, value_flows, funding_continuity and chain_consistency's state roots
each judge the accounts replayed from the ledgers of canonical blocks in `seq` order
(ledger.py). Replaying is most of their cost, so the log is replayed once per record:
each of them registers a `Follower` factory in FOLLOWERS (a `LedgerChecker` by its
`follower`); `check_run` declares which
checkers will run (`share_replay`), and the first of those to check the record runs one
replay for all their followers that apply (`RunRecord.memo`); each then reads its own
follower's outcome. A follower that is not in that replay (undeclared, it crashed, or
its checker asks for other parameters) is replayed alone, so a checker's verdict never
depends on the others.

A follower sees the shared state around every event: `before` (the event's ledger not
yet applied), `after` (applied; the `Step` says what it changed) and `finish`. It
reads the state and never changes it.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from l2chaos.rundir.events import Event

from .base import Checker, P, Verdict
from .ledger import LedgerDelta, LedgerError, LedgerState
from .record import AUDIT, RunRecord

__all__ = [
    "FOLLOWERS",
    "Follower",
    "LedgerChecker",
    "Replayed",
    "Step",
    "follow",
    "replay",
    "share_replay",
    "shared_follower",
]

_NO_POSITION = (0, 0)


@dataclass(slots=True)
class Step:
    """What one event's ledger did to the replayed state."""

    # (size, cached index) of each `ledger.pos` entry's position before the event
    before: list[tuple[int, int]]
    # None when the event has no ledger, or a malformed one (`error` says what is wrong;
    # the entries before the bad one were applied)
    delta: LedgerDelta | None
    error: str | None = None


_NO_LEDGER = Step([], None)  # shared: followers never change a step


@dataclass(slots=True)
class Replayed:
    """What the replay read: every event of the log, and those it left out."""

    read: int = 0
    skipped: int = 0  # in a non-canonical block (or, placed_only, in none)


class Follower:
    """A checker's part of the replay (the default hooks do nothing)."""

    def before(self, ev: Event, st: LedgerState) -> None:
        """`ev` is next; its ledger is not applied yet."""

    def after(self, ev: Event, step: Step, st: LedgerState) -> None:
        """`ev`'s ledger is applied."""

    def finish(self, st: LedgerState, replayed: Replayed) -> None:
        """Every event is applied."""

    def verdict(self, checker: Checker[Any], record: RunRecord) -> Verdict:
        """`checker`'s verdict on what this follower found (see `LedgerChecker`)."""
        raise NotImplementedError(f"{type(self).__name__} gives no verdict of its own")


# name -> factory: a follower bound to the state it will read, or why it does not apply
Make = Callable[[RunRecord, LedgerState], "Follower | str"]
FOLLOWERS: dict[str, Make] = {}


def replay(
    events: Iterable[Event],
    canonical: frozenset[int] | None,
    st: LedgerState,
    followers: list[Follower],
    *,
    placed_only: bool = False,
    failed: dict[int, Exception] | None = None,
) -> Replayed:
    """Apply the ledgers of the events in canonical blocks (all of them when `canonical`
    is None; an event in no block counts unless `placed_only`), in order, to `st`, with
    the followers' hooks around each. With `failed`, a follower that raises is dropped
    (its exception kept by its index) and the others go on; without, it propagates."""
    done = Replayed()
    active = list(followers)
    broken: list[Follower] = []

    def drop(f: Follower, exc: Exception) -> None:
        if failed is None:
            raise exc
        failed[followers.index(f)] = exc
        broken.append(f)

    positions = st.positions
    for ev in events:
        done.read += 1
        bs = ev.block_seq
        if bs is None:
            if placed_only:
                done.skipped += 1
                continue
        elif canonical is not None and bs not in canonical:
            done.skipped += 1
            continue
        for f in active:
            try:
                f.before(ev, st)
            except Exception as exc:
                drop(f, exc)
        led = ev.ledger
        if led is not None:
            pos = led.pos
            before = [positions.get(e[0], {}).get(e[1], _NO_POSITION) for e in pos] if pos else []
            step = Step(before, st.apply(led))
        elif ev.malformed_ledger is not None:
            try:
                step = Step([], st.apply_json(ev.malformed_ledger))
            except LedgerError as exc:
                step = Step([], None, str(exc))
        else:
            step = _NO_LEDGER
        for f in active:
            if broken and f in broken:
                continue
            try:
                f.after(ev, step, st)
            except Exception as exc:
                drop(f, exc)
        if broken:
            active = [f for f in active if f not in broken]
            broken.clear()
    for f in active:
        try:
            f.finish(st, done)
        except Exception as exc:
            drop(f, exc)
    return done


def _dust(record: RunRecord) -> int | None:
    header = record.header
    return header.account("dust") if header is not None else None


def share_replay(record: RunRecord, names: Iterable[str]) -> None:
    """Declare the checkers about to check `record`: the first of them to follow the
    ledgers replays them once for every one of them that has a follower. Undeclared,
    a checker replays for itself alone."""
    record.memo("ledger_followers", lambda: frozenset(names))


def _shared(record: RunRecord, first: str) -> dict[str, Follower]:
    """One replay for the declared followers and `first`'s, by name; those that do not
    apply or broke are left out (replayed alone: their checker sees the exception)."""
    wanted = record.memo("ledger_followers", frozenset) | {first}
    try:
        canonical = record.canonical_seqs()
    except Exception:
        return {}  # each checker meets this alone, as it would without sharing
    st = LedgerState(_dust(record))
    pairs: list[tuple[str, Follower]] = []
    for name, make in FOLLOWERS.items():
        if name not in wanted:
            continue
        try:
            made = make(record, st)
        except Exception:
            continue  # replayed alone: its checker meets the exception
        if isinstance(made, Follower):
            pairs.append((name, made))
    if not pairs:
        return {}
    failed: dict[int, Exception] = {}
    replay(record.events(), canonical, st, [f for _, f in pairs], failed=failed)
    return {n: f for i, (n, f) in enumerate(pairs) if i not in failed}


def shared_follower(record: RunRecord, name: str) -> Follower | None:
    """`name`'s follower after the record's shared replay (None: it was not in it). It
    is handed out once: a second check of the same record replays alone."""
    return record.memo("ledger_replay", lambda: _shared(record, name)).pop(name, None)


def follow(record: RunRecord, name: str) -> Follower | str:
    """`name`'s follower after replaying the record: the shared replay's, or one
    replayed alone; a string says why it does not apply to this record."""
    f = shared_follower(record, name)
    if f is not None:
        return f
    st = LedgerState(_dust(record))
    made = FOLLOWERS[name](record, st)
    if isinstance(made, Follower):
        replay(record.events(), record.canonical_seqs(), st, [made])
    return made


class LedgerChecker(Checker[P]):
    """A checker whose verdict is its follower's after the record's (shared) replay: a
    subclass sets `name`, `summary` and `follower`, which FOLLOWERS then lists."""

    needs: ClassVar[tuple[str, ...]] = (AUDIT.HEADER, AUDIT.EVENTS)

    @staticmethod
    @abstractmethod
    def follower(record: RunRecord, st: LedgerState) -> Follower | str:
        """A follower bound to the state it will read, or why the checker does not apply."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "follower" in cls.__dict__:
            FOLLOWERS[cls.name] = cls.follower

    def check(self, record: RunRecord) -> Verdict:
        f = follow(record, self.name)
        return self.not_applicable(f) if isinstance(f, str) else f.verdict(self, record)
