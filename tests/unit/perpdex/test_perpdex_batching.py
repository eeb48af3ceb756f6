"""TurnBatcher: calls of one event-loop turn leave as one group, each gets its own outcome."""

from __future__ import annotations

import asyncio

import pytest
from l2chaos.stacks.perpdex.common.batching import TurnBatcher


class Recorder:
    """A `send` that records its groups and answers each item doubled (or an error for
    negative items); `gate` holds a group until the test opens it."""

    def __init__(self) -> None:
        self.groups: list[list[int]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.entered = asyncio.Event()

    async def send(self, items: list[int]) -> list[int | BaseException]:
        self.groups.append(list(items))
        self.entered.set()
        await self.gate.wait()
        return [ValueError(f"bad {i}") if i < 0 else 2 * i for i in items]


def test_one_turn_is_one_group_and_each_caller_gets_its_own_outcome() -> None:
    async def scenario() -> None:
        rec = Recorder()
        b = TurnBatcher[int, int](rec.send, max_items=10)
        results = await asyncio.gather(
            *(b.submit(i) for i in (1, 2, -3, 4)), return_exceptions=True
        )
        assert rec.groups == [[1, 2, -3, 4]]
        assert results[:2] == [2, 4]
        assert results[3] == 8
        assert isinstance(results[2], ValueError)
        assert str(results[2]) == "bad -3"
        assert (b.groups, b.items) == (1, 4)

    asyncio.run(scenario())


def test_a_call_alone_is_sent_alone_and_later_turns_make_new_groups() -> None:
    async def scenario() -> None:
        rec = Recorder()
        b = TurnBatcher[int, int](rec.send, max_items=10)
        assert await b.submit(5) == 10
        assert await b.submit(6) == 12
        assert rec.groups == [[5], [6]]

    asyncio.run(scenario())


def test_a_group_never_exceeds_max_items() -> None:
    async def scenario() -> None:
        rec = Recorder()
        b = TurnBatcher[int, int](rec.send, max_items=3)
        results = await asyncio.gather(*(b.submit(i) for i in range(7)))
        assert results == [2 * i for i in range(7)]
        assert rec.groups == [[0, 1, 2], [3, 4, 5], [6]]

    asyncio.run(scenario())


def test_a_failing_send_fails_every_call_of_its_group_only() -> None:
    async def scenario() -> None:
        calls = 0

        async def send(items: list[int]) -> list[int | BaseException]:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise ConnectionError("link down")
            return list(items)

        b = TurnBatcher[int, int](send, max_items=10)
        first = await asyncio.gather(b.submit(1), b.submit(2), return_exceptions=True)
        assert all(isinstance(r, ConnectionError) for r in first)
        assert await b.submit(3) == 3

    asyncio.run(scenario())


def test_a_wrong_number_of_outcomes_fails_the_group() -> None:
    async def scenario() -> None:
        async def send(items: list[int]) -> list[int | BaseException]:
            return [1]

        b = TurnBatcher[int, int](send, max_items=10)
        results = await asyncio.gather(b.submit(1), b.submit(2), return_exceptions=True)
        assert all(isinstance(r, RuntimeError) for r in results)
        assert "1 outcomes for 2" in str(results[0])

    asyncio.run(scenario())


def test_a_cancelled_caller_leaves_the_rest_of_its_group_answered() -> None:
    async def scenario() -> None:
        rec = Recorder()
        rec.gate.clear()
        b = TurnBatcher[int, int](rec.send, max_items=10)
        gone = asyncio.create_task(b.submit(1))
        kept = asyncio.create_task(b.submit(2))
        await rec.entered.wait()
        gone.cancel()
        rec.gate.set()
        assert await kept == 4
        with pytest.raises(asyncio.CancelledError):
            await gone

    asyncio.run(scenario())


def test_aclose_cancels_the_groups_in_flight() -> None:
    async def scenario() -> None:
        rec = Recorder()
        rec.gate.clear()
        b = TurnBatcher[int, int](rec.send, max_items=10)
        waiting = asyncio.create_task(b.submit(1))
        await rec.entered.wait()
        await b.aclose()
        with pytest.raises(asyncio.CancelledError):
            await waiting

    asyncio.run(scenario())


def test_max_items_must_be_positive() -> None:
    async def send(items: list[int]) -> list[int | BaseException]:
        return list(items)

    with pytest.raises(ValueError, match="at least 1"):
        TurnBatcher[int, int](send, max_items=0)
