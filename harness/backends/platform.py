"""What a platform does: create, signal, network and remove the units of one stack.

The `StackOrchestrator` (orchestrator.py) owns everything platforms share: ports, the
`gc` marker, Toxiproxy and its links, template values, dependency order, readiness,
restarts and teardown. A platform only runs things: local processes (local.py), docker
containers (docker.py), and whatever registers in the entry-point group
``l2chaos.platforms``. A unit is a service of the stack file, or Toxiproxy (`TOXIPROXY`).

Addresses come in two views. *Host* view: where this host (the harness) reaches a port
the orchestrator reserved for a unit (`reach`). *Inside* view: how one unit reaches
another (`peer_address`, `proxy_address`): the same on the local platform, container
aliases on docker. Commands are rendered with the inside view, so a platform gives the
values only it knows (`inside_values`: ``{python}``, ``{host}``, ``{port}``,
``{data_dir}``, ``{stack_dir}``).

`capabilities` says which controls the platform does natively (``kill``, ``stop``,
``pause``, ``disconnect``); the orchestrator approximates a missing ``disconnect`` by
disabling every Toxiproxy link of the service.

A minimal platform (tests/unit/backends/memplatform.py runs it, without processes)::

    class MemoryPlatform(LoopbackPlatform):   # addresses: 127.0.0.1:<reserved port>
        name = "memory"
        capabilities = frozenset({"kill", "stop", "pause"})

        def open(self, ctx):            self.ctx, self.up = ctx, {}
        def start_toxiproxy(self, api_port, listen_ports, seed):
            return MemoryProxies()
        def inside_values(self, service):
            return {"python": "python3", "host": "127.0.0.1",
                    "port": str(self.ctx.ports[service])}
        def create(self, service, command, env):  self.up[service] = False
        def start(self, service):        self.up[service] = True
        def kill(self, service):         self.up[service] = False
        def stop(self, service, timeout_s, *, immediate=False): self.up[service] = False
        def pause(self, service): ...
        def resume(self, service): ...
        def state(self, service):        return UnitState(running=self.up[service])
        def pid(self, service):          return None
        def log_tail(self, service, lines): return ""
        def remove_all(self, teardown):  self.up.clear()
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Protocol

from l2chaos.errors import StackError
from l2chaos.l7proxy.launch import listen_unit

from .base import Endpoint, Toxic

if TYPE_CHECKING:
    from l2chaos.stackspec import PostgresSpec, ServiceSpec, StackRun

    from .teardown import Teardown

__all__ = [
    "LOOPBACK",
    "TOXIPROXY",
    "LoopbackPlatform",
    "Platform",
    "PlatformContext",
    "ProxyApi",
    "UnitState",
]

TOXIPROXY = "toxiproxy"
LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class UnitState:
    """What the platform sees of a unit right now."""

    running: bool
    paused: bool = False
    exit_code: int | None = None
    detail: str = ""  # e.g. "OOM-killed"


class ProxyApi(Protocol):
    """The Toxiproxy API as the orchestrator uses it (`ToxiproxyClient` is one)."""

    def version(self) -> str: ...

    def create_proxy(
        self, name: str, listen: str, upstream: str, enabled: bool = True
    ) -> object: ...

    def set_enabled(self, name: str, enabled: bool) -> object: ...

    def is_enabled(self, name: str) -> bool: ...

    def add_toxic(self, proxy: str, toxic: Toxic) -> object: ...

    def remove_toxic(self, proxy: str, name: str, missing_ok: bool = True) -> bool: ...

    def toxics(self, proxy: str) -> list[Toxic]: ...

    def reset(self) -> None:
        """Enable every proxy and remove every toxic."""
        ...

    def close(self) -> None: ...


@dataclass
class PlatformContext:
    """What the orchestrator hands a platform for one run."""

    run: StackRun
    run_id: str
    run_dir: Path
    admin_token: str
    extra_env: Mapping[str, str]
    ports: Mapping[str, int]  # unit or link name -> port reserved on this host
    cancel: threading.Event  # set when bring-up fails or is interrupted
    say: Callable[[str], None]
    save_marker: Callable[[], None]  # call after starting a process `gc` must find
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def logs_dir(self) -> Path:
        return self.run_dir / "logs"

    def log_path(self, unit: str) -> Path:
        return self.logs_dir / f"{unit}.log"

    def service(self, name: str) -> ServiceSpec:
        return self.run.spec.services[name]


class Platform(ABC):
    """Creates, signals, networks and removes units; see the module docstring.

    Every method but `open` may be called from several threads, never twice at once for
    the same unit (the orchestrator holds a lock per unit).
    """

    name: ClassVar[str]
    # one line for `l2chaos list platforms` (else the class docstring's first paragraph)
    summary: ClassVar[str] = ""
    capabilities: ClassVar[frozenset[str]] = frozenset()
    # `--backend auto` takes the lowest rank whose `supports` says yes
    auto_rank: ClassVar[int] = 100
    # say "starting a, b" per wave (where bring-up is slow enough to want progress)
    announce_waves: ClassVar[bool] = False

    @classmethod
    def supports(cls, spec: ServiceSpec) -> bool:
        """Whether this platform can run the service (e.g. it has a command, or an image)."""
        return True

    @classmethod
    def publishes(cls, spec: ServiceSpec) -> bool:
        """Whether the service gets a reserved host port (reached directly from here)."""
        return spec.port is not None or spec.postgres is not None

    @classmethod
    def gc(cls) -> list[str]:
        """Remove what killed runs left on this platform (beyond processes and temp dirs,
        which the run markers cover); one line per thing removed."""
        return []

    # ---------------------------------------------------------------- bring-up

    @abstractmethod
    def open(self, ctx: PlatformContext) -> None:
        """Prepare the run (images, network, scratch folders); nothing runs yet."""

    @abstractmethod
    def start_toxiproxy(
        self, api_port: int, listen_ports: Mapping[str, int], seed: int
    ) -> ProxyApi:
        """Run Toxiproxy with its API on `api_port` and every link's listen port reachable
        on the reserved host port of `listen_ports`; return its API client (the
        orchestrator waits until it answers)."""

    @abstractmethod
    def create(self, service: str, command: list[str], env: dict[str, str]) -> None:
        """Create the service with its rendered command (may be empty for an image's own)
        and environment; `start` runs it."""

    # ---------------------------------------------------------------- addresses

    @abstractmethod
    def peer_address(self, service: str) -> str:
        """host:port where other units (and Toxiproxy) reach `service`."""

    @abstractmethod
    def proxy_address(self, link: str) -> str:
        """host:port where a service reaches the proxy of `link`."""

    @abstractmethod
    def proxy_listen(self, link: str) -> str:
        """host:port the proxy of `link` listens on, inside Toxiproxy."""

    def start_l7proxy(self, control_port: int, listen_ports: Mapping[str, int], token: str) -> None:
        """Run the L7 proxy (``python -m l2chaos.l7proxy``, token in ``L2CHAOS_L7_TOKEN``)
        with its control API on the reserved host port `control_port` and its decisions
        going to the run's ``l7.jsonl``; `listen_ports` are the host ports reserved for
        its per-link listeners (`l7_listen`). The unit is called `L7PROXY`."""
        raise StackError(f"the {self.name} platform cannot run the L7 proxy (layer: http links)")

    def l7_listen(self, link: str) -> str:
        """host:port the L7 proxy listens on for `link`, inside its unit."""
        raise StackError(f"the {self.name} platform cannot run the L7 proxy")

    def l7_address(self, link: str) -> str:
        """host:port where Toxiproxy reaches the L7 proxy's listener for `link`."""
        raise StackError(f"the {self.name} platform cannot run the L7 proxy")

    @abstractmethod
    def reach(self, port: int) -> Endpoint:
        """Where this host connects to a reserved (published) port."""

    @abstractmethod
    def inside_values(self, service: str) -> dict[str, str]:
        """``python``, ``host``, ``port``, ``data_dir``, ``stack_dir`` as `service` sees them."""

    def host_data_dir(self, service: str) -> Path | None:
        """The service's scratch folder when it is on this host (``{data_dir}`` in the
        host view), else None."""
        return None

    def postgres_login(self, spec: PostgresSpec) -> tuple[str, str]:
        """(user, database) a readiness handshake may use before `initialise`."""
        return spec.user, spec.database

    def initialise(self, service: str) -> None:  # noqa: B027 (optional hook)
        """Once, after the service's first readiness (e.g. create the database)."""

    # ---------------------------------------------------------------- control

    @abstractmethod
    def start(self, service: str) -> None:
        """Run it (again, same command, environment and data); no-op when it runs."""

    @abstractmethod
    def kill(self, service: str) -> None:
        """SIGKILL (a paused unit is thawed first); returns once it is gone."""

    @abstractmethod
    def stop(self, service: str, timeout_s: float, *, immediate: bool = False) -> None:
        """Graceful stop, SIGKILL after `timeout_s`; `immediate`: the crash path
        (PostgreSQL's SIGQUIT, SIGKILL otherwise). Returns once it is gone."""

    @abstractmethod
    def pause(self, service: str) -> None:
        """Freeze it (StackError when it is not running)."""

    @abstractmethod
    def resume(self, service: str) -> None:
        """Thaw it; harmless when it is not frozen."""

    def disconnect(self, service: str) -> None:
        """Cut it off the network (only with the ``disconnect`` capability)."""
        raise StackError(f"the {self.name} platform cannot disconnect", service=service)

    def reconnect(self, service: str) -> None:
        raise StackError(f"the {self.name} platform cannot reconnect", service=service)

    @abstractmethod
    def state(self, service: str) -> UnitState: ...

    @abstractmethod
    def pid(self, service: str) -> int | None:
        """The unit's main process id, None when it does not run."""

    # ---------------------------------------------------------------- records

    @abstractmethod
    def log_tail(self, unit: str, lines: int) -> str: ...

    def processes(self) -> dict[str, int]:
        """Host processes of this run for the `gc` marker (name -> pid)."""
        return {}

    def temp_dirs(self) -> list[Path]:
        """Scratch folders of this run for the `gc` marker."""
        return []

    def versions(self) -> dict[str, str]:
        return {}

    def describe(self) -> dict[str, object]:
        """Platform details for run.json (engine, network, images, ...)."""
        return {}

    # ---------------------------------------------------------------- teardown

    def stop_all(self, units: list[str], timeout_s: float, teardown: Teardown) -> None:
        """Stop units (services in reverse order, then Toxiproxy) and save their logs."""
        for unit in units:
            teardown.step(f"stopping {unit}", self.stop, unit, timeout_s)

    @abstractmethod
    def remove_all(self, teardown: Teardown) -> None:
        """Remove everything of the run (containers, networks, stray processes, scratch)."""


class LoopbackPlatform(Platform):
    """A platform whose units share this host's network (local processes, in-process
    test doubles): every unit and every proxy listens on 127.0.0.1 at the port reserved
    for it, so the inside view of an address is the host view."""

    @property
    @abstractmethod
    def ctx(self) -> PlatformContext: ...

    def peer_address(self, service: str) -> str:
        return f"{LOOPBACK}:{self.ctx.ports[service]}"

    def proxy_address(self, link: str) -> str:
        return f"{LOOPBACK}:{self.ctx.ports[link]}"

    def proxy_listen(self, link: str) -> str:
        return self.proxy_address(link)

    def l7_listen(self, link: str) -> str:
        return f"{LOOPBACK}:{self.ctx.ports[listen_unit(link)]}"

    def l7_address(self, link: str) -> str:
        return self.l7_listen(link)

    def reach(self, port: int) -> Endpoint:
        return Endpoint(LOOPBACK, port)
