"""The second line of cleanup (after `down` in a finally): at interpreter exit, bring
down every stack this process started and still owns. A forked child never stops its
parent's stacks. The third line is `l2chaos gc` with the run markers and labels."""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
from typing import Protocol

__all__ = ["LiveStacks"]


class _Ownable(Protocol):
    owner_pid: int

    def down(self) -> object: ...


class LiveStacks:
    """Stacks that are up in this process; `down_all` runs at exit."""

    def __init__(self) -> None:
        self._stacks: set[_Ownable] = set()
        self._lock = threading.Lock()
        self._registered = False

    def add(self, stack: _Ownable) -> None:
        with self._lock:
            self._stacks.add(stack)
            if not self._registered:
                atexit.register(self.down_all)
                self._registered = True

    def discard(self, stack: _Ownable) -> None:
        with self._lock:
            self._stacks.discard(stack)

    def down_all(self) -> None:
        with self._lock:
            stacks = list(self._stacks)
        for s in stacks:
            if s.owner_pid != os.getpid():  # a forked child must not stop its parent's stack
                continue
            with contextlib.suppress(Exception):
                s.down()
