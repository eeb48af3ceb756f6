"""Markets, integer units and the account layout of the reference exchange.

Units (pinned in docs/architecture.md, "Audit export"):

- cash in quote quanta, 1e-6 USD (`QUOTE_DECIMALS`);
- size in base quanta, 10^-size_decimals of the asset;
- price P in quote quanta per base quantum, so notional = size * P exactly and
  USD price = P / 10^(6 - size_decimals);
- funding index in quote quanta per base quantum * `FUNDING_SCALE`.

Accounts: users 1..N (N = PERPDEX_ACCOUNTS), the harness's probe N+1, adversarial
traders N+2..N+5; system accounts fees -1, insurance fund -2, liquidator vault -3,
dust -4 (its cash is kept in micro-quanta).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Context, Decimal
from typing import Any

from l2chaos.jsonfields import fields_json
from l2chaos.stacks.perpdex.common.inputs import MAX_DECIMAL_CHARS, InputError, parse_decimal

__all__ = [
    "ADVERSARY_COUNT",
    "DUST",
    "FEES",
    "FUNDING_SCALE",
    "INSURANCE",
    "LIQUIDATOR",
    "MARKETS",
    "MARKET_NAMES",
    "QUOTE_DECIMALS",
    "QUOTE_SCALE",
    "SYSTEM_ACCOUNTS",
    "AccountLayout",
    "Market",
    "UnitError",
    "format_quote",
    "parse_quote",
]

QUOTE_DECIMALS = 6
QUOTE_SCALE = 10**QUOTE_DECIMALS
FUNDING_SCALE = 1_000_000
BPS = 10_000
_EXACT = Context(prec=MAX_DECIMAL_CHARS + 8)  # inputs have at most 40 digits; shifts are exact

FEES = -1
INSURANCE = -2
LIQUIDATOR = -3
DUST = -4
SYSTEM_ACCOUNTS = {"fees": FEES, "insurance": INSURANCE, "liquidator": LIQUIDATOR, "dust": DUST}
ADVERSARY_COUNT = 4


class UnitError(ValueError):
    """A decimal amount that does not fit the market's quanta."""


@dataclass(frozen=True)
class Market:
    name: str
    size_decimals: int
    imf_bps: int
    mmf_bps: int
    ref_usd: str  # the oracle's starting price and the scale of the genesis funding index
    maker_fee_bps: int = 1
    taker_fee_bps: int = 4
    liquidation_fee_bps: int = 100
    band_bps: int = 500
    price_decimals: int = 0  # P itself is an integer

    @property
    def price_scale(self) -> int:
        """P per USD: 10^(6 - size_decimals)."""
        return int(10 ** (QUOTE_DECIMALS - self.size_decimals))

    @property
    def ref_price(self) -> int:
        return self.price_from_usd(self.ref_usd)

    def price_from_usd(self, usd: Any) -> int:
        """A USD price (decimal string or number) as an integer P; it must fall on the tick."""
        p = _shift(_decimal(usd, "price"), QUOTE_DECIMALS - self.size_decimals)
        if p != p.to_integral_value():
            raise UnitError(f"price {usd} is not a multiple of the tick {self.tick_usd} USD")
        return int(p)

    def price_to_usd(self, p: int) -> str:
        return _fmt(Decimal(p) / self.price_scale)

    @property
    def tick_usd(self) -> str:
        return _fmt(Decimal(1) / self.price_scale)

    def size_from_units(self, units: Any) -> int:
        """A size in asset units (e.g. "0.01" BTC) as base quanta."""
        s = _shift(_decimal(units, "size"), self.size_decimals)
        if s != s.to_integral_value():
            raise UnitError(f"size {units} is not a multiple of {self.step_units}")
        return int(s)

    def size_to_units(self, size: int) -> str:
        return _fmt(Decimal(size) / 10**self.size_decimals)

    @property
    def step_units(self) -> str:
        return _fmt(Decimal(1) / 10**self.size_decimals)

    def header(self) -> dict[str, int]:
        """The market's parameters as the audit header lists them."""
        return fields_json(self, omit=("name", "ref_usd"))


MARKETS: dict[str, Market] = {
    m.name: m
    for m in (
        Market("BTC-USD-PERP", size_decimals=6, imf_bps=500, mmf_bps=300, ref_usd="90000"),
        Market("ETH-USD-PERP", size_decimals=5, imf_bps=500, mmf_bps=300, ref_usd="3000"),
        Market("PAXG-USD-PERP", size_decimals=5, imf_bps=1000, mmf_bps=500, ref_usd="4000"),
    )
}
MARKET_NAMES: tuple[str, ...] = tuple(sorted(MARKETS))


def _decimal(value: Any, what: str) -> Decimal:
    try:
        return parse_decimal(value, what)
    except InputError as exc:
        raise UnitError(str(exc)) from None


def _shift(d: Decimal, places: int) -> Decimal:
    """d x 10^places, exactly (a context multiplication would round past 28 digits)."""
    return d.scaleb(places, _EXACT)


def _fmt(d: Decimal) -> str:
    text = format(d.normalize(), "f")
    return text if text != "-0" else "0"


def parse_quote(value: Any, what: str = "amount") -> int:
    """A USD amount (decimal string or number) as quote quanta (1e-6 USD), exactly."""
    d = _shift(_decimal(value, what), QUOTE_DECIMALS)
    if d != d.to_integral_value():
        raise UnitError(f"{what} {value} has more than {QUOTE_DECIMALS} decimals")
    return int(d)


def format_quote(q: int) -> str:
    """Quote quanta as a USD decimal string."""
    return _fmt(Decimal(q) / QUOTE_SCALE)


@dataclass(frozen=True)
class AccountLayout:
    """Which account ids exist and what each is for.

    traders 1..N, probe N+1 (the harness's order round-trip probe), adversaries
    N+2..N+5 (for adversarial trader faults). All are funded alike at genesis.
    """

    traders: int

    @property
    def probe(self) -> int:
        return self.traders + 1

    @property
    def adversaries(self) -> range:
        return range(self.traders + 2, self.traders + 2 + ADVERSARY_COUNT)

    @property
    def last_user(self) -> int:
        return self.traders + 1 + ADVERSARY_COUNT

    def users(self) -> range:
        return range(1, self.last_user + 1)

    def role(self, account: int) -> str:
        if 1 <= account <= self.traders:
            return "trader"
        if account == self.probe:
            return "probe"
        if account in self.adversaries:
            return "adversary"
        raise KeyError(account)

    def is_user(self, account: int) -> bool:
        return 1 <= account <= self.last_user
