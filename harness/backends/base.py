"""What a backend gives the rest of the harness.

A backend (the `StackOrchestrator` over one platform: local processes, docker
containers, ...) turns a `StackSpec` into running services with Toxiproxy in front of
every link, and hands back a `RunningStack`. Faults, the probe loop, the load generator
and the audit export use only the protocols here, so a scenario does not change between
platforms.

Client traffic (load, probes) uses `client_url`: through the proxy of the stack's
``clients -> service`` link when it declares one, so network faults reach what clients
see. Control traffic (readiness, chaos hooks, audit export) uses `direct_url`, never a
proxy, so a `down` fault on a link can never block its own heal.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from l2chaos.l7proxy.rules import Rule
    from l2chaos.stackspec import StackRun, StackSpec

__all__ = [
    "Backend",
    "Endpoint",
    "LinkControl",
    "MessageControl",
    "RunningStack",
    "ServiceControl",
    "Toxic",
]


@dataclass(frozen=True)
class Endpoint:
    """An address the harness can reach from this host."""

    host: str
    port: int

    @property
    def hostport(self) -> str:
        return f"{self.host}:{self.port}"

    def url(self, path: str = "", scheme: str = "http") -> str:
        return f"{scheme}://{self.host}:{self.port}{path}"


@dataclass(frozen=True)
class Toxic:
    """A toxic as Toxiproxy knows it. `stream` is upstream (client->server) or downstream."""

    name: str
    type: str
    stream: str = "downstream"
    toxicity: float = 1.0
    attributes: Mapping[str, int] = field(default_factory=dict)


class LinkControl(Protocol):
    """Toxiproxy operations on the stack's links, named `client->server`."""

    def links(self) -> list[str]: ...

    def add_toxic(self, link: str, toxic: Toxic) -> None: ...

    def remove_toxic(self, link: str, name: str) -> None: ...

    def toxics(self, link: str) -> list[Toxic]: ...

    def set_enabled(self, link: str, enabled: bool) -> None: ...

    def is_enabled(self, link: str) -> bool: ...

    def reset(self) -> None:
        """Enable every link and remove every toxic."""
        ...


class MessageControl(Protocol):
    """The L7 proxy's rules on the links declared ``layer: http`` (l2chaos.l7proxy).

    `add_rule` returns what the proxy reports (counters, a stale head's snapshot);
    `remove_rule` the rule's final counters, None when it was not there."""

    def links(self) -> list[str]: ...

    def add_rule(self, link: str, rule: Rule) -> dict[str, Any]: ...

    def remove_rule(self, link: str, rule_id: str) -> dict[str, Any] | None: ...

    def reset(self) -> None: ...


class ServiceControl(Protocol):
    """Process or container operations on one service of the running stack.

    Local backend: signals to the service's process group. Docker: container calls.
    `stop` is graceful (SIGTERM then SIGKILL after `timeout_s`), `kill` is SIGKILL,
    `pause`/`resume` freeze and thaw (SIGSTOP/SIGCONT, docker pause/unpause),
    `disconnect`/`reconnect` cut the service off the network entirely.
    `start` returns once the process/container runs (a no-op when it already runs);
    `wait_ready` waits for its readiness probe (StackError on timeout).
    `stop(immediate=True)` is the crash path instead of a graceful stop: PostgreSQL's
    immediate shutdown (SIGQUIT: no checkpoint, crash recovery at the next start),
    SIGKILL for other services. `pid` is the service's main process id (local: the
    group leader; docker: the container's init process), None when it is not running.
    """

    def kill(self, service: str) -> None: ...

    def stop(self, service: str, timeout_s: float = 10.0, *, immediate: bool = False) -> None: ...

    def start(self, service: str) -> None: ...

    def restart(self, service: str, timeout_s: float = 10.0) -> None: ...

    def pause(self, service: str) -> None: ...

    def resume(self, service: str) -> None: ...

    def disconnect(self, service: str) -> None: ...

    def reconnect(self, service: str) -> None: ...

    def is_running(self, service: str) -> bool: ...

    def wait_ready(self, service: str, timeout_s: float) -> None: ...

    def pid(self, service: str) -> int | None: ...


class RunningStack(ABC):
    """Handle on a stack that is up. Everything here is safe to call from threads."""

    run: StackRun
    spec: StackSpec
    run_id: str
    stack_name: str
    admin_token: str
    run_dir: Path
    teardown_problems: list[str]

    @property
    @abstractmethod
    def services(self) -> list[str]: ...

    def direct_url(self, service: str, path: str = "") -> str:
        """URL of a service's HTTP port reached directly from this host (control traffic)."""
        return self.direct_endpoint(service).url(path)

    @abstractmethod
    def direct_endpoint(self, service: str) -> Endpoint:
        """Host and port of a service reached directly from this host (e.g. the database)."""

    @abstractmethod
    def client_endpoint(self, service: str) -> Endpoint:
        """Where the harness's clients (load, probes) reach a service: the proxy of its
        ``clients -> service`` link when the stack file declares one, else directly."""

    def client_url(self, service: str, path: str = "") -> str:
        """URL a client of the harness uses for `service` (see `client_endpoint`)."""
        return self.client_endpoint(service).url(path)

    @property
    @abstractmethod
    def links(self) -> LinkControl: ...

    @property
    @abstractmethod
    def control(self) -> ServiceControl: ...

    @property
    def messages(self) -> MessageControl | None:
        """Rules on the ``layer: http`` links; None when the stack declares none."""
        return None

    @abstractmethod
    def template_values(
        self, service: str | None = None, out: Path | None = None
    ) -> dict[str, str]:
        """Values for the stack file's placeholders (harness/stackspec.py), as seen from
        this host; with `service` also its own {port}, {host}, {data_dir}; with `out`,
        {out} (the audit command)."""

    @abstractmethod
    def log_path(self, service: str) -> Path:
        """Where this service's log is (or will be) saved in the run directory."""

    @abstractmethod
    def log_tail(self, service: str, lines: int = 30) -> str: ...

    @abstractmethod
    def versions(self) -> dict[str, str]:
        """Versions of the parts the run used (toxiproxy, postgres, ...)."""

    def describe(self) -> dict[str, Any]:
        """Redaction-safe description for run.json."""
        return {
            "run_id": self.run_id,
            "stack": self.stack_name,
            "services": {s: self.direct_url(s) for s in self.services},
            "links": self.links.links(),
        }


class Backend(ABC):
    """Starts and stops a stack. `up` returns a handle; `down` always releases everything."""

    name: str

    @abstractmethod
    def up(
        self, spec: StackRun, *, run_id: str, run_dir: Path, env: Mapping[str, str]
    ) -> RunningStack:
        """Start every service in dependency order with a proxy per link; wait until ready.

        On failure everything already started is torn down before StackError is raised.
        """

    @abstractmethod
    def down(self, stack: RunningStack) -> list[str]:
        """Stop everything the run started and save service logs. Idempotent. Returns the
        problems met (also kept in `stack.teardown_problems`); an interrupt during the
        teardown is raised after it completed."""
