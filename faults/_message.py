"""What every message-level fault shares: a rule on one ``layer: http`` link's L7 proxy
(`MessageControl`), added at inject and removed at heal.

The rule's probability draws come from ``random.Random(seed)`` where the seed is drawn
from the fault's own random stream (the scenario seed and its place in the timeline),
so a replay with the same seed and the same call order hits the same calls. Heal
returns the rule's counters (calls matched, calls hit) into the fault log; every
decision is in the run's ``l7.jsonl`` under the rule id the inject record names.
"""

from __future__ import annotations

import itertools
from abc import abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

from l2chaos.errors import FaultError
from l2chaos.l7proxy.rules import Action, Corrupt, Delay, DropResponse, Match, Rule, RuleError
from l2chaos.params import Param, Where

from .base import Fault, FaultContext, TargetKind, Window

if TYPE_CHECKING:
    from l2chaos.backends.base import MessageControl
    from l2chaos.stackspec import StackSpec

__all__ = [
    "DELAY_PARAMS",
    "DROP_MODE",
    "MS",
    "PROBABILITY",
    "WHEN",
    "MessageFault",
    "corrupt_action",
    "corrupt_params",
    "delay_action",
    "drop_action",
    "methods_param",
    "paths_params",
]

MS = 1_000_000
_ids = itertools.count(1)

PROBABILITY = Param(
    "probability",
    "ratio",
    default=1.0,
    help="share of matching calls hit, drawn from the scenario seed in call order",
)
WHEN = Param(
    "when",
    "enum",
    default="before",
    choices=("before", "after"),
    help="before forwarding the call (it never reaches the server) or after (it did)",
)


DELAY_PARAMS = (
    Param("latency", "duration", default=500 * MS, min=0, help="delay added to each matching call"),
    Param("jitter", "duration", default=0, min=0, help="random ± spread around the latency"),
    WHEN,
)
DROP_MODE = Param(
    "mode",
    "enum",
    default="drop",
    choices=("drop", "cut"),
    help="drop: close the connection with no answer; cut: after half of the answer",
)


def delay_action(p: dict[str, Any]) -> Action:
    return Delay(latency_ms=p["latency"] / MS, jitter_ms=p["jitter"] / MS, when=p["when"])


def drop_action(p: dict[str, Any]) -> Action:
    return DropResponse(mode=p["mode"])


def corrupt_params(example: str) -> tuple[Param, ...]:
    return (
        Param(
            "set",
            "mapping",
            help=f"JSON paths to rewrite and their new values, e.g. {{{example}: 0}}",
        ),
        Param(
            "in",
            "enum",
            default="response",
            choices=("response", "request"),
            help="rewrite the answer, or the request before it is forwarded",
        ),
    )


def corrupt_action(p: dict[str, Any]) -> Action:
    return Corrupt(set=tuple((str(k), v) for k, v in p["set"].items()), target=p["in"])


def methods_param(default: tuple[str, ...] = ()) -> Param:
    return Param(
        "methods",
        "str_list",
        default=list(default),
        help="JSON-RPC methods hit, shell globs (eth_*); empty means every method",
    )


def paths_params() -> tuple[Param, ...]:
    return (
        Param(
            "paths",
            "str_list",
            default=[],
            help="HTTP paths hit, shell globs (/v1/*); empty means every path",
        ),
        Param(
            "verbs", "str_list", default=[], help="HTTP methods hit (POST, GET); empty means any"
        ),
    )


class MessageFault(Fault):
    """A rule of the L7 proxy on one link for the fault's window."""

    target_kind = TargetKind.LINK
    window = Window.REQUIRED
    family_name: ClassVar[str]  # rpc | http

    def __init__(self, target: Any, params: Any, duration_ns: int | None) -> None:
        super().__init__(target, params, duration_ns)
        self.rule_id = f"{self.name.replace('.', '-')}-{next(_ids)}"

    @property
    def link(self) -> str:
        return self.target.links[0]

    @abstractmethod
    def action(self) -> Action:
        """The proxy's action for a hit call."""

    def match(self) -> Match:
        if self.family_name == "rpc":
            return Match(methods=tuple(self.p.get("methods", ())))
        return Match(
            paths=tuple(self.p.get("paths", ())),
            verbs=tuple(v.upper() for v in self.p.get("verbs", ())),
        )

    def rule(self, seed: int) -> Rule:
        return Rule(
            id=self.rule_id,
            family=self.family_name,
            action=self.action(),
            match=self.match(),
            probability=float(self.p.get("probability", 1.0)),
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

    def inject(self, ctx: FaultContext) -> dict[str, Any]:
        rule = self.rule(ctx.rng.getrandbits(63))
        answer = self._control(ctx).add_rule(self.link, rule)
        details: dict[str, Any] = {"link": self.link, "rule": rule.id}
        if "snapshot" in answer:
            details["snapshot"] = answer["snapshot"]
        return details

    def heal(self, ctx: FaultContext) -> dict[str, Any]:
        stats = self._control(ctx).remove_rule(self.link, self.rule_id)
        out: dict[str, Any] = {"link": self.link, "rule": self.rule_id}
        if stats is not None:
            out.update(matched=stats.get("matched", 0), hit=stats.get("hit", 0))
        return out
