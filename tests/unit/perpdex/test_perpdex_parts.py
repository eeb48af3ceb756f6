"""Pure parts around the engine: transaction parsing and hashing, the oracle's price
model, configuration errors, keys, and the shape of the one-statement block commit."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest
from l2chaos.stacks.perpdex.common.config import Common, ConfigError, env_int
from l2chaos.stacks.perpdex.common.keys import KeyRing
from l2chaos.stacks.perpdex.db.chain import _COMMIT_SQL, _ORDER_FIELDS, SealedBlock, commit_args
from l2chaos.stacks.perpdex.engine.book import Order
from l2chaos.stacks.perpdex.engine.exchange import BlockContext, Exchange, Guards
from l2chaos.stacks.perpdex.engine.state import MarketCache, MarketData
from l2chaos.stacks.perpdex.engine.txs import TxError, parse_tx
from l2chaos.stacks.perpdex.markets import AccountLayout
from l2chaos.stacks.perpdex.pricemodel import Drift, PriceModel, load_csv, parse_drift
from l2chaos.stacks.perpdex.sequencer.node import genesis_funding_index

LAYOUT = AccountLayout(10)
ORDER = {
    "kind": "order",
    "account": 3,
    "market": "ETH-USD-PERP",
    "side": "buy",
    "type": "limit",
    "size": 100,
    "price": 30000,
    "client_id": "c1",
}


def test_same_transaction_same_hash() -> None:
    a = parse_tx(dict(ORDER), LAYOUT)
    b = parse_tx(dict(ORDER), LAYOUT)
    assert a.hash == b.hash
    assert a.hash.startswith("0x")
    assert len(a.hash) == 66
    assert parse_tx({**ORDER, "size": 101}, LAYOUT).hash != a.hash
    assert parse_tx({**ORDER, "client_id": "c2"}, LAYOUT).hash != a.hash
    no_id = {k: v for k, v in ORDER.items() if k != "client_id"}
    assert parse_tx(no_id, LAYOUT).hash != parse_tx(no_id, LAYOUT).hash  # fresh nonce each


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"kind": "steal"}, "kind"),
        ({"account": 99}, "account"),
        ({"account": "3"}, "account"),
        ({"market": "X"}, "market"),
        ({"side": "long"}, "side"),
        ({"size": 0}, "size"),
        ({"size": True}, "size"),
        ({"size": 2**62}, "size"),
        ({"price": None}, "price"),
        ({"price": -1}, "price"),
        ({"post_only": "yes"}, "post_only"),
        ({"client_id": ""}, "client_id"),
        ({"type": "market", "price": 5}, "price"),
    ],
)
def test_malformed_transactions_name_the_field(change: dict[str, object], field: str) -> None:
    with pytest.raises(TxError) as err:
        parse_tx({**ORDER, **change}, LAYOUT)
    assert err.value.field == field


def test_deposits_need_a_nonce_and_may_fund_system_accounts() -> None:
    tx = parse_tx(
        {"kind": "deposit", "account": -2, "amount": 5, "nonce": 7, "relayer_key": "k"}, LAYOUT
    )
    assert (tx.account, tx.nonce) == (-2, "7")
    with pytest.raises(TxError, match="relayer_key"):
        parse_tx({"kind": "deposit", "account": 1, "amount": 5, "nonce": 7}, LAYOUT)
    with pytest.raises(TxError) as err:
        parse_tx({"kind": "withdraw", "account": -2, "amount": 5}, LAYOUT)
    assert err.value.field == "account"
    with pytest.raises(TxError) as err:
        parse_tx({"kind": "price", "prices": [{"market": "BTC-USD-PERP", "price": "1"}]}, LAYOUT)
    assert err.value.field == "prices[0].price"


def test_price_model_is_a_pure_function_of_seed_and_tick() -> None:
    a = PriceModel(7, 500, 5.0)
    b = PriceModel(7, 500, 5.0)
    late = [b.price("BTC-USD-PERP", k) for k in (900, 10, 500)]  # any order, as after a restart
    assert late == [a.price("BTC-USD-PERP", k) for k in (900, 10, 500)]
    assert PriceModel(8, 500, 5.0).price("BTC-USD-PERP", 900) != late[0]
    assert 80_000 < a.price("BTC-USD-PERP", 0) < 100_000
    assert 25_000 < a.price("ETH-USD-PERP", 0) < 35_000  # P = USD x 10 for 1e-5 ETH


def test_drift_moves_the_model_linearly_then_holds() -> None:
    d = Drift(at_ms=1000, duration_ms=2000, market="ETH-USD-PERP", pct=-30)
    assert d.factor(500) == 1.0
    assert d.factor(2000) == pytest.approx(0.85)
    assert d.factor(10_000) == pytest.approx(0.70)
    flat = PriceModel(1, 500, 0.0)
    crash = PriceModel(1, 500, 0.0, [d])
    assert crash.price("ETH-USD-PERP", 20) == pytest.approx(
        flat.price("ETH-USD-PERP", 20) * 0.7, rel=1e-4
    )
    assert crash.price("BTC-USD-PERP", 20) == flat.price("BTC-USD-PERP", 20)
    with pytest.raises(ConfigError, match="market"):
        parse_drift([{"at_ms": 0, "duration_ms": 1, "market": "X", "pct": 1}])
    with pytest.raises(ConfigError, match="pct"):
        parse_drift([{"at_ms": 0, "duration_ms": 1, "market": "ETH-USD-PERP", "pct": -100}])


def test_recorded_series(tmp_path: Path) -> None:
    f = tmp_path / "prices.csv"
    f.write_text("offset_ms,BTC-USD-PERP,ETH-USD-PERP\n0,90000,3000\n1000,45000,\n")
    model = PriceModel(1, 500, 5.0, series=load_csv(str(f)))
    assert [model.price("BTC-USD-PERP", k) for k in (0, 1, 2, 3)] == [90000, 90000, 45000, 45000]
    assert model.price("ETH-USD-PERP", 3) == 30000
    (tmp_path / "bad.csv").write_text("offset_ms,BTC-USD-PERP\nsoon,1\n")
    with pytest.raises(ConfigError, match="row 2"):
        load_csv(str(tmp_path / "bad.csv"))


def test_config_errors_name_the_variable() -> None:
    with pytest.raises(ConfigError, match="PERPDEX_PORT"):
        Common.from_env("x", {})
    with pytest.raises(ConfigError, match="L2CHAOS_SWITCHES"):
        Common.from_env("x", {"PERPDEX_PORT": "1", "L2CHAOS_SWITCHES": '{"a": 1}'})
    with pytest.raises(ConfigError, match=">= 5"):
        env_int({"N": "3"}, "N", 10, min=5)
    c = Common.from_env(
        "x", {"PERPDEX_PORT": "8000", "L2CHAOS_SWITCHES": '{"readiness_gate": true}'}
    )
    assert c.switches == {"readiness_gate": True}
    assert c.admin_token is None


def test_keys_depend_on_seed_and_token() -> None:
    a, b = KeyRing(1, "t"), KeyRing(1, "u")
    assert a.api_key(5) == KeyRing(1, "t").api_key(5)
    assert a.api_key(5) != b.api_key(5)
    assert a.api_key(5) != a.api_key(6)
    assert a.relayer_key() != b.relayer_key()


def test_genesis_funding_index_is_seeded_and_realistic() -> None:
    i = genesis_funding_index(1604710, "BTC-USD-PERP")
    assert i == genesis_funding_index(1604710, "BTC-USD-PERP")
    assert 90000 * 1_000_000 * 0.005 <= i <= 90000 * 1_000_000 * 0.03


def test_block_commit_statement_takes_every_argument() -> None:
    cache = MarketCache()
    cache.load([MarketData("ETH-USD-PERP", 30000, 1, 30000, 5, 1)])
    ex = Exchange(LAYOUT, Guards(), cache)
    ex.begin_block(BlockContext(1, 1, 10, 10))
    for tx in (
        {"kind": "deposit", "account": 1, "amount": 10**10, "nonce": 1, "relayer_key": "k"},
        {"kind": "deposit", "account": 2, "amount": 10**10, "nonce": 2, "relayer_key": "k"},
        {**ORDER, "account": 2, "side": "sell"},
        {**ORDER, "account": 1, "type": "market", "price": None},
    ):
        ex.apply(parse_tx(tx, LAYOUT))
    out = ex.end_block()
    blk = SealedBlock(out, "0xh", "0xp", "0xt", markets=[cache.get("ETH-USD-PERP")])
    args = commit_args(blk)
    assert len(args) == max(int(n) for n in re.findall(r"\$(\d+)", _COMMIT_SQL))
    arrays = [a for a in args[10:] if isinstance(a, list)]
    assert len(arrays) == len(args) - 10
    assert len(blk.body.fills) == 1
    assert [len(a) for a in args[10:21]] == [4] * 11  # four transactions


def test_orders_table_holds_every_order_field() -> None:
    # an order is written and loaded back through this list: a field missing from it
    # would be lost on restart
    assert list(_ORDER_FIELDS) == [f.name for f in fields(Order)]


def test_audit_command_exit_codes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from l2chaos.stacks.perpdex.audit import main

    assert main(["--out", str(tmp_path)]) == 2  # --db is required
    monkeypatch.delenv("NO_SUCH_TOKEN", raising=False)
    args = ["--db", "postgresql://x@127.0.0.1:1/x", "--out", str(tmp_path)]
    assert main([*args, "--oracle", "http://127.0.0.1:1", "--token-env", "NO_SUCH_TOKEN"]) == 2
    assert "NO_SUCH_TOKEN" in capsys.readouterr().err
    assert main(args) == 3  # nothing listens there: the record cannot be read
    assert "cannot connect to the database" in capsys.readouterr().err
