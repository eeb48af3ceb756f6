"""Coverage counters for the bridge and rollback paths: when a run reached each one.

A scenario that means to exercise a bridge or rollback path declares it in
`sometimes:`, so a fault that reached nothing fails the run instead of passing it:

    - {during: rollback, count: deposits_pending_across_rollback, extend: 5s}

From audit/events.jsonl (`deposit_credited`, `withdrawal`, `rollback`),
audit/bridge_l1.jsonl (locks, releases) and audit/bridge_messages.jsonl (attempts);
each thing is timed by host time:

- `deposits_relayed_again`: L1 deposits the relayer submitted again because its retry
  window passed without it seeing the credit (an answer lost, the chain down, the
  follower behind): the message's attempts beyond its first, less the resubmission
  each rollback that orphaned its credit forces. At its credit on the final chain (at
  its lock while still pending).
- `deposits_pending_across_rollback`: deposits locked on L1 before a rollback and not
  credited on the final chain before it (never relayed yet, or credited in a block
  it orphaned); once per rollback, at the rollback event.
- `deposits_orphaned_by_rollback`: credits in blocks a rollback orphaned (the bridge
  puts the message back to pending, the relayer credits it again), at the rollback.
- `withdrawals_orphaned_by_rollback`: withdrawals burned in blocks a rollback orphaned
  (the bridge drops them; they must never be released), at the rollback.
- `withdrawals_final_after_rollback`: withdrawals burned before a rollback in a block it
  kept, released on L1 after it (finality judged on the chain the rollback left), at
  the release.

The rollback event is in the first block after the rollback, which can follow the
fault's heal: a rule over a `chain.rollback` window needs an `extend`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .record import AUDIT, RunRecord

__all__ = ["BRIDGE_COUNTERS", "NEEDS", "bridge_path_times"]

BRIDGE_COUNTERS = (
    "deposits_relayed_again",
    "deposits_pending_across_rollback",
    "deposits_orphaned_by_rollback",
    "withdrawals_orphaned_by_rollback",
    "withdrawals_final_after_rollback",
)
NEEDS = (AUDIT.EVENTS, AUDIT.BRIDGE_L1, AUDIT.BRIDGE_MESSAGES)


@dataclass
class _Paths:
    """The run's deposits, withdrawals and rollbacks, as the path counters read them."""

    rollbacks: list[int] = field(default_factory=list)  # time of each rollback event
    orphaned_at: dict[object, int] = field(default_factory=dict)  # block seq -> its rollback
    credits: dict[object, list[tuple[int, int | None]]] = field(
        default_factory=dict
    )  # nonce -> (t, seq)
    withdrawn: list[tuple[int, int | None, object]] = field(default_factory=list)  # (t, seq, nonce)
    locked: dict[object, int] = field(default_factory=dict)  # deposit nonce -> lock time
    released: list[tuple[int, object]] = field(default_factory=list)  # (t, withdrawal nonce)


def _read(record: RunRecord) -> _Paths:
    p = _Paths()
    for ev in record.events(kinds=("deposit_credited", "withdrawal", "rollback")):
        t, data = ev.host_ts_ns, ev.payload
        if t is None:
            continue
        if ev.kind == "rollback":
            p.rollbacks.append(t)
            orphaned = data.get("orphaned")
            for s in orphaned if isinstance(orphaned, list) else ():
                p.orphaned_at.setdefault(s, t)
        elif ev.kind == "withdrawal":
            p.withdrawn.append((t, ev.block_seq, data.get("nonce")))
        else:
            p.credits.setdefault(data.get("nonce"), []).append((t, ev.block_seq))
    for row in record.bridge_l1():
        t = row.host_ts_ns
        if t is not None and row.kind == "lock":
            p.locked[row.nonce] = t
        elif t is not None and row.kind == "release":
            p.released.append((t, row.nonce))
    return p


def bridge_path_times(record: RunRecord) -> dict[str, list[int]]:
    """Host times at which each of `BRIDGE_COUNTERS` was reached (unsorted)."""
    p = _read(record)
    out = _withdrawal_times(p)
    final: dict[object, int] = {}  # deposit nonce -> time of its credit on the final chain
    orphaned: dict[object, int] = {}  # deposit nonce -> its credits in orphaned blocks
    out["deposits_orphaned_by_rollback"] = []
    for nonce, seen in p.credits.items():
        for t, s in seen:
            if s in p.orphaned_at:
                out["deposits_orphaned_by_rollback"].append(p.orphaned_at[s])
                orphaned[nonce] = orphaned.get(nonce, 0) + 1
            else:
                final[nonce] = t
    out["deposits_pending_across_rollback"] = [
        r for r in p.rollbacks for n, t in p.locked.items() if t < r < final.get(n, r + 1)
    ]
    out["deposits_relayed_again"] = []
    for msg in record.bridge_messages():
        nonce, attempts = msg.nonce, msg.attempts
        if msg.direction != "l1_to_l2" or attempts is None:
            continue
        when = final.get(nonce, p.locked.get(nonce))
        if attempts - 1 - orphaned.get(nonce, 0) > 0 and when is not None:
            out["deposits_relayed_again"].append(when)
    return out


def _withdrawal_times(p: _Paths) -> dict[str, list[int]]:
    kept = {n: t for t, s, n in p.withdrawn if s not in p.orphaned_at}  # nonce -> burn time
    return {
        "withdrawals_orphaned_by_rollback": [
            p.orphaned_at[s] for _, s, _ in p.withdrawn if s in p.orphaned_at
        ],
        "withdrawals_final_after_rollback": [
            t for t, n in p.released if any(kept.get(n, r) < r < t for r in p.rollbacks)
        ],
    }
