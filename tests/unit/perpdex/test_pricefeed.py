"""The price source and the oracle's reading of it, as pure functions: the source's
JSON-RPC answers for a call or a batch, what the oracle takes from an answer (a number
it signs as it is, a zero included; nothing from an error or a non-number), and the
market moves both keep for a restart."""

from __future__ import annotations

import io
from decimal import Decimal
from pathlib import Path

import pytest
from l2chaos.stacks.perpdex.common.config import Common
from l2chaos.stacks.perpdex.common.inputs import InputError
from l2chaos.stacks.perpdex.common.log import JsonLog
from l2chaos.stacks.perpdex.markets import MARKET_NAMES, MARKETS
from l2chaos.stacks.perpdex.oracle import SourceRead, source_price
from l2chaos.stacks.perpdex.pricefeed import MAX_TICK, METHOD, PriceFeedConfig, PriceFeedService
from l2chaos.stacks.perpdex.pricemodel import Drift, PriceModel, StartedMoves

BTC, ETH = "BTC-USD-PERP", "ETH-USD-PERP"
ENV = {"PERPDEX_PORT": "8005", "L2CHAOS_SEED": "7"}


@pytest.fixture
def feed() -> PriceFeedService:
    return PriceFeedService(
        PriceFeedConfig.from_env(Common.from_env("pricefeed", ENV), ENV),
        JsonLog("pricefeed", io.StringIO()),
    )


def call(tick: object, rid: int = 1, method: str = METHOD) -> dict[str, object]:
    return {"jsonrpc": "2.0", "id": rid, "method": method, "params": {"tick": tick}}


def test_the_feed_answers_the_model_price_of_the_tick(feed: PriceFeedService) -> None:
    answer = feed._call(call(12, rid=12))
    assert answer["id"] == 12
    prices = answer["result"]["prices"]
    assert set(prices) == set(MARKET_NAMES)
    for m in MARKET_NAMES:  # a decimal string the oracle reads back to the model's P
        assert source_price(m, prices[m]) == feed.model.price(m, 12)
    assert feed._call({**call(0), "params": [12]})["result"] == answer["result"]


@pytest.mark.parametrize(
    ("req", "code"),
    [
        (call(-1), -32602),
        (call(MAX_TICK + 1), -32602),
        (call(True), -32602),
        (call("3"), -32602),
        (call(1, method="eth_blockNumber"), -32601),
        ({"id": 1, "method": METHOD}, -32600),
        ([1], -32600),
    ],
)
def test_the_feed_refuses_bad_calls(feed: PriceFeedService, req: object, code: int) -> None:
    answer = feed._call(req)
    assert answer["error"]["code"] == code
    assert "result" not in answer


def test_the_oracle_takes_what_the_source_said() -> None:
    doc = [
        {"id": 5, "result": {"tick": 5, "prices": {BTC: 0, ETH: "3000.5", "PAXG-USD-PERP": "x"}}},
        {"id": 3, "error": {"code": -32602, "message": "bad tick"}},
    ]
    read = SourceRead.parse([5, 3], doc)
    assert read.price(5, BTC) == 0  # a zero is a number: signed and pushed as it is
    assert read.price(5, ETH) == MARKETS[ETH].price_from_usd(Decimal("3000.5"))
    assert read.price(5, "PAXG-USD-PERP") is None
    assert "PAXG-USD-PERP price" in (read.why(5, "PAXG-USD-PERP") or "")
    assert read.price(3, BTC) is None
    assert "bad tick" in (read.why(3, BTC) or "")
    single = SourceRead.parse([5], doc[0])  # one call, not a batch
    assert single.price(5, ETH) == read.price(5, ETH)
    failed = SourceRead.failed("status 502")
    assert failed.price(5, BTC) is None
    assert failed.why(5, BTC) == "status 502"


def test_a_source_price_out_of_range_is_refused() -> None:
    with pytest.raises(InputError):
        source_price(BTC, "1e30")
    assert source_price(BTC, "-1") < 0  # a negative number passes: validation is the sequencer's


def test_started_moves_are_kept_for_a_restart(tmp_path: Path) -> None:
    configured = [Drift(0, 0, ETH, 5.0)]
    model = PriceModel(7, 500, 0.0, list(configured))
    moves = StartedMoves(model, tmp_path / "moves.json")
    flat = model.price(BTC, 10)
    moves.save([Drift(1000, 0, BTC, -50.0)])  # a step at 1 s: tick 2 on
    assert model.price(BTC, 10) == round(flat / 2)
    assert model.drifts == [*configured, Drift(1000, 0, BTC, -50.0)]
    again = PriceModel(7, 500, 0.0, list(configured))
    StartedMoves(again, tmp_path / "moves.json").load()
    assert again.price(BTC, 10) == model.price(BTC, 10)
    assert again.price(BTC, 1) == flat  # before the move
