"""Group commit for a client: calls made in one turn of the event loop leave together.

Under load, many handlers reach the same downstream call in the same turn (their
requests arrived in the same read of the sockets). Sending them as one request pays the
per-request cost of every hop behind (HTTP parsing, proxies, the node's dispatch) once
for the group instead of once per call. No call waits for a timer: the group is sent
in the next turn, so a call alone is sent as soon as it would have been, and a group
never grows past `max_items`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

__all__ = ["TurnBatcher"]

T = TypeVar("T")
R = TypeVar("R")

# What `send` returns for each item, in order: its result or the exception to raise.
Outcomes = list[R | BaseException]


class TurnBatcher(Generic[T, R]):
    """`await submit(item)` hands `item` to `send` with the other items submitted in the
    same turn and returns its outcome. `send` must return one outcome per item."""

    def __init__(self, send: Callable[[list[T]], Awaitable[Outcomes[R]]], max_items: int) -> None:
        if max_items < 1:
            raise ValueError("max_items must be at least 1")
        self._send = send
        self._max = max_items
        self._items: list[T] = []
        self._waiters: list[asyncio.Future[R]] = []
        self._flush_due = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.groups = 0  # groups sent, for the service's stats
        self.items = 0

    async def submit(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[R] = loop.create_future()
        self._items.append(item)
        self._waiters.append(fut)
        if len(self._items) >= self._max:
            self._flush()
        elif not self._flush_due:
            self._flush_due = True
            loop.call_soon(self._flush)
        return await fut

    def _flush(self) -> None:
        self._flush_due = False
        items, waiters = self._items, self._waiters
        if not items:
            return
        self._items, self._waiters = [], []
        self.groups += 1
        self.items += len(items)
        task = asyncio.get_running_loop().create_task(self._deliver(items, waiters))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, items: list[T], waiters: list[asyncio.Future[R]]) -> None:
        try:
            outcomes = await self._send(items)
            if len(outcomes) != len(items):
                raise RuntimeError(f"send returned {len(outcomes)} outcomes for {len(items)}")
        except asyncio.CancelledError:
            for fut in waiters:
                fut.cancel()
            raise
        except Exception as exc:
            outcomes = [exc] * len(items)
        for fut, outcome in zip(waiters, outcomes, strict=True):
            if fut.done():  # its caller was cancelled
                continue
            if isinstance(outcome, BaseException):
                fut.set_exception(outcome)
            else:
                fut.set_result(outcome)

    async def aclose(self) -> None:
        """Cancel the groups still in flight (their callers see CancelledError)."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
