"""Admission control (the `admission_control` switch): the bounded queue, Retry-After
from the drain rate, the 503 a service answers past its bound, the sequencer's tighter
mempool bound, and how the rpc and the trader API pass a refusal for load on."""

from __future__ import annotations

import asyncio
import io

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from l2chaos.stacks.perpdex.common.admission import (
    Admission,
    DrainMeter,
    LoopLag,
    retry_after_s,
)
from l2chaos.stacks.perpdex.common.config import Common, ConfigError
from l2chaos.stacks.perpdex.common.http import Service
from l2chaos.stacks.perpdex.common.log import JsonLog
from l2chaos.stacks.perpdex.engine.txs import parse_tx
from l2chaos.stacks.perpdex.rpc import _retry_after
from l2chaos.stacks.perpdex.sequencer.config import SequencerConfig
from l2chaos.stacks.perpdex.sequencer.node import MempoolFull, Node
from l2chaos.stacks.perpdex.uiapi import _unavailable

S = 1_000_000_000
ENV = {"PERPDEX_PORT": "8000", "PERPDEX_DB_URL": "postgresql://x@127.0.0.1:1/x"}
ADMISSION = '{"admission_control": true}'


def test_retry_after_is_the_time_the_queue_ahead_takes_to_drain() -> None:
    assert retry_after_s(300, 100.0) == 3
    assert retry_after_s(301, 100.0) == 4  # whole seconds, rounded up
    assert retry_after_s(1, 1000.0) == 1  # never less than a second
    assert retry_after_s(0, 0.0) == 1
    assert retry_after_s(10, 0.0) == 30  # nothing drains: the longest
    assert retry_after_s(10**6, 1.0) == 30


def test_drain_meter_counts_completions_in_its_window() -> None:
    m = DrainMeter(window_ns=2 * S)
    m.add(0, 10)
    m.add(1 * S, 10)
    assert m.rate(1 * S + S // 2) == 10.0  # 20 over 2 s
    assert m.rate(2 * S + S // 2) == 5.0  # the first 10 left the window
    assert m.rate(10 * S) == 0.0
    m.add(10 * S, 0)
    assert m.rate(10 * S) == 0.0


def test_admission_refuses_past_its_limit_until_one_leaves() -> None:
    gate = Admission(2)
    assert gate.enter(0)
    assert gate.enter(0)
    assert not gate.enter(0)
    assert (gate.inflight, gate.admitted, gate.refused) == (2, 2, 1)
    assert gate.retry_after(0) == 30  # nothing completed yet
    gate.leave(1 * S)
    assert gate.enter(1 * S)
    gate.leave(1 * S)
    gate.leave(1 * S)
    assert gate.inflight == 0
    assert gate.retry_after(2 * S) == 1
    with pytest.raises(ValueError, match="at least 1"):
        Admission(0)


def test_admission_refuses_while_the_loop_runs_behind() -> None:
    lag = LoopLag()
    assert lag.behind(5 * S) == 0  # no timer yet
    lag.due_ns = 1 * S
    assert lag.behind(1 * S) == 0
    assert lag.behind(1 * S + 700_000_000) == 700_000_000  # the timer is late: behind now
    lag.fired(1 * S, 1 * S + 800_000_000)
    assert lag.behind(2 * S) == 800_000_000  # how late the last one fired
    lag.due_ns = 2 * S + 10_000_000
    lag.fired(2 * S + 10_000_000, 2 * S + 11_000_000)
    assert lag.behind(2 * S + 12_000_000) == 1_000_000  # caught up

    gate = Admission(100, max_lag_ns=500_000_000)
    gate.lag.due_ns = 0
    assert not gate.enter(600_000_000)  # in flight 0, but the loop is 600 ms behind
    assert gate.enter(400_000_000)
    assert (gate.inflight, gate.refused) == (1, 1)


class _Slow(Service):
    """One gated route that answers when the test lets it."""

    def __init__(self, limit: int) -> None:
        common = Common.from_env("test", {**ENV, "L2CHAOS_SWITCHES": ADMISSION})
        super().__init__(common, JsonLog("test", io.StringIO()), (limit, 60 * S))
        self.release = asyncio.Event()
        self.app.router.add_get("/v1/slow", self.slow)

    def gated(self, request: web.Request) -> bool:
        return request.path.startswith("/v1/")

    async def slow(self, request: web.Request) -> web.Response:
        await self.release.wait()
        return web.json_response({"ok": True})


def test_a_service_answers_503_with_retry_after_past_its_bound() -> None:
    async def scenario() -> None:
        svc = _Slow(limit=1)
        async with TestClient(TestServer(svc.app)) as client:
            first = asyncio.create_task(client.get("/v1/slow"))
            gate = svc.admission
            assert gate is not None
            while gate.inflight < 1:  # the first request is in its handler
                await asyncio.sleep(0.001)
            refused = await client.get("/v1/slow")
            assert refused.status == 503
            assert refused.headers["Retry-After"] == "30"
            body = await refused.json()
            assert body["error"]["code"] == "overloaded"
            health = await client.get("/health")  # never gated
            assert health.status == 200
            svc.release.set()
            assert (await first).status == 200
            assert (gate.inflight, gate.admitted, gate.refused) == (0, 1, 1)

    asyncio.run(scenario())


def sequencer_config(env: dict[str, str]) -> SequencerConfig:
    return SequencerConfig.from_env(Common.from_env("sequencer", env), env)


def test_the_sequencer_mempool_bound_is_tighter_with_admission_control() -> None:
    off = sequencer_config({**ENV, "PERPDEX_ADMISSION_MEMPOOL": "5"})
    assert off.queue_bound == 20_000
    on = sequencer_config({**ENV, "L2CHAOS_SWITCHES": ADMISSION, "PERPDEX_ADMISSION_MEMPOOL": "5"})
    assert on.queue_bound == 5
    low = {**ENV, "L2CHAOS_SWITCHES": ADMISSION, "PERPDEX_MEMPOOL_LIMIT": "3"}
    assert sequencer_config(low).queue_bound == 3
    with pytest.raises(ConfigError) as err:
        sequencer_config({**ENV, "L2CHAOS_SWITCHES": ADMISSION, "PERPDEX_ADMISSION_MEMPOOL": "0"})
    assert err.value.name == "PERPDEX_ADMISSION_MEMPOOL"


def test_a_full_mempool_says_when_to_retry() -> None:
    env = {**ENV, "L2CHAOS_SWITCHES": ADMISSION, "PERPDEX_ADMISSION_MEMPOOL": "2"}
    node = Node(sequencer_config(env), JsonLog("sequencer", io.StringIO()))
    layout = node.cfg.layout

    def order(n: int) -> object:
        body = {"kind": "order", "account": 1, "market": "ETH-USD-PERP", "side": "buy",
                "type": "limit", "size": 100, "price": 30000, "client_id": f"c{n}"}  # fmt: skip
        return parse_tx(body, layout)

    async def scenario() -> None:
        node.submit(order(1))  # type: ignore[arg-type]
        node.submit(order(2))  # type: ignore[arg-type]
        with pytest.raises(MempoolFull) as full:
            node.submit(order(3))  # type: ignore[arg-type]
        assert full.value.retry_after == 30  # no block has taken any yet
        node.drained.add(node.drained.window_ns, 4)  # 2 per second lately
        with pytest.raises(MempoolFull) as again:
            node.submit(order(4))  # type: ignore[arg-type]
        assert again.value.retry_after >= 1
        node.submit(order(1))  # type: ignore[arg-type]  # already queued: shares its future

    asyncio.run(scenario())


def test_refusals_for_load_pass_on_as_overloaded_with_retry_after() -> None:
    single = {"error": {"code": -32001, "data": {"code": "overloaded", "retry_after_s": 4}}}
    assert _retry_after(single) == 4
    full = {"error": {"code": -32001, "data": {"code": "mempool_full", "retry_after_s": 2}}}
    assert _retry_after(full) == 2
    assert _retry_after({"error": {"code": -32001, "data": {"reason": "down"}}}) is None
    assert _retry_after({"result": 1}) is None

    assert _unavailable("busy", "4").code == "overloaded"
    assert _unavailable("busy", 4).retry_after == 4
    down = _unavailable("the chain is unavailable", None)
    assert (down.status, down.code, down.retry_after) == (503, "unavailable", None)
    assert _unavailable("garbled", "soon").code == "unavailable"
