"""What a trader does on the wire: intents become HTTP calls, each one recorded.

`Trader` holds one Locust user's state (account, process id, markets it has seen, its
open orders, recent transactions) and executes the `Intent`s of its brain against the
stack's ui-api (and rpc for readers), recording every call in the history as an invoke
and exactly one ok / fail / info (see `history.py`). The HTTP session is Locust's
`FastHttpSession` in production; this module only needs its `request` method, so it
imports neither Locust nor gevent.

Response parsing is tolerant of the field names a stack may use (`market`/`name`,
`index_price`/`oracle_price`, …) but never guesses an outcome: a write counts as
acknowledged only with a status that is not `rejected` and an id (tx hash, order id
or nonce); anything less is `info`.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from time import monotonic
from typing import Any, Protocol

from .history import (
    WRITE_OPS,
    Outcome,
    classify_http,
    classify_rpc,
    describe_error,
    parse_json,
    write_id,
)
from .personas import (
    Brain,
    Intent,
    MarketInfo,
    cross_price,
    leveraged_size,
    order_size,
    pick_item,
    quote_price,
)
from .protocols.base import DriverArgs, RecordedUser
from .rpc import post

__all__ = [
    "QUOTE_DECIMALS",
    "Response",
    "Session",
    "Stopping",
    "Trader",
    "parse_markets",
    "read_result",
    "summarise",
]

QUOTE_DECIMALS = 6  # cash is in 1e-6 USD (docs/architecture.md, "Audit export")
TRADING_PERSONAS = frozenset({"maker", "taker", "leveraged"})
MARKETS_MAX_AGE_S = 5.0  # default of a persona's `price_refresh`
_MAX_RECENT_TX = 64
_MAX_TRACKED_ORDERS = 256
RAW_MAX = 4096  # bytes: a larger 2xx read body is decoded at once (it would bloat the log)


class Stopping(Exception):
    """Raised instead of starting an operation once the load is being stopped."""


class Response(Protocol):
    status_code: int
    content: bytes | None


class Session(Protocol):
    """The part of Locust's FastHttpSession a trader uses."""

    def request(self, method: str, url: str, **kwargs: Any) -> Any: ...


def _dec(v: Any) -> Decimal | None:
    if v is None or isinstance(v, bool):
        return None
    try:
        d = Decimal(str(v))
    except (InvalidOperation, ValueError):
        return None
    return d if d.is_finite() else None


def _first(d: Mapping[str, Any], *keys: str) -> Any:
    for k in keys:
        if k in d and d[k] is not None:
            return d[k]
    return None


def parse_markets(body: Any) -> dict[str, MarketInfo]:
    """Markets from a GET /v1/markets body: a list of market objects, or an object with
    `markets` (a list, or a mapping by name). Markets without a usable price are kept
    with index 0 (no orders are sized on them)."""
    items: Any = body.get("markets", body) if isinstance(body, dict) else body
    if isinstance(items, dict):
        items = [{"market": k, **v} for k, v in items.items() if isinstance(v, dict)]
    out: dict[str, MarketInfo] = {}
    if not isinstance(items, list):
        return out
    for m in items:
        if not isinstance(m, dict):
            continue
        name = _first(m, "market", "name", "symbol")
        if not isinstance(name, str):
            continue
        index = _dec(_first(m, "index_price", "oracle_price", "index", "mark_price")) or Decimal(0)
        size_dec = _first(m, "size_decimals")
        size_step = _dec(_first(m, "size_step", "size_increment", "min_size"))
        if size_step is None or size_step <= 0:
            size_step = (
                Decimal(1).scaleb(-int(size_dec))
                if isinstance(size_dec, int)
                else Decimal("0.000001")
            )
        price_step = _dec(_first(m, "price_step", "tick_size", "price_tick"))
        if price_step is None or price_step <= 0:
            # P is quote quanta (1e-6 USD) per base quantum: one P step in USD is
            # 10^-(6 - size_decimals).
            exp = QUOTE_DECIMALS - int(size_dec) if isinstance(size_dec, int) else 2
            price_step = Decimal(1).scaleb(-exp)
        imf_bps = _first(m, "imf_bps")
        imf = _dec(_first(m, "imf", "initial_margin_fraction"))
        if not (isinstance(imf_bps, int) and imf_bps > 0):
            imf_bps = int(imf * 10_000) if imf is not None and 0 < imf < 1 else 500
        out[name] = MarketInfo(
            name=name,
            index_price=index,
            size_step=size_step,
            price_step=price_step,
            imf_bps=imf_bps,
        )
    return out


_RESULT_KEYS: Mapping[str, tuple[str, ...]] = {
    "place_order": ("order_id", "tx_hash", "nonce", "block", "status", "order_status", "reason", "client_id", "fills", "remaining"),
    "cancel_order": ("order_id", "tx_hash", "nonce", "block", "status", "order_status", "reason"),
    "deposit": ("nonce", "tx_hash", "l1_seq", "block", "status", "reason", "amount"),
    "withdraw": ("nonce", "tx_hash", "block", "status", "reason", "amount"),
    "get_account": ("account", "cash", "equity", "available", "initial_margin", "maintenance_margin"),
}  # fmt: skip


_WRAPPERS = ("receipt", "order", "deposit", "withdrawal", "account")


def _unwrap(body: Any) -> Any:
    """Some APIs wrap a single object (`{"order": {...}}`, `{"receipt": {...}}`)."""
    if isinstance(body, dict) and len(body) <= 2:
        for key in _WRAPPERS:
            inner = body.get(key)
            if isinstance(inner, dict):
                merged = dict(inner)
                for k, v in body.items():
                    if k != key:
                        merged.setdefault(k, v)
                return merged
    return body


def summarise(op: str, body: Any) -> dict[str, Any]:
    """The part of a successful response worth keeping in the history's `result`."""
    if op in _RESULT_KEYS:
        inner = _unwrap(body)
        return (
            {k: inner[k] for k in _RESULT_KEYS[op] if k in inner} if isinstance(inner, dict) else {}
        )
    if op == "get_markets":
        return {"prices": {n: str(m.index_price) for n, m in parse_markets(body).items()}}
    if op == "get_positions":
        items = body.get("positions", body) if isinstance(body, dict) else body
        if isinstance(items, dict):
            items = [
                {"market": k, **v} if isinstance(v, dict) else {"market": k, "size": v}
                for k, v in items.items()
            ]
        pos = (
            [[p.get("market"), p.get("size")] for p in items if isinstance(p, dict)]
            if isinstance(items, list)
            else []
        )
        return {"positions": pos}
    if op == "get_orders":
        items = body.get("orders", body) if isinstance(body, dict) else body
        return {"open": len(items) if isinstance(items, list) else None}
    if op == "rpc_block_number":
        return {"block": body.get("result") if isinstance(body, dict) else None}
    if op == "rpc_get_block":
        res = body.get("result") if isinstance(body, dict) else None
        if isinstance(res, dict):
            txs = res.get("transactions")
            return {
                "block": _first(res, "block_number", "number"),
                "hash": _first(res, "block_hash", "hash"),
                "tx_count": len(txs) if isinstance(txs, list) else None,
            }
        return {}
    if op == "rpc_get_receipt":
        res = body.get("result") if isinstance(body, dict) else None
        if isinstance(res, dict):
            return {
                k: res[k]
                for k in (
                    "transaction_hash",
                    "status",
                    "execution_status",
                    "finality_status",
                    "block_number",
                )
                if k in res
            }
        return {}
    return {}


_OK = Outcome("ok")
_NOT_JSON = Outcome("fail", "response is not JSON")


def read_result(op: str, body: str) -> tuple[Outcome, Any]:
    """A read answered 2xx and recorded undecoded (`need_body=False`): the outcome and
    result `Trader.call` records when it decodes the body at once."""
    parsed = parse_json(body.encode("utf-8"))
    if parsed is None:
        return _NOT_JSON, None
    return _OK, summarise(op, parsed)


def _raw_2xx(resp: Any) -> str | None:
    """The body of a 2xx answer to record undecoded: non-empty UTF-8 of at most RAW_MAX
    bytes. None for anything else (then it is judged and decoded at once)."""
    if not 200 <= (resp.status_code or 0) < 300:
        return None
    try:
        content = resp.content
        if not content or len(content) > RAW_MAX:
            return None
        text: str = content.decode("utf-8")
    except Exception:  # cut short, or not UTF-8: the full path says which
        return None
    return text


def _judge_write(op: str, result: Mapping[str, Any]) -> Outcome:
    """A 2xx answer to a write: rejected → fail; accepted with an id → ok; else info."""
    status = str(result.get("status") or "").lower()
    if status in ("rejected", "reverted", "failed"):
        return Outcome("fail", f"rejected: {result.get('reason') or status}")
    if write_id(result) is None:
        return Outcome("info", "acknowledged without a tx hash, order id or nonce")
    return Outcome("ok")


def _judge(resp: Any) -> tuple[Outcome, Any]:
    """A REST answer's outcome by transport and status, and its parsed body."""
    status = resp.status_code or 0
    parsed: Any = None
    cut: Exception | None = None
    if status:
        try:
            content = resp.content
        except Exception as broken:  # the body was cut short: the connection broke
            content, cut = None, broken
        if content:
            parsed = parse_json(content)
    if cut is not None:
        return Outcome("info", f"response cut short: {describe_error(cut)}"), parsed
    if 200 <= status < 300:
        return _OK, parsed
    err = getattr(resp, "error", None)
    return classify_http(status, err if isinstance(err, BaseException) else None, parsed), parsed


class Trader(RecordedUser):
    """One Locust user's trading state and the calls it makes."""

    def __init__(self, args: DriverArgs, brain: Brain) -> None:
        super().__init__(args)
        self.session: Session = args.session
        self.brain = brain
        self.ui = args.endpoints.get("ui", "").rstrip("/")
        self.rpc = args.endpoints.get("rpc", "").rstrip("/")
        self.worker = args.worker
        self.ordinal = args.ordinal
        self.run_tag = args.run_tag
        self.trace = args.trace
        self.markets_filter: tuple[str, ...] = tuple(args.settings.get("markets") or ())
        self.stopping = args.stopping
        self.calls = 0
        self.markets: dict[str, MarketInfo] = {}
        self.open_orders: deque[Any] = deque(maxlen=_MAX_TRACKED_ORDERS)
        self.recent_tx: deque[str] = deque(maxlen=_MAX_RECENT_TX)
        self.head: int | None = None
        self._headers = {"X-API-Key": args.account.api_key}
        self._idents: dict[str, int] = {}  # op -> the history's ident for this process
        self._step = -1
        self._sub = 0
        self._markets_at = -1e18
        refresh = args.settings.get("price_refresh")
        self._price_refresh_s = refresh / 1e9 if isinstance(refresh, int) else MARKETS_MAX_AGE_S

    # ------------------------------------------------------------------ plumbing

    def _retire(self) -> None:
        """After an `info` the process may have a write in limbo: use a new one (whose
        operations get new idents in the history)."""
        self._idents.clear()
        super()._retire()

    def call(
        self,
        op: str,
        method: str,
        url: str,
        *,
        args: Mapping[str, Any],
        body: Any = None,
        rpc: bool = False,
        need_body: bool = True,
    ) -> tuple[Outcome, Any]:
        """Make one request and record it. Returns the outcome and the parsed body
        (None when there was none or it was not JSON). A REST read whose body the
        caller does not use (`need_body=False`, for reads whose summary cannot fail)
        that is answered 2xx is not decoded: it is recorded undecoded, its outcome and
        result decided when the history is merged (`read_result`, the same as deciding
        them here), and the call returns (ok, None). Raises `Stopping` instead of
        starting a request once the load is being stopped."""
        if self.stopping():
            raise Stopping()
        self.calls += 1
        ident = self._idents.get(op)
        if ident is None:
            ident = self.history.ident(self.process, self.persona, self.account.account, op)
            self._idents[op] = ident
        h = self.history.invoke_as(ident, args, self._step if self._step >= 0 else None)
        result: dict[str, Any] | None = None
        try:
            if rpc:  # a JSON-RPC error with HTTP 200 is a failure in Locust's statistics too
                reply = post(
                    self.session, url, op, body, classify=classify_rpc, headers=self._headers
                )
                outcome, parsed = reply.outcome, reply.body
            else:
                if body is None:
                    resp = self.session.request(method, url, name=op, headers=self._headers)
                else:
                    resp = self.session.request(
                        method, url, name=op, headers=self._headers, json=body
                    )
                if not need_body and (text := _raw_2xx(resp)) is not None:
                    self.history.complete_raw(h, text)
                    return _OK, None
                outcome, parsed = _judge(resp)
            if outcome.type == "ok":
                if parsed is None and op not in WRITE_OPS:
                    outcome = _NOT_JSON
                else:
                    result = summarise(op, parsed)
                    if op in WRITE_OPS:
                        outcome = _judge_write(op, result)
            elif op in WRITE_OPS and isinstance(parsed, dict) and "tx_hash" in parsed:
                # a rejection that reached the chain: its hash joins it to the audit export
                result = summarise(op, parsed)
        except BaseException as exc:
            self.history.interrupted(h, exc, self._retire)
            raise
        self.history.settle(h, outcome, result, self._retire)
        return outcome, parsed

    def _client_id(self) -> str:
        self._sub += 1
        return f"{self.run_tag}-{self.base_process}-{self._step}-{self._sub}"

    def _rpc(self, op: str, method: str, params: Any) -> tuple[Outcome, Any]:
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
        return self.call(
            op,
            "POST",
            self.rpc + "/",
            args={"method": method, "params": params},
            body=body,
            rpc=True,
        )

    # ------------------------------------------------------------------- reads

    def refresh_markets(self) -> bool:
        outcome, body = self.call("get_markets", "GET", self.ui + "/v1/markets", args={})
        self._markets_at = monotonic()
        if outcome.type == "ok":
            found = parse_markets(body)
            if self.markets_filter:
                found = {k: v for k, v in found.items() if k in self.markets_filter}
            if found:
                self.markets = found
        return outcome.type == "ok"

    def _market(self, pick: float) -> MarketInfo | None:
        names = sorted(n for n, m in self.markets.items() if m.index_price > 0)
        name = pick_item(names, pick)
        return self.markets[name] if name is not None else None

    def get_account(self, *, need_body: bool = True) -> Mapping[str, Any] | None:
        outcome, body = self.call(
            "get_account", "GET", self.ui + "/v1/account", args={}, need_body=need_body
        )
        if outcome.type != "ok" or body is None:
            return None
        body = _unwrap(body)
        return body if isinstance(body, dict) else None

    def get_positions(self, *, need_body: bool = True) -> list[tuple[str, Decimal]] | None:
        outcome, body = self.call(
            "get_positions", "GET", self.ui + "/v1/positions", args={}, need_body=need_body
        )
        if outcome.type != "ok" or body is None:
            return None
        out: list[tuple[str, Decimal]] = []
        for market, size in summarise("get_positions", body)["positions"]:
            d = _dec(size)
            if isinstance(market, str) and d is not None and d != 0:
                out.append((market, d))
        return out

    def get_orders(self) -> None:
        outcome, body = self.call("get_orders", "GET", self.ui + "/v1/orders", args={})
        if outcome.type != "ok":
            return
        items = body.get("orders", body) if isinstance(body, dict) else body
        if isinstance(items, list):
            self.open_orders.clear()
            for o in items:
                oid = _first(o, "order_id", "id") if isinstance(o, dict) else None
                if oid is not None:
                    self.open_orders.append(oid)

    # ------------------------------------------------------------------ writes

    def place_order(
        self,
        market: str,
        side: str,
        type_: str,
        size: Decimal,
        price: Decimal | None = None,
        *,
        post_only: bool = False,
        reduce_only: bool = False,
    ) -> tuple[Outcome, Mapping[str, Any] | None]:
        order: dict[str, Any] = {"market": market, "side": side, "type": type_, "size": str(size)}
        if price is not None:
            order["price"] = str(price)
        if post_only:
            order["post_only"] = True
        if reduce_only:
            order["reduce_only"] = True
        order["client_id"] = self._client_id()
        outcome, body = self.call(
            "place_order", "POST", self.ui + "/v1/orders", args=order, body=order
        )
        res = _unwrap(body) if isinstance(body, dict) else None
        if outcome.type == "ok" and isinstance(res, dict):
            self._note_tx(res)
        return outcome, res

    def cancel_order(self, order_id: Any) -> Outcome:
        outcome, body = self.call(
            "cancel_order", "DELETE", f"{self.ui}/v1/orders/{order_id}", args={"order_id": order_id}
        )
        if outcome.type == "ok" and isinstance(body, dict):
            self._note_tx(_unwrap(body))
        return outcome

    def _note_tx(self, res: Mapping[str, Any]) -> None:
        tx = res.get("tx_hash")
        if isinstance(tx, str):
            self.recent_tx.append(tx)

    def _amount(self, usd: float) -> str:
        return str(Decimal(str(usd)).quantize(Decimal(1).scaleb(-QUOTE_DECIMALS)))

    def deposit(self, usd: float) -> Outcome:
        body = {"amount": self._amount(usd), "client_id": self._client_id()}
        outcome, _ = self.call("deposit", "POST", self.ui + "/v1/deposits", args=body, body=body)
        return outcome

    def withdraw(self, usd: float) -> Outcome:
        body = {"amount": self._amount(usd), "client_id": self._client_id()}
        outcome, res = self.call(
            "withdraw", "POST", self.ui + "/v1/withdrawals", args=body, body=body
        )
        if outcome.type == "ok" and isinstance(res, dict):
            self._note_tx(_unwrap(res))
        return outcome

    # ------------------------------------------------------------------- steps

    def start(self) -> None:
        """First contact: learn the markets (retried by the first steps if it fails)."""
        self.refresh_markets()

    def step(self) -> float:
        """Decide and act once; return the think time before the next step."""
        intent = self.brain.next()
        self._step = intent.step
        self._sub = 0
        calls_before = self.calls
        if self.persona in TRADING_PERSONAS:
            stale = monotonic() - self._markets_at > self._price_refresh_s
            if stale or self._market(0.0) is None:
                self.refresh_markets()
        if self.persona not in TRADING_PERSONAS or self._market(0.0) is not None:
            self._ACTIONS[self.persona](self, intent)
        if self.trace is not None:
            rec = {
                "worker": self.worker,
                "persona": self.persona,
                "ordinal": self.ordinal,
                "account": self.account.account,
                **intent.to_json(),
                "calls": self.calls - calls_before,
            }
            self.trace.write(json.dumps(rec, separators=(",", ":")) + "\n")
        return intent.think_s

    def _maker(self, it: Intent) -> None:
        if it.kind == "refresh":
            self.get_orders()
            return
        if it.kind == "cancel":
            if self.open_orders:
                self.cancel_order(self.open_orders.popleft())
            return
        m = self._market(it.pick or 0.0)
        if m is None or it.side is None or it.size_usd is None or it.bps is None:
            return
        if len(self.open_orders) >= int(self.brain.settings["max_open"]):
            self.cancel_order(self.open_orders.popleft())
        outcome, res = self.place_order(
            m.name, it.side, "limit", order_size(it.size_usd, m), quote_price(m, it.side, it.bps),
            post_only=True,
        )  # fmt: skip
        if outcome.type == "ok" and res is not None and res.get("order_id") is not None:
            self.open_orders.append(res["order_id"])

    def _flatten(self) -> None:
        positions = self.get_positions()
        for market, size in positions or []:
            side = "sell" if size > 0 else "buy"
            self.place_order(market, side, "market", abs(size), reduce_only=True)

    def _taker(self, it: Intent) -> None:
        if it.kind == "close":
            self._flatten()
            return
        m = self._market(it.pick or 0.0)
        if m is None or it.side is None or it.size_usd is None:
            return
        size = order_size(it.size_usd, m)
        if it.kind == "market":
            self.place_order(m.name, it.side, "market", size)
        else:
            self.place_order(m.name, it.side, "limit", size, cross_price(m, it.side, it.bps or 0.0))

    def _leveraged(self, it: Intent) -> None:
        if it.kind == "hold":
            self.get_positions(need_body=False)
            return
        if it.kind == "close":
            # the part of the opening order that never filled, then the position
            while self.open_orders:
                self.cancel_order(self.open_orders.popleft())
            self._flatten()
            return
        m = self._market(it.pick or 0.0)
        if m is None or it.side is None or it.leverage is None:
            return
        acct = self.get_account()
        equity = _equity_usd(acct)
        if equity is None or equity <= 0:
            return
        size = leveraged_size(equity, it.leverage, m)
        if size <= 0:
            return
        if self.brain.settings.get("open_order", "limit") == "market":
            self.place_order(m.name, it.side, "market", size)
            return
        # A limit at the index (rounded through it, so opposite leveraged traders cross):
        # books are thin, so a market order this large would fill a sliver; resting at
        # the index, takers and opposite leveraged traders fill it over time.
        outcome, res = self.place_order(m.name, it.side, "limit", size, cross_price(m, it.side, 0))
        if (
            outcome.type == "ok"
            and res is not None
            and res.get("order_id") is not None
            and res.get("order_status") not in ("filled", "cancelled")
        ):
            self.open_orders.append(res["order_id"])

    def _bridger(self, it: Intent) -> None:
        if it.kind == "balance":
            self.get_account(need_body=False)
        elif it.kind == "withdraw" and it.amount_usd is not None:
            self.withdraw(it.amount_usd)
        elif it.kind == "deposit" and it.amount_usd is not None:
            self.deposit(it.amount_usd)

    def _reader(self, it: Intent) -> None:
        if it.kind == "positions":
            self.get_positions(need_body=False)
            return
        if it.kind == "block_number" or (it.kind == "get_block" and self.head is None):
            outcome, body = self._rpc("rpc_block_number", "starknet_blockNumber", [])
            if (
                outcome.type == "ok"
                and isinstance(body, dict)
                and isinstance(body.get("result"), int)
            ):
                self.head = int(body["result"])
            if it.kind == "block_number":
                return
        if it.kind == "get_block":
            if self.head is None:
                return
            number = max(0, self.head - (it.back or 0))
            outcome, body = self._rpc(
                "rpc_get_block", "starknet_getBlockWithTxs", {"block_id": {"block_number": number}}
            )
            if outcome.type == "ok" and isinstance(body, dict):
                self._note_block_txs(body.get("result"))
            return
        if it.kind == "get_receipt":
            tx = pick_item(list(self.recent_tx), it.pick or 0.0)
            if tx is None:
                outcome, body = self._rpc(
                    "rpc_get_block", "starknet_getBlockWithTxs", {"block_id": "latest"}
                )
                if outcome.type == "ok" and isinstance(body, dict):
                    self._note_block_txs(body.get("result"))
                tx = pick_item(list(self.recent_tx), it.pick or 0.0)
            if tx is not None:
                self._rpc(
                    "rpc_get_receipt", "starknet_getTransactionReceipt", {"transaction_hash": tx}
                )

    def _note_block_txs(self, block: Any) -> None:
        if not isinstance(block, dict):
            return
        number = _first(block, "block_number", "number")
        if isinstance(number, int):
            self.head = max(self.head or 0, number)
        txs = block.get("transactions")
        if isinstance(txs, list):
            for tx in txs[-8:]:
                h = (
                    _first(tx, "transaction_hash", "hash", "tx_hash")
                    if isinstance(tx, dict)
                    else tx
                )
                if isinstance(h, str):
                    self.recent_tx.append(h)

    _ACTIONS: Mapping[str, Callable[[Trader, Intent], None]] = {
        "maker": _maker,
        "taker": _taker,
        "leveraged": _leveraged,
        "bridger": _bridger,
        "reader": _reader,
    }


def _equity_usd(acct: Mapping[str, Any] | None) -> Decimal | None:
    """What a new position may be margined with, from a GET /v1/account body, in USD:
    the equity not yet used as initial margin (`available`), else the equity, else cash."""
    if acct is None:
        return None
    return _dec(_first(acct, "available", "equity", "free_collateral", "cash"))
