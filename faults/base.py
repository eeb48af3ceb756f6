"""The one interface every fault implements.

A fault is named ``family.kind`` (``network.latency``, ``process.restart_race``,
``oracle.zero``), declares what it targets and its parameters (a model from
`l2chaos.params`, named as the class's type argument: ``class Latency(Fault[LatencyParams])``;
the fault reads them typed, as ``self.p.latency``), and does its work
in `inject` and `heal` through a `FaultContext` (links via Toxiproxy, services via the
backend, domain hooks via the stack's admin API). Both return a dict of details that
goes into the fault log, so the record says exactly what was done.

Faults are constructed when a scenario is validated, so bad parameters are input
errors before anything starts. Two faults whose windows overlap and that claim the
same resource (see `resources`) cannot coexist; validation says so.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, Self, TypeAlias, TypeVar, cast

from l2chaos.durations import Duration
from l2chaos.params import JsonValue, NoParams, Where, bind, declared_model

if TYPE_CHECKING:
    from l2chaos.backends.base import LinkControl, RunningStack, ServiceControl
    from l2chaos.stackspec import StackSpec

__all__ = [
    "Details",
    "Fault",
    "FaultContext",
    "HookClient",
    "LinkFault",
    "NoParams",
    "Target",
    "TargetKind",
    "Window",
]


# What inject and heal return for the fault log: JSON values only.
Details: TypeAlias = dict[str, JsonValue]


class TargetKind(Enum):
    """What a fault's `target` names."""

    NONE = "none"  # implied by the family (oracle.*, chain.*): no target allowed
    SERVICE = "service"  # one service: `db`
    LINK = "link"  # one link: `ui-api->rpc`
    LINKS = "links"  # one or more links: a list, for partitions
    SERVICE_OR_LINKS = "service_or_links"  # a service (all its links) or a list of links


class Window(Enum):
    """Whether a fault lasts over a window (`for`) or happens at an instant."""

    REQUIRED = "required"  # needs `for` (or a parameter that implies it)
    OPTIONAL = "optional"  # with `for` it heals at the end of it; without, right after inject
    INSTANT = "instant"  # no `for`; heal does nothing


@dataclass(frozen=True)
class Target:
    """A resolved target: the services and links a fault acts on, as written."""

    kind: TargetKind
    services: tuple[str, ...] = ()
    links: tuple[str, ...] = ()
    text: str = ""

    def __str__(self) -> str:
        return self.text or "-"


class HookClient(Protocol):
    """The stack's chaos hooks (admin API), reached directly, with the run's token."""

    def has(self, hook: str) -> bool: ...

    def call(self, hook: str, body: Mapping[str, Any]) -> Any: ...


@dataclass
class FaultContext:
    """What a fault may touch while injecting or healing."""

    stack: RunningStack
    links: LinkControl
    control: ServiceControl
    hooks: HookClient
    rng: random.Random
    time_scale: float = 1.0
    # Trader-facing endpoints by role (ui, rpc) and the stack's accounts, for faults that
    # act as an adversarial trader through the public API.
    endpoints: Mapping[str, str] = field(default_factory=dict)
    accounts: Sequence[Mapping[str, Any]] = ()
    # Records a sub-event (e.g. one step of a restart race) into the fault log.
    note: Callable[..., None] = field(default=lambda **_: None)


P = TypeVar("P")


class Fault(ABC, Generic[P]):
    """Base class. Subclasses set the class variables and implement inject/heal; the type
    argument is the parameter model (`NoParams` for none)."""

    name: ClassVar[str]
    summary: ClassVar[str]
    target_kind: ClassVar[TargetKind] = TargetKind.NONE
    window: ClassVar[Window] = Window.REQUIRED
    needs_hooks: ClassVar[tuple[str, ...]] = ()
    # The platform controls this fault needs (of `Platform.capabilities`: kill, stop,
    # pause, disconnect); a run on a platform without one is refused before it starts.
    needs_backend: ClassVar[frozenset[str]] = frozenset()
    # Runs a command the scenario chose on this host: refused without --allow-exec.
    runs_commands: ClassVar[bool] = False

    def __init__(self, target: Target, params: P, duration: Duration | None) -> None:
        self.target = target
        self.p = params
        # The window (`for`, or implied by the parameters); None for an instant.
        self.duration = duration

    @classmethod
    def params_model(cls) -> type[P]:
        """The parameter model: the class's type argument."""
        return cast("type[P]", declared_model(cls, Fault))

    @classmethod
    def build(
        cls, target: Target, given: Mapping[str, object], window: Duration | None = None
    ) -> Self:
        """A fault from parameters as a scenario writes them (``{"downtime": "1s"}``),
        for tests and tools; without `window`, the one its parameters imply."""
        fault = cls(target, bind(cls.params_model(), given, Where(None, "with")), window)
        if window is None:
            fault.duration = fault.implied_duration()
        return fault

    @property
    def family(self) -> str:
        return self.name.split(".", 1)[0]

    def platform_needs(self) -> frozenset[str]:
        """The platform controls this use of the fault needs (a nemesis: its draws')."""
        return self.needs_backend

    def implied_duration(self) -> Duration | None:
        """A window length implied by parameters (e.g. restart_race's downtime)."""
        return None

    def resources(self) -> set[str]:
        """Exclusive resources; overlapping faults may not share one.

        Default: process-level faults own their services; others own nothing.
        """
        return set()

    def validate(self, services: set[str], links: set[str]) -> str | None:
        """Extra checks against the stack; return a problem sentence or None."""
        return None

    def prepare(self, stack: StackSpec, where: Where, time_scale: float) -> None:
        """Validate anything nested (a nemesis's sub-faults) against the stack.

        Called once at scenario validation; raise ScenarioError through `where`."""
        return

    @abstractmethod
    def inject(self, ctx: FaultContext) -> Details:
        """Make the fault happen. Return details for the fault log."""

    def heal(self, ctx: FaultContext) -> Details:
        """Undo the fault. Must be safe to call after a failed or partial inject."""
        return {}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} target={self.target} {self.p}>"


class LinkFault(Fault[P]):
    """A fault on one link (``client->server``) over a window: a Toxiproxy toxic or an
    L7 proxy rule."""

    target_kind = TargetKind.LINK
    window = Window.REQUIRED

    @property
    def link(self) -> str:
        return self.target.links[0]
