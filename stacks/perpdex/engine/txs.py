"""Transactions the sequencer accepts, their validation and their hash.

Wire format (JSON objects, integers in the stack's units):

    {"kind": "order", "account", "market", "side": "buy"|"sell", "type": "limit"|"market",
     "size", "price"?, "post_only"?, "reduce_only"?, "client_id"?}
    {"kind": "cancel", "account", "order_id", "client_id"?}
    {"kind": "withdraw", "account", "amount", "client_id"?}
    {"kind": "deposit", "account", "amount", "nonce", "relayer_key"}      (L1 handler)
    {"kind": "price", "prices": [{"market", "price", "observed_ts_ns"}], "nonce"}  (oracle)
    {"kind": "mode", "mode", "nonce"}                                      (admin)

hash = sha256 of (kind, account, client_id or nonce, payload), so a resubmitted
transaction has the same hash and gets the existing receipt. A transaction with
neither client_id nor nonce gets a fresh nonce from the sequencer (not idempotent).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from l2chaos.stacks.perpdex.markets import INSURANCE, LIQUIDATOR, MARKETS, AccountLayout

__all__ = ["MODES", "PriceQuote", "Tx", "TxError", "parse_tx"]

MODES = ("normal", "cancel_only", "post_only", "halted")
KINDS = ("order", "cancel", "withdraw", "deposit", "price", "mode")
_MAX_CLIENT_ID = 64
_MAX_INT = 2**62  # every integer must fit a Postgres bigint with room for sums


class TxError(ValueError):
    """A malformed transaction: `field` names what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class PriceQuote:
    market: str
    price: int
    observed_ts_ns: int


@dataclass(slots=True)
class Tx:
    kind: str
    hash: str = ""
    account: int | None = None
    client_id: str | None = None
    nonce: str | None = None
    market: str | None = None
    side: str | None = None
    type: str | None = None
    size: int = 0
    price: int | None = None
    post_only: bool = False
    reduce_only: bool = False
    order_id: int | None = None
    amount: int = 0
    prices: list[PriceQuote] = field(default_factory=list)
    mode: str | None = None
    relayer_key: str | None = None
    recv_mono_ns: int = 0  # when the sequencer admitted it (monotonic clock)

    def payload(self) -> dict[str, Any]:
        """The fields that define what the transaction does (no keys, no hash)."""
        k = self.kind
        if k == "order":
            return {
                "market": self.market,
                "side": self.side,
                "type": self.type,
                "size": self.size,
                "price": self.price,
                "post_only": self.post_only,
                "reduce_only": self.reduce_only,
            }
        if k == "cancel":
            return {"order_id": self.order_id}
        if k in ("withdraw", "deposit"):
            return {"amount": self.amount}
        if k == "price":
            return {"prices": [[q.market, q.price, q.observed_ts_ns] for q in self.prices]}
        return {"mode": self.mode}

    def body(self) -> dict[str, Any]:
        """The transaction as stored (without the relayer key)."""
        out: dict[str, Any] = {"kind": self.kind, "account": self.account}
        out.update(self.payload())
        if self.client_id is not None:
            out["client_id"] = self.client_id
        if self.nonce is not None:
            out["nonce"] = self.nonce
        return out

    def compute_hash(self) -> str:
        ident = self.client_id if self.client_id is not None else self.nonce
        text = json.dumps(
            [self.kind, self.account, ident, self.payload()], sort_keys=True, separators=(",", ":")
        )
        return "0x" + hashlib.sha256(text.encode()).hexdigest()


def _int(obj: dict[str, Any], key: str, *, positive: bool = False, required: bool = True) -> Any:
    v = obj.get(key)
    if v is None:
        if required:
            raise TxError(key, "missing")
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise TxError(key, f"expected an integer, got {v!r}")
    if positive and v <= 0:
        raise TxError(key, f"must be > 0, got {v}")
    if abs(v) >= _MAX_INT:
        raise TxError(key, f"must be below 2**62, got {v}")
    return v


def _bool(obj: dict[str, Any], key: str) -> bool:
    v = obj.get(key, False)
    if v is None:
        return False
    if not isinstance(v, bool):
        raise TxError(key, f"expected true or false, got {v!r}")
    return v


def _str(obj: dict[str, Any], key: str, choices: tuple[str, ...] | None = None) -> str:
    v = obj.get(key)
    if not isinstance(v, str):
        raise TxError(key, f"expected a string{'' if choices is None else ' ' + '|'.join(choices)}")
    if choices is not None and v not in choices:
        raise TxError(key, f"expected one of {', '.join(choices)}, got {v!r}")
    return v


def _ident(obj: dict[str, Any], key: str) -> str | None:
    v = obj.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (str, int)):
        raise TxError(key, f"expected a string, got {v!r}")
    text = str(v)
    if not text or len(text) > _MAX_CLIENT_ID:
        raise TxError(key, f"must be 1..{_MAX_CLIENT_ID} characters")
    return text


def parse_tx(obj: Any, layout: AccountLayout, *, recv_mono_ns: int = 0) -> Tx:
    """Validate one wire transaction; raises TxError naming the field."""
    if not isinstance(obj, dict):
        raise TxError("(body)", "expected a JSON object")
    kind = _str(obj, "kind", KINDS)
    tx = Tx(kind=kind, recv_mono_ns=recv_mono_ns)
    tx.client_id = _ident(obj, "client_id")
    tx.nonce = _ident(obj, "nonce")
    if kind in ("order", "cancel", "withdraw", "deposit"):
        acct = _int(obj, "account")
        ok = layout.is_user(acct) or (kind == "deposit" and acct in (INSURANCE, LIQUIDATOR))
        if not ok:
            raise TxError("account", f"unknown account {acct}")
        tx.account = acct
    if kind == "order":
        tx.market = _str(obj, "market")
        if tx.market not in MARKETS:
            raise TxError("market", f"unknown market {tx.market!r}; markets: {', '.join(MARKETS)}")
        tx.side = _str(obj, "side", ("buy", "sell"))
        tx.type = _str(obj, "type", ("limit", "market"))
        tx.size = _int(obj, "size", positive=True)
        tx.price = _int(obj, "price", positive=True, required=tx.type == "limit")
        if tx.type == "market" and tx.price is not None:
            raise TxError("price", "a market order takes no price")
        tx.post_only = _bool(obj, "post_only")
        tx.reduce_only = _bool(obj, "reduce_only")
        if tx.post_only and tx.type == "market":
            raise TxError("post_only", "a market order cannot be post-only")
    elif kind == "cancel":
        tx.order_id = _int(obj, "order_id", positive=True)
    elif kind == "withdraw":
        tx.amount = _int(obj, "amount", positive=True)
    elif kind == "deposit":
        tx.amount = _int(obj, "amount", positive=True)
        n = _int(obj, "nonce")
        if n < 0:
            raise TxError("nonce", "must be >= 0")
        tx.nonce = str(n)
        key = obj.get("relayer_key")
        if not isinstance(key, str):
            raise TxError("relayer_key", "missing")
        tx.relayer_key = key
    elif kind == "price":
        raw = obj.get("prices")
        if not isinstance(raw, list) or not raw:
            raise TxError("prices", "expected a non-empty list of {market, price, observed_ts_ns}")
        for i, q in enumerate(raw):
            if not isinstance(q, dict):
                raise TxError(f"prices[{i}]", "expected an object")
            m = q.get("market")
            if m not in MARKETS:
                raise TxError(f"prices[{i}].market", f"unknown market {m!r}")
            try:
                price = _int(q, "price")
                ts = _int(q, "observed_ts_ns")
            except TxError as exc:
                raise TxError(f"prices[{i}].{exc.field}", exc.message) from None
            tx.prices.append(PriceQuote(m, price, ts))
    else:
        tx.mode = _str(obj, "mode", MODES)
    if tx.client_id is None and tx.nonce is None:
        tx.nonce = uuid.uuid4().hex
    tx.hash = tx.compute_hash()
    return tx
