"""Shared shape of faults that act through one stack hook: call it with an inject body,
call it again with a heal body."""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar, TypeVar

from l2chaos.params import JsonValue

from .base import Details, Fault, FaultContext

Body = dict[str, JsonValue]
HP = TypeVar("HP")


class HookedFault(Fault[HP]):
    """Subclasses set `hook` (which they then need from the stack) and the `resource`
    they hold, and build bodies in `inject_body` / `heal_body`."""

    hook: ClassVar[str]
    resource: ClassVar[str]

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "hook" in cls.__dict__:
            cls.needs_hooks = (cls.hook,)

    def resources(self) -> set[str]:
        return {self.resource}

    @abstractmethod
    def inject_body(self) -> Body:
        """What the hook is called with at inject."""

    def heal_body(self) -> Body | None:
        """None: nothing to undo."""
        return None

    def inject(self, ctx: FaultContext) -> Details:
        body = self.inject_body()
        answer = ctx.hooks.call(self.hook, body)
        return {"hook": self.hook, "body": body, "answer": answer}

    def heal(self, ctx: FaultContext) -> Details:
        body = self.heal_body()
        if body is None:
            return {}
        answer = ctx.hooks.call(self.hook, body)
        return {"hook": self.hook, "body": body, "answer": answer}
