"""What every message-level fault shares: a rule on one ``layer: http`` link's L7 proxy
(`MessageControl`), added at inject and removed at heal.

The rule's probability draws come from ``random.Random(seed)`` where the seed is drawn
from the fault's own random stream (the scenario seed and its place in the timeline),
so a replay with the same seed and the same call order hits the same calls. Heal
returns the rule's counters (calls matched, calls hit) into the fault log; every
decision is in the run's ``l7.jsonl`` under the rule id the inject record names.

The parameter models carry what they mean for the proxy: which calls a fault matches
(`RpcMatch`, `HttpMatch`) and the actions several faults share (`DelayFields`,
`DropFields`, `CorruptFields`), so a fault combines them and names its action.
"""

from __future__ import annotations

import itertools
from abc import abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, ClassVar, Literal, TypeVar

from l2chaos.errors import FaultError
from l2chaos.l7proxy.rules import Action, Corrupt, Delay, DropResponse, Match, Rule, RuleError
from l2chaos.params import Duration, JsonValue, Ratio, Where, param, params, required

from .base import Details, FaultContext, LinkFault, Target

if TYPE_CHECKING:
    from l2chaos.backends.base import MessageControl
    from l2chaos.stackspec import StackSpec

__all__ = [
    "CorruptFields",
    "DelayFields",
    "DropFields",
    "HttpMatch",
    "MessageFault",
    "RpcMatch",
]

_ids = itertools.count(1)

When = Literal["before", "after"]
WHEN_HELP = "before forwarding the call (it never reaches the server) or after (it did)"


@params
class MatchParams:
    """Which calls a rule hits, and how many of them."""

    probability: Ratio = param(
        1.0, "share of matching calls hit, drawn from the scenario seed in call order"
    )

    def match(self) -> Match:
        return Match()


@params
class RpcMatch(MatchParams):
    methods: tuple[str, ...] = param(
        (), "JSON-RPC methods hit, shell globs (eth_*); empty means every method"
    )

    def match(self) -> Match:
        return Match(methods=self.methods)


@params
class HttpMatch(MatchParams):
    paths: tuple[str, ...] = param(
        (), "HTTP paths hit, shell globs (/v1/*); empty means every path"
    )
    verbs: tuple[str, ...] = param((), "HTTP methods hit (POST, GET); empty means any")

    def match(self) -> Match:
        return Match(paths=self.paths, verbs=tuple(v.upper() for v in self.verbs))


@params
class DelayFields:
    latency: Duration = param(
        Duration.of(ms=500), "delay added to each matching call", min=Duration(0)
    )
    jitter: Duration = param(Duration(0), "random ± spread around the latency", min=Duration(0))
    when: When = param("before", WHEN_HELP)

    def delay(self) -> Action:
        return Delay(latency_ms=self.latency.millis, jitter_ms=self.jitter.millis, when=self.when)


@params
class DropFields:
    mode: Literal["drop", "cut"] = param(
        "drop", "drop: close the connection with no answer; cut: after half of the answer"
    )

    def drop(self) -> Action:
        return DropResponse(mode=self.mode)


@params
class CorruptFields:
    set: Mapping[str, JsonValue] = required(
        'JSON paths to rewrite and their new values, e.g. {"result.status": 0}: from the '
        "call's object (rpc) or the body's root (http)"
    )
    in_: Literal["response", "request"] = param(
        "response", "rewrite the answer, or the request before it is forwarded", key="in"
    )

    def corrupt(self) -> Action:
        return Corrupt(set=tuple((str(k), v) for k, v in self.set.items()), target=self.in_)


MP = TypeVar("MP", bound=MatchParams)


class MessageFault(LinkFault[MP]):
    """A rule of the L7 proxy on one link for the fault's window."""

    family_name: ClassVar[str]  # rpc | http

    def __init__(self, target: Target, params: MP, duration: Duration | None) -> None:
        super().__init__(target, params, duration)
        self.rule_id = f"{self.name.replace('.', '-')}-{next(_ids)}"

    @abstractmethod
    def action(self) -> Action:
        """The proxy's action for a hit call."""

    def rule(self, seed: int) -> Rule:
        return Rule(
            id=self.rule_id,
            family=self.family_name,
            action=self.action(),
            match=self.p.match(),
            probability=self.p.probability,
            seed=seed,
            label=self.name,
        )

    def prepare(self, stack: StackSpec, where: Where, time_scale: float) -> None:
        try:
            self.rule(0).check()
        except RuleError as exc:
            raise where.error(str(exc)) from None
        spec = stack.link(self.link) if self.target.links else None
        if spec is not None and spec.layer != "http":
            raise where.error(
                f"{self.name} acts on messages: link {self.link!r} must be declared "
                f"`{spec.client} -> {spec.server}: {{layer: http}}` in the stack file "
                f"({stack.path})"
            )

    def _control(self, ctx: FaultContext) -> MessageControl:
        control = ctx.stack.messages
        if control is None:
            raise FaultError(f"{self.name}: this stack has no L7 proxy (no link is layer: http)")
        return control

    def inject(self, ctx: FaultContext) -> Details:
        rule = self.rule(ctx.rng.getrandbits(63))
        answer = self._control(ctx).add_rule(self.link, rule)
        details: Details = {"link": self.link, "rule": rule.id}
        if "snapshot" in answer:
            details["snapshot"] = answer["snapshot"]
        return details

    def heal(self, ctx: FaultContext) -> Details:
        stats = self._control(ctx).remove_rule(self.link, self.rule_id)
        out: Details = {"link": self.link, "rule": self.rule_id}
        if stats is not None:
            out.update(matched=stats.get("matched", 0), hit=stats.get("hit", 0))
        return out
