"""l7.jsonl: each decision of the L7 proxy, a rule that matched a call, hit or not
(docs/architecture.md, "l7.jsonl"; the proxy writes them, l2chaos.l7proxy). The
coverage counts the hits that had an effect.
"""

from __future__ import annotations

import msgspec

__all__ = ["L7", "L7Decision"]

L7 = "l7.jsonl"


class L7Decision(msgspec.Struct, gc=False):
    """`effect` is what the rule did (`pass` when its draw missed); a body over the
    proxy's cap is a decision without `rule` and `hit`, effect `oversize`."""

    t_ns: int | None = None
    link: str | None = None
    rule: str | None = None
    hit: bool = False
    effect: str | None = None
