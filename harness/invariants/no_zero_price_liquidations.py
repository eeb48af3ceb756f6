"""no_zero_price_liquidations: every liquidation's fill price, and the oracle and mark
prices it used, are > 0.

Reads `liquidation` and `liquidation_blocked` events from audit/events.jsonl. A
blocked attempt counts as checked: a guard stopped it, which is the hardened
behaviour, so a hardened run that blocked every attempt is not a vacuous pass. A
liquidation without a `price` cannot be checked; if no attempt could be checked
although the run had liquidation attempts (also takeovers by the liquidator account
without a liquidation event), the verdict fails vacuously.
"""

from __future__ import annotations

from typing import ClassVar

from ._liquidations import LIQUIDATION_KINDS, liquidation_evidence, unrecorded_takeovers
from .base import Checker, NoParams, Verdict
from .record import AUDIT, RunRecord

_PRICES = ("price", "oracle_price", "mark_price")


class NoZeroPriceLiquidations(Checker[NoParams]):
    name = "no_zero_price_liquidations"
    summary = "Every liquidation's fill price and the oracle and mark prices it used are > 0."
    needs: ClassVar[tuple[str, ...]] = (AUDIT.EVENTS,)

    def check(self, record: RunRecord) -> Verdict:
        found = self.findings()
        executed = blocked = attempts = 0
        canonical = record.canonical_seqs()
        for ev in record.events(kinds=LIQUIDATION_KINDS):
            attempts += 1
            data = ev.payload
            if ev.kind == "liquidation_blocked":
                blocked += 1  # nothing was executed: the guard did its job
                continue
            if "price" not in data:
                continue  # cannot be checked; counted as work only
            executed += 1
            bad = {k: data.get(k) for k in _PRICES if k in data and not _positive(data[k])}
            if bad:
                fields = ", ".join(f"{k}={v}" for k, v in bad.items())
                found.add(
                    f"account {data.get('account')} liquidated on {data.get('market')} with "
                    f"{fields} in block {ev.block}",
                    expected="> 0",
                    seen=bad,
                    **liquidation_evidence(ev, canonical),
                )
        work = attempts + unrecorded_takeovers(record)
        checked = {"liquidations": executed, "blocked_attempts": blocked}
        return self.verdict(checked, found, work=work, what="liquidation attempts")


def _positive(v: object) -> bool:
    return isinstance(v, int) and v > 0
