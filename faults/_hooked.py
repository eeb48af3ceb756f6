"""Shared shape of faults that act through one stack hook: call it with an inject body,
call it again with a heal body."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from .base import Fault, FaultContext


class HookedFault(Fault):
    """Subclasses set `hook`, and build bodies in `inject_body` / `heal_body`."""

    hook: ClassVar[str]
    resource: ClassVar[str]

    def resources(self) -> set[str]:
        return {self.resource}

    def inject_body(self) -> Mapping[str, Any]:
        raise NotImplementedError

    def heal_body(self) -> Mapping[str, Any] | None:
        """None: nothing to undo."""
        return None

    def inject(self, ctx: FaultContext) -> dict[str, Any]:
        body = dict(self.inject_body())
        answer = ctx.hooks.call(self.hook, body)
        return {"hook": self.hook, "body": body, "answer": answer}

    def heal(self, ctx: FaultContext) -> dict[str, Any]:
        body = self.heal_body()
        if body is None:
            return {}
        answer = ctx.hooks.call(self.hook, dict(body))
        return {"hook": self.hook, "body": dict(body), "answer": answer}
