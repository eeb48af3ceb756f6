"""An adversarial trader acting through the stack's public trader API.

`trader.aggressive_quotes` replays the PAXG part of the Paradex incident: right after
the rollback, while the book was empty and the exchange post-only, aggressive resting
orders far from the fair price skewed the mark and triggered liquidations. It quotes
both sides well away from the index (the far side first, so the near side rests
rather than crossing) from an account the stack reserves for adversaries. Without a
price band the quotes rest and move the mark; with one they are rejected, which the
fault records.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal
from typing import Literal

import httpx
from l2chaos.durations import Duration
from l2chaos.errors import FaultError
from l2chaos.params import JsonValue, Ratio, param, params, required
from l2chaos.safety import ensure_allowed

from .base import Details, Fault, FaultContext, Target, TargetKind, Window


def _on_grid(value: Decimal, step: Decimal) -> Decimal:
    return (value / step).to_integral_value(rounding=ROUND_DOWN) * step


@params
class QuotesParams:
    market: str = required("market to quote, e.g. PAXG-USD-PERP")
    offset: Ratio = param(0.08, "distance of the near quote from the index (0.08 = 8%)")
    direction: Literal["up", "down"] = param("up", "which way to push the mark")
    size_usd: float = param(2000.0, "notional of each quote in USD", min=1.0)
    gap: Ratio = param(0.005, "distance between the two quotes")


class AggressiveQuotes(Fault[QuotesParams]):
    name = "trader.aggressive_quotes"
    summary = (
        "An adversarial trader rests post-only quotes on both sides `offset` away from the index "
        "(far side first) to skew the mark of a thin book; they are cancelled at heal."
    )
    target_kind = TargetKind.NONE
    window = Window.OPTIONAL

    def __init__(self, target: Target, params: QuotesParams, duration: Duration | None) -> None:
        super().__init__(target, params, duration)
        self._placed: list[str] = []

    def resources(self) -> set[str]:
        return {f"adversary:{self.p.market}"}

    def _client(self, ctx: FaultContext) -> httpx.Client:
        url = ctx.endpoints.get("ui")
        if not url:
            raise FaultError(
                "trader.aggressive_quotes needs the stack's trader API (load role 'ui')"
            )
        ensure_allowed(url, what="adversarial orders")
        keys = [a for a in ctx.accounts if a.get("role") == "adversary"]
        if not keys:
            raise FaultError(
                "trader.aggressive_quotes needs an account with role 'adversary' from the stack"
            )
        return httpx.Client(
            base_url=url, headers={"X-API-Key": str(keys[0]["api_key"])}, timeout=10
        )

    def inject(self, ctx: FaultContext) -> Details:
        with self._client(ctx) as http:
            markets = http.get("/v1/markets").raise_for_status().json()
            info = next((m for m in markets["markets"] if m["market"] == self.p.market), None)
            if info is None:
                names = ", ".join(m["market"] for m in markets["markets"])
                raise FaultError(f"unknown market {self.p.market!r}; the stack lists: {names}")
            index = Decimal(str(info["index_price"]))
            tick, step = Decimal(str(info["price_tick"])), Decimal(str(info["size_step"]))
            sign = 1 if self.p.direction == "up" else -1
            near = index * (1 + sign * Decimal(str(self.p.offset)))
            far = near * (1 + sign * Decimal(str(self.p.gap)))
            # Pushing up: the ask (far) first, then a bid under it that rests above the index.
            plan = [("sell", far), ("buy", near)] if sign > 0 else [("buy", far), ("sell", near)]
            results: list[JsonValue] = []
            for side, price in plan:
                price = _on_grid(price, tick)
                size = _on_grid(Decimal(str(self.p.size_usd)) / price, step)
                body: dict[str, JsonValue] = {
                    "market": self.p.market,
                    "side": side,
                    "type": "limit",
                    "size": str(size),
                    "price": str(price),
                    "post_only": True,
                }
                resp = http.post("/v1/orders", json=body)
                answer = resp.json() if resp.content else {}
                if resp.status_code < 300 and "order_id" in answer:
                    self._placed.append(str(answer["order_id"]))
                results.append({"order": body, "status": resp.status_code, "answer": answer})
        return {"index": str(index), "quotes": results, "resting": len(self._placed)}

    def heal(self, ctx: FaultContext) -> Details:
        if self.duration is None or not self._placed:
            return {}
        cancelled: list[JsonValue] = []
        with self._client(ctx) as http:
            for order_id in self._placed:
                resp = http.delete(f"/v1/orders/{order_id}")
                cancelled.append({"order_id": order_id, "status": resp.status_code})
        self._placed.clear()
        return {"cancelled": cancelled}
