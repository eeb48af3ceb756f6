"""The interface of a trader protocol: how Locust users talk to a target.

A protocol is chosen by the scenario's `load.protocol` (default: the stack file's
`load.protocol`, else `perpdex`) and found by name like faults and invariants: every
`TraderProtocol` subclass in the modules of `l2chaos.load.protocols` and in the entry
point group ``l2chaos.protocols`` (`l2chaos.registry.protocols()`).

It has two sides:

- the harness side (no Locust, no gevent): its personas with their parameters and
  default weights, which endpoint roles they need, validation of the stack's protocol
  `options`, and `prepare`, run once before Locust starts, which yields the accounts
  users get (perpdex: the stack's accounts endpoint; evm: keys derived from the seed
  and funded by the node's dev account) and data every user needs (a chain id, a
  contract address);
- the Locust side: `driver` builds one user's `Driver` (its state and the calls it
  makes, each recorded in the history as invoke then ok / fail / info).

Everything here is importable without Locust; `locustfile.py` builds one Locust user
class per persona of the plan's protocol.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, ClassVar, Protocol

from l2chaos.params import Param, Where

from ..context import Account
from ..history import HistoryWriter, Outcome, parse_json

__all__ = ["Driver", "DriverArgs", "Prepared", "RecordedUser", "SetupArgs", "TraderProtocol"]


class Driver(Protocol):
    """One Locust user's behaviour: `start` once, then `step` until the load stops
    (each returns nothing / the think time in seconds). Raises `Stopping` (ops.py)
    instead of starting an operation once the load is being stopped."""

    account: Account

    def start(self) -> None: ...

    def step(self) -> float: ...


@dataclass(frozen=True)
class DriverArgs:
    """What the Locust side hands a protocol to build one user's driver."""

    persona: str
    settings: Mapping[str, Any]
    session: Any  # Locust's FastHttpSession (its `request` method)
    history: HistoryWriter
    account: Account
    endpoints: Mapping[str, str]
    seed: int
    worker: int
    uid: int
    ordinal: int
    run_tag: str
    data: Mapping[str, Any] = field(default_factory=dict)  # what `prepare` returned
    trace: IO[str] | None = None
    stopping: Callable[[], bool] = lambda: False  # True once the load is being stopped


class RecordedUser:
    """What every driver keeps of its `DriverArgs`: the session it calls through, the
    history it records in, its account, and the process id its operations are recorded
    under, retired (`w0-u3` → `w0-u3.1`) after an `info`: the process may have a write
    in limbo, and a history process never has two operations open."""

    def __init__(self, args: DriverArgs) -> None:
        self.args = args
        self.persona = args.persona
        self.settings = args.settings
        self.session = args.session
        self.history = args.history
        self.account = args.account
        self.base_process = f"w{args.worker}-u{args.uid}"
        self.process = self.base_process
        self._incarnation = 0

    def _retire(self) -> None:
        self._incarnation += 1
        self.process = f"{self.base_process}.{self._incarnation}"


@dataclass(frozen=True)
class SetupArgs:
    """What the harness hands `prepare` before Locust starts."""

    endpoints: Mapping[str, str]
    users: int
    seed: int
    options: Mapping[str, Any]
    stack_accounts: Sequence[Mapping[str, Any]]  # from the stack's `accounts` endpoint
    timeout_s: float = 60.0


@dataclass(frozen=True)
class Prepared:
    """`prepare`'s answer: the accounts dealt to users and data shared by every user."""

    accounts: Sequence[Mapping[str, Any]]
    data: Mapping[str, Any] = field(default_factory=dict)


class TraderProtocol(ABC):
    """Base class: set `name`, `summary`, `personas`, `default_weights`; implement
    `endpoints_needed` and `driver` (and `prepare` when users need accounts)."""

    name: ClassVar[str]
    summary: ClassVar[str]
    personas: ClassVar[Mapping[str, tuple[Param, ...]]]
    default_weights: ClassVar[Mapping[str, float]]
    # Protocol options a stack file may set under `load.options` (validated at load).
    options: ClassVar[tuple[Param, ...]] = ()
    # Operations of this protocol that write (the history marks them `"write": true`).
    write_ops: ClassVar[frozenset[str]] = frozenset()
    # True: `prepare` makes the accounts (the stack's accounts endpoint is not used).
    own_accounts: ClassVar[bool] = False

    def check_persona(
        self, persona: str, settings: dict[str, Any], given: Any, where: Where
    ) -> None:
        """Cross-field checks Param kinds cannot express; may normalise `settings`."""
        return

    @abstractmethod
    def endpoints_needed(self, counts: Mapping[str, int]) -> set[str]:
        """Endpoint roles (ui, rpc, ...) the personas with these user counts call."""

    def prepare(self, setup: SetupArgs) -> Prepared:
        """Before Locust starts: the accounts (at least `setup.users` with role trader)
        and shared data. The default hands out the stack's accounts as they are."""
        return Prepared(accounts=setup.stack_accounts)

    @abstractmethod
    def driver(self, args: DriverArgs) -> Driver:
        """One user's driver (Locust side)."""

    def read_result(self, op: str, body: str) -> tuple[Outcome, Any]:
        """The outcome and result of a read its driver recorded undecoded
        (`HistoryWriter.complete_raw`), decided when the history is merged: what the
        driver would have recorded had it decoded the body at once. The default keeps
        the JSON body whole; a body that is not JSON is `fail`."""
        value = parse_json(body.encode("utf-8"))
        if value is None:
            return Outcome("fail", "response is not JSON"), None
        return Outcome("ok"), {"body": value}
