"""The docker backend: a stack as containers on one Docker engine.

`DockerBackend().up(run, run_id=..., run_dir=..., env=...)` makes sure every image is in
the engine (building what is missing, offline when no registry answers: see
`images/`), then creates one network per run (``l2chaos-<run_id>``), a Toxiproxy
container on it (alias ``toxiproxy``) holding one proxy per link, and one container per
service (alias = the service name) in dependency order, services whose dependencies are
ready starting together. A client reaches its server only through the proxy:
``{link:a->b}`` renders as ``toxiproxy:<port of that proxy>``. Every service port and
Toxiproxy's API are published on 127.0.0.1 only, on host ports reserved like the local
backend's (so a restarted container keeps its address); the harness's control traffic,
probes and load use those (`direct_url`). Readiness is the service's HTTP ``ready``
(else ``health``) path, a PostgreSQL startup handshake for ``postgres:`` services, else
a TCP connection; a container that exits or is not ready in time raises StackError
with its name, exit code and the tail of its log, after everything started is removed.

Every object (network, containers, volumes) carries the labels ``l2chaos.run`` (the run
id) and ``l2chaos.owner`` (host, pid and start time of the harness process), so
`DockerBackend.gc` removes what a killed run left behind, and only that. `down` (also
at interpreter exit, and the runner calls it from its ``finally``) stops every
container, saves each one's log to ``run_dir/logs/<service>.log`` (Toxiproxy's to
``toxiproxy.log``), and removes containers, volumes and the network.

Container faults behind `ServiceControl` (`DockerControl`): kill = ``docker kill``
(SIGKILL); stop = ``docker stop`` (the image's stop signal: SIGTERM, PostgreSQL's
SIGINT fast shutdown; SIGKILL after the timeout); an immediate stop is SIGQUIT for
PostgreSQL (no checkpoint, crash recovery on the next start) and SIGKILL otherwise;
start = ``docker start`` of the same container (same environment, ports and data);
pause/resume = ``docker pause``/``unpause`` (the cgroup freezer); disconnect/reconnect
= ``docker network disconnect``/``connect`` from the run's network: the service is cut
off entirely, from its peers and from its published port, until it is reconnected.
Containers run with an init process (``--init``), so signals reach the service and
`pid` is that init process on the engine's host.

Remote engines (DOCKER_HOST, docker contexts, see docker_engine.py): ports are
published on ``L2CHAOS_DOCKER_BIND`` (default 127.0.0.1) of the engine's host, and
reached either directly (``L2CHAOS_DOCKER_REACH=direct``, at
``L2CHAOS_DOCKER_REACH_HOST``, default the engine's host name; publish on a reachable
address and pass ``--allow-target``) or through one SSH tunnel per run
(``L2CHAOS_DOCKER_REACH=ssh``: every published port forwarded to the same port on
127.0.0.1 here). docs/docker.md has the details.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import math
import os
import re
import secrets
import shutil
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from l2chaos.errors import L2ChaosError, StackError
from l2chaos.safety import ensure_allowed, is_loopback
from l2chaos.stackspec import ServiceSpec, StackRun, StackSpec, render

from .base import Backend, Endpoint, RunningStack
from .docker_engine import Engine, EngineUnavailable, connect, engine_host, ensure
from .live import LiveStacks
from .ports import PortAllocator, PortReservation
from .procs import (
    RUN_ID_ENV,
    GroupProcess,
    MarkerStore,
    RunMarker,
    process_start_time,
    process_state,
)
from .toxiproxy import ToxiproxyClient, ToxiproxyLinks, proxy_name

if TYPE_CHECKING:
    import docker
    from docker.models.containers import Container
    from docker.models.networks import Network

    from .images import ImagePlan

__all__ = [
    "LABEL_OWNER",
    "LABEL_RUN",
    "DockerBackend",
    "DockerControl",
    "DockerSettings",
    "DockerStack",
    "docker_name",
    "pg_handshake",
    "remove_run_objects",
    "run_objects",
]

log = logging.getLogger(__name__)

LABEL_RUN = "l2chaos.run"
LABEL_OWNER = "l2chaos.owner"
LABEL_STACK = "l2chaos.stack"
LABEL_SERVICE = "l2chaos.service"
TOXIPROXY = "toxiproxy"
TOXIPROXY_API_PORT = 8474
LINK_PORT_BASE = 20000
PG_PORT = 5432
DATA_DIR = "/l2chaos/data"
PG_DATA = "/var/lib/postgresql/data"
_POLL_S = 0.1
_TOXIPROXY_READY_S = 30.0
_NAME_SAFE = re.compile(r"[^a-zA-Z0-9_.-]+")


def _owner_label() -> str:
    pid = os.getpid()
    return f"{socket.gethostname()}|{pid}|{process_start_time(pid)}"


def _owner_alive(label: str) -> bool | None:
    """True/False for an owner on this host; None when it ran on another host."""
    host, _, rest = label.partition("|")
    pid_s, _, start_s = rest.partition("|")
    if host != socket.gethostname() or not pid_s.isdigit():
        return None
    pid = int(pid_s)
    start = process_start_time(pid)
    if start is None or process_state(pid) == "Z":
        return False
    return start_s in ("", "None") or str(start) == start_s


def docker_name(run_id: str, part: str | None = None) -> str:
    """A docker object name for this run (and service): ``l2chaos-<run_id>[-<part>]``."""
    base = "l2chaos-" + _NAME_SAFE.sub("-", run_id).strip("-.")
    return base if part is None else f"{base}-{part}"


def pg_handshake(
    host: str, port: int, user: str, database: str, timeout_s: float = 2.0
) -> tuple[bool, str]:
    """A PostgreSQL startup handshake, like pg_isready but for this user and database.

    (True, server_version) when the server accepts the session (trust auth), else
    (False, the reason: refused, closed, "the database system is starting up", ...).
    Through a published port a connection always opens (the engine's proxy accepts
    it), so only the server's own answer counts.
    """
    params = b"".join(
        k + b"\0" + v.encode() + b"\0" for k, v in ((b"user", user), (b"database", database))
    )
    body = struct.pack("!i", 196608) + params + b"\0"
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as s:
            s.settimeout(timeout_s)
            s.sendall(struct.pack("!i", len(body) + 4) + body)
            buf = b""
            version = "?"
            for _ in range(64):  # a handful of messages follow AuthenticationOk
                while len(buf) < 5:
                    chunk = s.recv(4096)
                    if not chunk:
                        return False, "connection closed before the server answered"
                    buf += chunk
                kind, length = buf[:1], struct.unpack("!i", buf[1:5])[0]
                while len(buf) < 1 + length:
                    chunk = s.recv(4096)
                    if not chunk:
                        return False, "connection closed mid-message"
                    buf += chunk
                payload, buf = buf[5 : 1 + length], buf[1 + length :]
                if kind == b"E":
                    fields = {f[:1]: f[1:] for f in payload.split(b"\0") if f}
                    return False, fields.get(b"M", b"error").decode(errors="replace")
                if kind == b"R" and struct.unpack("!i", payload[:4])[0] != 0:
                    return False, "the server asks for a password (expected trust auth)"
                if kind == b"S":
                    name, _, value = payload.partition(b"\0")
                    if name == b"server_version":
                        version = value.rstrip(b"\0").decode(errors="replace")
                if kind == b"Z":
                    with contextlib.suppress(OSError):
                        s.sendall(b"X\0\0\0\4")
                    return True, version
            return False, "no ReadyForQuery from the server"
    except OSError as exc:
        return False, f"{type(exc).__name__}: {exc}"


# ------------------------------------------------------------------ settings


@dataclass(frozen=True)
class DockerSettings:
    """How ports are published and reached; read once from the environment."""

    bind: str = "127.0.0.1"  # where ports are published on the engine's host
    reach: str = "direct"  # "direct" or "ssh"
    reach_host: str | None = None  # where the harness connects (direct); None: derived
    offline: bool | None = None  # True: always build offline; None: auto

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> DockerSettings:
        env = os.environ if environ is None else environ
        reach = (env.get("L2CHAOS_DOCKER_REACH") or "direct").strip().lower()
        if reach not in ("direct", "ssh"):
            from l2chaos.errors import UsageError

            raise UsageError(
                f"L2CHAOS_DOCKER_REACH={reach!r}; allowed: direct, ssh",
                field="L2CHAOS_DOCKER_REACH",
            )
        images = (env.get("L2CHAOS_IMAGES") or "").strip().lower()
        return cls(
            bind=(env.get("L2CHAOS_DOCKER_BIND") or "127.0.0.1").strip(),
            reach=reach,
            reach_host=(env.get("L2CHAOS_DOCKER_REACH_HOST") or "").strip() or None,
            offline=True if images == "offline" else None,
        )

    def connect_host(self, engine: Engine) -> str:
        """The address this host uses for published ports; StackError if none works."""
        if self.reach == "ssh":
            if engine.local:
                return "127.0.0.1"  # a tunnel to ourselves is pointless: connect directly
            if engine.ssh_destination is None:
                raise StackError(
                    f"L2CHAOS_DOCKER_REACH=ssh needs an ssh:// engine (DOCKER_HOST=ssh://user@host); "
                    f"this one is {engine.host}"
                )
            if not is_loopback(self.bind):
                raise StackError(
                    f"L2CHAOS_DOCKER_REACH=ssh forwards to 127.0.0.1 on the engine's host; "
                    f"L2CHAOS_DOCKER_BIND={self.bind} would publish beyond it: unset it"
                )
            return "127.0.0.1"
        if engine.local:
            host = self.reach_host or ("127.0.0.1" if self.bind in ("0.0.0.0", "") else self.bind)
        else:
            host = self.reach_host or engine.remote_host or ""
            if is_loopback(self.bind):
                raise StackError(
                    f"the engine at {engine.host} is remote: ports published on its "
                    f"{self.bind} are not reachable from here. Publish on an address this "
                    "host reaches (L2CHAOS_DOCKER_BIND=0.0.0.0 or its LAN address, and "
                    "--allow-target for load) or tunnel them (L2CHAOS_DOCKER_REACH=ssh "
                    "with DOCKER_HOST=ssh://user@host); see docs/docker.md"
                )
        if not host:
            raise StackError(f"cannot tell how to reach ports of the engine at {engine.host}")
        # Control traffic goes only to loopback, or to an address the user named himself.
        ensure_allowed(
            host,
            allow=[h for h in (self.reach_host, engine.remote_host) if h],
            what="control traffic",
        )
        return host


# ------------------------------------------------------------------ per-service state


@dataclass
class _Svc:
    name: str
    spec: ServiceSpec
    image: str
    container_port: int | None
    host_port: int | None
    ready_timeout_s: float
    container: Container | None = None
    lock: threading.RLock = field(default_factory=threading.RLock)
    disconnected: bool = False

    @property
    def is_postgres(self) -> bool:
        return self.spec.postgres is not None


def _state(container: Container) -> dict[str, Any]:
    container.reload()
    state = container.attrs.get("State") or {}
    return dict(state)


class DockerControl:
    """`ServiceControl` over containers (see the module docstring)."""

    def __init__(self, stack: DockerStack) -> None:
        self._stack = stack

    def _svc(self, service: str) -> _Svc:
        return self._stack._service(service)

    def _container(self, svc: _Svc) -> Container:
        if svc.container is None:
            raise StackError("has no container (the stack is not up)", service=svc.name)
        return svc.container

    def _call(self, svc: _Svc, what: str, fn: Callable[[], Any]) -> Any:
        import docker.errors

        try:
            return fn()
        except docker.errors.DockerException as exc:
            raise StackError(f"{what} failed: {_short(exc)}", service=svc.name) from None

    def pid(self, service: str) -> int | None:
        svc = self._svc(service)
        with svc.lock:
            st = self._call(svc, "inspect", lambda: _state(self._container(svc)))
            return int(st["Pid"]) if st.get("Running") and st.get("Pid") else None

    def is_running(self, service: str) -> bool:
        svc = self._svc(service)
        with svc.lock:
            st = self._call(svc, "inspect", lambda: _state(self._container(svc)))
            return bool(st.get("Running"))

    def _unpause(self, svc: _Svc) -> None:
        c = self._container(svc)
        if _state(c).get("Paused"):
            c.unpause()

    def _wait_exited(self, svc: _Svc, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        c = self._container(svc)
        while time.monotonic() < deadline:
            if not _state(c).get("Running"):
                return True
            time.sleep(0.05)
        return not _state(c).get("Running")

    def kill(self, service: str) -> None:
        svc = self._svc(service)
        with svc.lock:

            def do() -> None:
                c = self._container(svc)
                if not _state(c).get("Running"):
                    return
                self._unpause(svc)  # a frozen process would die only when thawed
                c.kill()
                self._wait_exited(svc, 10.0)

            self._call(svc, "docker kill", do)

    def stop(self, service: str, timeout_s: float = 10.0, *, immediate: bool = False) -> None:
        svc = self._svc(service)
        with svc.lock:

            def do() -> None:
                c = self._container(svc)
                if not _state(c).get("Running"):
                    return
                self._unpause(svc)
                if immediate:
                    if svc.is_postgres:  # immediate shutdown: no checkpoint, crash recovery
                        c.kill(signal="SIGQUIT")
                        if self._wait_exited(svc, timeout_s):
                            return
                    c.kill()
                    self._wait_exited(svc, 10.0)
                else:
                    c.stop(timeout=max(1, math.ceil(timeout_s)))

            self._call(svc, "docker stop", do)

    def start(self, service: str) -> None:
        """Start the same container again (same environment, ports, data); no-op if running."""
        svc = self._svc(service)
        with svc.lock:

            def do() -> None:
                c = self._container(svc)
                if _state(c).get("Running"):
                    return
                c.start()

            self._call(svc, "docker start", do)

    def restart(self, service: str, timeout_s: float = 10.0) -> None:
        svc = self._svc(service)
        with svc.lock:
            self.stop(service, timeout_s)
            self.start(service)

    def pause(self, service: str) -> None:
        svc = self._svc(service)
        with svc.lock:

            def do() -> None:
                c = self._container(svc)
                st = _state(c)
                if not st.get("Running"):
                    raise StackError("cannot pause: it is not running", service=service)
                if not st.get("Paused"):
                    c.pause()

            self._call(svc, "docker pause", do)

    def resume(self, service: str) -> None:
        svc = self._svc(service)
        with svc.lock:
            self._call(svc, "docker unpause", lambda: self._unpause(svc))

    def disconnect(self, service: str) -> None:
        svc = self._svc(service)
        with svc.lock:
            if svc.disconnected:
                return
            net = self._stack._net()
            self._call(
                svc, "docker network disconnect", lambda: net.disconnect(self._container(svc))
            )
            svc.disconnected = True

    def reconnect(self, service: str) -> None:
        svc = self._svc(service)
        with svc.lock:
            if not svc.disconnected:
                return
            net = self._stack._net()
            self._call(
                svc,
                "docker network connect",
                lambda: net.connect(self._container(svc), aliases=[svc.name]),
            )
            svc.disconnected = False

    def wait_ready(self, service: str, timeout_s: float) -> None:
        self._stack._wait_ready(self._svc(service), timeout_s)


# ------------------------------------------------------------------ the running stack


def _short(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:400]


class DockerStack(RunningStack):
    """A running stack of containers. Thread-safe; `down()` is idempotent."""

    def __init__(
        self,
        run: StackRun,
        *,
        engine: Engine,
        settings: DockerSettings,
        run_id: str,
        run_dir: Path,
        admin_token: str,
        extra_env: Mapping[str, str],
        stop_timeout_s: float,
        say: Callable[[str], None],
    ) -> None:
        self.run = run
        self.spec: StackSpec = run.spec
        self.engine = engine
        self.client: docker.DockerClient = engine.client
        self.settings = settings
        self.run_id = run_id
        self.stack_name = run.spec.name
        self.admin_token = admin_token
        self.run_dir = run_dir
        self.logs_dir = run_dir / "logs"
        self._extra_env = dict(extra_env)
        self._stop_timeout_s = stop_timeout_s
        self._say = say
        self._lock = threading.RLock()
        self._down = False
        self._cancel = threading.Event()  # set when bring-up fails or is interrupted
        self.owner_pid = os.getpid()
        self.network_name = docker_name(run_id)
        self._network: Network | None = None
        self._services: dict[str, _Svc] = {}
        self._order: list[str] = []
        self._tp: Container | None = None
        self._tp_client: ToxiproxyClient | None = None
        self._links: ToxiproxyLinks | None = None
        self._link_ports: dict[str, int] = {}  # link -> proxy port inside the network
        self._link_host_ports: dict[str, int] = {}  # link -> published port on the host
        self._reservations: list[PortReservation] = []
        self._tp_host_port: int | None = None
        self._forward: dict[int, int] = {}  # published port -> local port of the ssh tunnel
        self._markers = MarkerStore()
        self._host = "127.0.0.1"
        self._tunnel: GroupProcess | None = None
        self._volumes: list[str] = []
        self._versions: dict[str, str] = {}
        self.plan: ImagePlan | None = None
        self._control = DockerControl(self)
        self._http = httpx.Client(timeout=2.0, trust_env=False)
        self._labels = {
            LABEL_RUN: run_id,
            LABEL_OWNER: _owner_label(),
            LABEL_STACK: self.stack_name,
        }

    # ------------------------------------------------------------ RunningStack

    @property
    def services(self) -> list[str]:
        return list(self._order)

    def _service(self, name: str) -> _Svc:
        try:
            return self._services[name]
        except KeyError:
            raise StackError(
                f"unknown service {name!r}; services: {', '.join(self._order)}"
            ) from None

    def _reach(self, published: int) -> int:
        """The port this host connects to for a published port (the tunnel's, if any)."""
        return self._forward.get(published, published)

    def direct_endpoint(self, service: str) -> Endpoint:
        svc = self._service(service)
        if svc.host_port is None:
            raise StackError(
                "has no `port` in the stack file, so nothing is published to reach it directly",
                service=service,
            )
        return Endpoint(self._host, self._reach(svc.host_port))

    @property
    def links(self) -> ToxiproxyLinks:
        if self._links is None:
            raise StackError("Toxiproxy is not running for this stack")
        return self._links

    @property
    def control(self) -> DockerControl:
        return self._control

    def links_of(self, service: str) -> list[str]:
        return [lk.name for lk in self.spec.links_of(service)]

    def link_address(self, link: str) -> str:
        """What a client container uses for `link`: ``toxiproxy:<port>``."""
        key = link.replace(" ", "")
        if key not in self._link_ports:
            raise StackError(f"unknown link {link!r}")
        return f"{TOXIPROXY}:{self._link_ports[key]}"

    def container(self, service: str) -> Container:
        """The service's container (for tests and tools; faults go through `control`)."""
        svc = self._service(service)
        if svc.container is None:
            raise StackError("has no container", service=service)
        return svc.container

    def log_path(self, service: str) -> Path:
        if service != TOXIPROXY:
            self._service(service)
        return self.logs_dir / f"{service}.log"

    def log_tail(self, service: str, lines: int = 30) -> str:
        c = self._tp if service == TOXIPROXY else self._service(service).container
        if c is not None and not self._down:
            with contextlib.suppress(Exception):
                raw = c.logs(stdout=True, stderr=True, tail=lines)
                return raw.decode(errors="replace").rstrip()
        try:
            text = self.log_path(service).read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def versions(self) -> dict[str, str]:
        with self._lock:
            if "toxiproxy" not in self._versions and self._tp_client is not None:
                with contextlib.suppress(Exception):
                    self._versions["toxiproxy"] = self._tp_client.version()
            return dict(self._versions)

    def describe(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "stack": self.stack_name,
            "backend": "docker",
            "engine": self.engine.host,
            "network": self.network_name,
            "services": {
                s: (self.direct_url(s) if self._services[s].host_port is not None else None)
                for s in self._order
            },
            "images": {s: self._services[s].image for s in self._order}
            | ({TOXIPROXY: self.plan.toxiproxy} if self.plan else {}),
            "image_mode": self.plan.mode if self.plan else None,
            "links": self.links.links() if self._links is not None else [],
            "proxies": {lk: self.link_address(lk) for lk in self._link_ports},
        }

    def _common_values(self) -> dict[str, str]:
        values = {
            "admin_token": self.admin_token,
            "seed": str(self.run.seed),
            "run_id": self.run_id,
            "switches": self.run.switches_json(),
        }
        for name, setting in self.spec.settings.items():
            values[f"setting:{name}"] = setting.render(self.run.settings.get(name, setting.default))
        return values

    def template_values(
        self, service: str | None = None, out: Path | None = None
    ) -> dict[str, str]:
        """Template values as seen from this host (the audit command, harness tools):
        published ports at the reach address; with `service` its own ``{port}`` (the
        published one) and ``{host}``; with `out`, ``{out}``."""
        values = self._common_values()
        values.update(python=sys.executable, host=self._host)
        for lk, port in self._link_host_ports.items():
            values[f"link:{lk}"] = f"{self._host}:{self._reach(port)}"
        for name, svc in self._services.items():
            if svc.host_port is None:
                continue
            hostport = self.direct_endpoint(name).hostport
            values[f"direct:{name}"] = hostport
            pg = svc.spec.postgres
            if pg is not None:
                values[f"direct_dsn:{name}"] = f"postgresql://{pg.user}@{hostport}/{pg.database}"
        if service is not None:
            svc = self._service(service)
            if svc.host_port is not None:
                values["port"] = str(self._reach(svc.host_port))
        if out is not None:
            values["out"] = str(out)
        return values

    def container_values(self, service: str) -> dict[str, str]:
        """Template values as seen from inside `service`'s container: ``{link:a->b}`` is
        ``toxiproxy:<port>``, ``{direct:svc}`` the service's alias and container port,
        ``{python}`` the image's ``python3``, ``{host}`` every address."""
        svc = self._service(service)
        values = self._common_values()
        values.update(python="python3", host="0.0.0.0", data_dir=DATA_DIR)
        if svc.container_port is not None:
            values["port"] = str(svc.container_port)
        for lk in self._link_ports:
            values[f"link:{lk}"] = self.link_address(lk)
        for name, other in self._services.items():
            if other.container_port is not None:
                values[f"direct:{name}"] = f"{name}:{other.container_port}"
            pg = other.spec.postgres
            if pg is not None:
                values[f"direct_dsn:{name}"] = (
                    f"postgresql://{pg.user}@{name}:{PG_PORT}/{pg.database}"
                )
        return values

    def link_endpoint(self, link: str) -> Endpoint:
        """Where the proxy of `link` is published on this host (the local backend's
        counterpart; containers use `link_address`)."""
        key = link.replace(" ", "")
        if key not in self._link_host_ports:
            raise StackError(f"unknown link {link!r}")
        return Endpoint(self._host, self._reach(self._link_host_ports[key]))

    def __enter__(self) -> DockerStack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    # ------------------------------------------------------------ bring-up

    def _net(self) -> Network:
        if self._network is None:
            raise StackError("the run's network does not exist")
        return self._network

    def _bring_up(self) -> None:
        from .images import ensure_images

        spec = self.spec
        if TOXIPROXY in spec.services:
            raise StackError(f"a service may not be named {TOXIPROXY!r} on the docker backend")
        self._host = self.settings.connect_host(self.engine)
        t0 = time.monotonic()
        plan = ensure_images(self.client, spec, self._say, offline=self.settings.offline)
        self.plan = plan
        if time.monotonic() - t0 > 1.0:
            self._say(f"images ready ({plan.mode}) in {time.monotonic() - t0:.1f}s")
        self._order = spec.start_order()
        for i, lk in enumerate(spec.links):
            self._link_ports[lk.name] = LINK_PORT_BASE + i

        # host ports: reserved here like the local backend's, fixed for the whole run
        published = [n for n in self._order if self._container_port(spec.services[n])]
        count = len(published) + len(spec.links) + 1
        tunnel = self.settings.reach == "ssh" and not self.engine.local
        # with a tunnel, a second set: the local ends of the forwards (the engine's host
        # is another machine; its ports are chosen from the same pool, unchecked there)
        self._reservations = PortAllocator().reserve(count * 2 if tunnel else count)
        ports = iter(r.port for r in self._reservations[:count])
        self._tp_host_port = next(ports)
        host_ports = {n: next(ports) for n in published}
        self._link_host_ports = {lk.name: next(ports) for lk in spec.links}
        for name in self._order:
            s = spec.services[name]
            self._services[name] = _Svc(
                name=name,
                spec=s,
                image=plan.services[name],
                container_port=self._container_port(s),
                host_port=host_ports.get(name),
                ready_timeout_s=s.ready_timeout_ns / 1e9,
            )
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        if tunnel:
            remote = [self._tp_host_port, *host_ports.values(), *self._link_host_ports.values()]
            local = [r.port for r in self._reservations[count:]]
            self._forward = dict(zip(remote, local, strict=True))
            self._start_tunnel(self._forward)

        self._network = self.client.networks.create(
            self.network_name, driver="bridge", labels=dict(self._labels), check_duplicate=True
        )
        self._start_toxiproxy(plan.toxiproxy)
        self._start_services()

    @staticmethod
    def _container_port(s: ServiceSpec) -> int | None:
        return PG_PORT if s.postgres is not None else s.port

    def _start_tunnel(self, forward: Mapping[int, int]) -> None:
        dest = self.engine.ssh_destination
        assert dest is not None
        ssh = shutil.which("ssh")
        if ssh is None:
            raise StackError("L2CHAOS_DOCKER_REACH=ssh needs the ssh client on this host")
        argv = [ssh, "-N", "-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes",
                "-o", "ServerAliveInterval=15"]  # fmt: skip
        if self.engine.ssh_port:
            argv += ["-p", str(self.engine.ssh_port)]
        for remote, local in forward.items():
            argv += ["-L", f"127.0.0.1:{local}:127.0.0.1:{remote}"]
        argv.append(dest)
        env = {k: v for k, v in os.environ.items() if not k.startswith("L2CHAOS_")}
        env[RUN_ID_ENV] = self.run_id
        self._tunnel = GroupProcess(
            name="ssh-tunnel",
            argv=argv,
            env=env,
            cwd=self.logs_dir,
            log_path=self.logs_dir / "ssh-tunnel.log",
        )
        self._say(f"forwarding {len(forward)} ports through ssh to {dest}")
        first = next(iter(forward.values()))
        self._tunnel.start()
        # a marker, so `l2chaos gc` ends the tunnel if this process dies without teardown
        marker = RunMarker.for_this_process(self.run_id, self.stack_name)
        marker.processes = {"ssh-tunnel": self._tunnel.pid or 0}
        self._markers.write(marker)
        deadline = time.monotonic() + 20.0
        while time.monotonic() < deadline:
            if not self._tunnel.is_running():
                raise StackError(
                    f"the ssh tunnel to {dest} exited with code {self._tunnel.returncode}",
                    service="ssh-tunnel",
                    log_tail=self.log_tail("ssh-tunnel"),
                )
            try:
                with socket.create_connection(("127.0.0.1", first), timeout=1.0):
                    return
            except OSError:
                time.sleep(0.1)
        raise StackError(
            f"the ssh tunnel to {dest} did not listen within 20s", service="ssh-tunnel"
        )

    def _endpoint_config(self, alias: str) -> dict[str, Any]:
        from docker.types import EndpointConfig

        return {self.network_name: EndpointConfig(self.client.api.api_version, aliases=[alias])}

    def _start_toxiproxy(self, image: str) -> None:
        assert self._tp_host_port is not None
        labels = {**self._labels, LABEL_SERVICE: TOXIPROXY}
        self._tp = self.client.containers.create(
            image,
            # The scenario seed drives Toxiproxy's per-connection toxicity draws too.
            command=["-host=0.0.0.0", f"-port={TOXIPROXY_API_PORT}", f"-seed={self.run.seed}"],
            name=docker_name(self.run_id, TOXIPROXY),
            hostname=TOXIPROXY,
            labels=labels,
            detach=True,
            init=True,
            network=self.network_name,
            networking_config=self._endpoint_config(TOXIPROXY),
            ports={
                f"{TOXIPROXY_API_PORT}/tcp": (self.settings.bind, self._tp_host_port),
                **{
                    f"{self._link_ports[lk]}/tcp": (self.settings.bind, port)
                    for lk, port in self._link_host_ports.items()
                },
            },
        )
        self._tp.start()
        api = f"{self._host}:{self._reach(self._tp_host_port)}"
        self._tp_client = ToxiproxyClient(api)
        deadline = time.monotonic() + _TOXIPROXY_READY_S
        while True:
            try:
                version = self._tp_client.version()
                break
            except Exception as exc:
                last = _short(exc)
            st = _state(self._tp)
            if not st.get("Running"):
                raise StackError(
                    f"the Toxiproxy container exited with code {st.get('ExitCode')}",
                    service=TOXIPROXY,
                    log_tail=self.log_tail(TOXIPROXY),
                )
            if time.monotonic() > deadline:
                raise StackError(
                    f"Toxiproxy's API did not answer at {api} within {_TOXIPROXY_READY_S:g}s ({last})",
                    service=TOXIPROXY,
                    log_tail=self.log_tail(TOXIPROXY),
                )
            time.sleep(_POLL_S)
        self._versions["toxiproxy"] = version
        proxies: dict[str, str] = {}
        for lk in self.spec.links:
            name = proxy_name(lk.name)
            server = self._services[lk.server]
            assert server.container_port is not None  # the stack loader checks links
            self._tp_client.create_proxy(
                name,
                f"0.0.0.0:{self._link_ports[lk.name]}",
                f"{lk.server}:{server.container_port}",
            )
            proxies[lk.name] = name
        self._links = ToxiproxyLinks(self._tp_client, proxies)

    def _volume(self, service: str, kind: str) -> str:
        name = docker_name(self.run_id, f"{service}-{kind}")
        self.client.volumes.create(name, labels={**self._labels, LABEL_SERVICE: service})
        self._volumes.append(name)
        return name

    def _create(self, svc: _Svc) -> Container:
        s = svc.spec
        labels = {**self._labels, LABEL_SERVICE: svc.name}
        env: dict[str, str] = dict(self._extra_env)
        volumes: dict[str, dict[str, str]] = {}
        command: list[str] | None
        if s.postgres is not None:
            env.update(
                POSTGRES_USER=s.postgres.user,
                POSTGRES_DB=s.postgres.database,
                POSTGRES_HOST_AUTH_METHOD="trust",
                POSTGRES_INITDB_ARGS="--encoding=UTF8 --locale=C",
                TZ="UTC",
            )
            command = ["postgres", "-c", "max_connections=200", "-c", "timezone=UTC",
                       "-c", "log_timezone=UTC"]  # fmt: skip
            volumes[self._volume(svc.name, "data")] = {"bind": PG_DATA, "mode": "rw"}
        else:
            values = self.container_values(svc.name)
            try:
                command = [render(part, values) for part in s.command] or None
                rendered = {k: render(v, values) for k, v in s.env.items()}
            except KeyError as exc:
                raise StackError(
                    f"template {{{exc.args[0]}}} has no value on the docker backend",
                    service=svc.name,
                ) from None
            env.setdefault("PYTHONUNBUFFERED", "1")
            env.update(self.run.common_env(admin_token=self.admin_token, run_id=self.run_id))
            env.update(rendered)
            uses_data = any("{data_dir}" in t for t in (*s.command, *s.env.values()))
            if uses_data:
                volumes[self._volume(svc.name, "scratch")] = {"bind": DATA_DIR, "mode": "rw"}
        env[RUN_ID_ENV] = self.run_id
        ports = (
            {f"{svc.container_port}/tcp": (self.settings.bind, svc.host_port)}
            if svc.container_port is not None and svc.host_port is not None
            else None
        )
        return self.client.containers.create(
            svc.image,
            command=command,
            name=docker_name(self.run_id, svc.name),
            hostname=svc.name,
            labels=labels,
            environment=env,
            detach=True,
            init=True,
            network=self.network_name,
            networking_config=self._endpoint_config(svc.name),
            ports=ports,
            volumes=volumes or None,
        )

    def _start_one(self, svc: _Svc) -> None:
        if self._cancel.is_set():
            return
        with svc.lock:
            svc.container = self._create(svc)
            svc.container.start()
        self._wait_ready(svc, svc.ready_timeout_s)

    def _start_services(self) -> None:
        """Start services in waves: each wave is every service whose dependencies are
        ready; a wave's services start and become ready together."""
        ready: set[str] = set()
        pending = list(self._order)
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="docker-up")
        try:
            while pending:
                wave = [
                    n for n in pending if all(d in ready for d in self.spec.services[n].depends_on)
                ]
                if not wave:  # the loader rejects cycles; this cannot happen
                    raise StackError(f"cannot order services: {', '.join(pending)}")
                self._say(f"starting {', '.join(wave)}")
                futures = [pool.submit(self._start_one, self._services[n]) for n in wave]
                for fut in concurrent.futures.as_completed(futures):
                    exc = fut.exception()
                    if exc is not None:
                        raise exc
                ready.update(wave)
                pending = [n for n in pending if n not in ready]
        except BaseException:
            self._cancel.set()  # the rest of the wave stops waiting (SIGINT, a failure)
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    # ------------------------------------------------------------ readiness

    def _wait_ready(self, svc: _Svc, timeout_s: float) -> None:
        """Wait for the service's readiness probe; StackError when it exits or times out."""
        import docker.errors

        if svc.container is None:
            raise StackError("has no container", service=svc.name)
        deadline = time.monotonic() + timeout_s
        last = "no answer yet"
        path = svc.spec.ready or svc.spec.health
        while True:
            try:
                st = _state(svc.container)
            except docker.errors.DockerException as exc:
                raise StackError(
                    f"inspecting its container failed: {_short(exc)}", service=svc.name
                ) from None
            if not st.get("Running"):
                code = st.get("ExitCode")
                raise StackError(
                    f"its container exited with code {code} before it was ready"
                    + (" (OOM-killed)" if st.get("OOMKilled") else ""),
                    service=svc.name,
                    log_tail=self.log_tail(svc.name),
                )
            if self._cancel.is_set():
                raise StackError("bring-up cancelled", service=svc.name)
            ok, last = self._probe(svc, path) if not st.get("Paused") else (False, "paused")
            if ok:
                return
            if time.monotonic() >= deadline:
                raise StackError(
                    f"not ready after {timeout_s:g}s ({last})",
                    service=svc.name,
                    log_tail=self.log_tail(svc.name),
                )
            time.sleep(_POLL_S)

    def _probe(self, svc: _Svc, path: str | None) -> tuple[bool, str]:
        if svc.host_port is None:
            return True, "no port: running counts as ready"
        if svc.spec.postgres is not None:
            pg = svc.spec.postgres
            ok, info = pg_handshake(self._host, self._reach(svc.host_port), pg.user, pg.database)
            if ok:
                self._versions.setdefault("postgres", info)
            return ok, info
        if path is not None:
            url = self.direct_url(svc.name, path)
            try:
                resp = self._http.get(url)
            except httpx.HTTPError as exc:
                return False, f"GET {url}: {type(exc).__name__} {exc}"
            if resp.status_code == 200:
                return True, "200"
            return False, f"GET {url} answered {resp.status_code}: {resp.text[:200]}"
        # no HTTP path: a connection the service keeps open (the engine's port proxy
        # accepts every connection, then closes it at once when nothing listens)
        try:
            port = self._reach(svc.host_port)
            with socket.create_connection((self._host, port), timeout=1.0) as s:
                s.settimeout(0.3)
                try:
                    closed = s.recv(1) == b""
                except TimeoutError:
                    closed = False
                return (not closed), "closed at once" if closed else "open"
        except OSError as exc:
            return False, f"connect {self._host}:{self._reach(svc.host_port)}: {exc}"

    # ------------------------------------------------------------ teardown

    def _run_containers(self) -> list[tuple[str, Container]]:
        out = [(n, s.container) for n, s in self._services.items() if s.container is not None]
        if self._tp is not None:
            out.append((TOXIPROXY, self._tp))
        return out

    def _save_log(self, name: str, container: Container) -> None:
        path = self.logs_dir / f"{name}.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            for chunk in container.logs(stdout=True, stderr=True, stream=True, follow=False):
                f.write(chunk)

    def down(self) -> list[str]:
        """Stop and remove everything; idempotent. Returns problems met (never raises)."""
        with self._lock:
            if self._down:
                return []
            self._down = True
        problems: list[str] = []

        def step(what: str, fn: Callable[..., Any], *args: Any) -> None:
            try:
                fn(*args)
            except Exception as exc:  # teardown goes on whatever happens
                problems.append(f"{what}: {_short(exc)}")
                log.warning("teardown of run %s: %s: %s", self.run_id, what, exc)

        def stop(name: str, c: Container) -> None:
            with contextlib.suppress(Exception):
                if _state(c).get("Paused"):
                    c.unpause()
            step(
                f"stopping {name}", lambda: c.stop(timeout=max(1, math.ceil(self._stop_timeout_s)))
            )
            step(f"saving the log of {name}", self._save_log, name, c)

        containers = self._run_containers()
        if containers:
            with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
                list(pool.map(lambda nc: stop(*nc), containers))
        for name, c in containers:
            step(f"removing {name}", lambda c=c: c.remove(v=True, force=True))
        step("removing leftovers", remove_run_objects, self.client, self.run_id)
        if self._tunnel is not None:
            step("stopping the ssh tunnel", self._tunnel.stop, 5.0)
            step("removing the run marker", self._markers.remove, self.run_id)
        if self._tp_client is not None:
            step("closing toxiproxy client", self._tp_client.close)
        step("closing http client", self._http.close)
        for r in self._reservations:
            r.release()
        self.engine.close()
        _LIVE.discard(self)
        return problems


def remove_run_objects(client: docker.DockerClient, run_id: str) -> list[str]:
    """Remove every container, network and volume labelled with this run; one line each."""
    removed: list[str] = []
    flt: dict[str, str | list[str] | bool] = {"label": f"{LABEL_RUN}={run_id}"}
    for c in client.containers.list(all=True, filters=flt):
        with contextlib.suppress(Exception):
            c.remove(v=True, force=True)
            removed.append(f"docker: removed container {c.name} (run {run_id})")
    for n in client.networks.list(filters=flt):
        with contextlib.suppress(Exception):
            n.remove()
            removed.append(f"docker: removed network {n.name} (run {run_id})")
    for v in client.volumes.list(filters=flt):
        with contextlib.suppress(Exception):
            v.remove(force=True)
            removed.append(f"docker: removed volume {v.name} (run {run_id})")
    return removed


def run_objects(client: docker.DockerClient, run_id: str | None = None) -> dict[str, list[str]]:
    """Names of labelled containers, networks and volumes (of one run, or of all runs)."""
    flt: dict[str, str | list[str] | bool] = {
        "label": f"{LABEL_RUN}={run_id}" if run_id else LABEL_RUN
    }
    return {
        "containers": [str(c.name) for c in client.containers.list(all=True, filters=flt)],
        "networks": [str(n.name) for n in client.networks.list(filters=flt)],
        "volumes": [str(v.name) for v in client.volumes.list(filters=flt)],
    }


# ------------------------------------------------------------------ atexit fallback


_LIVE = LiveStacks()


def _progress_to_stderr(text: str) -> None:
    print(f"[l2chaos] docker: {text}", file=sys.stderr, flush=True)


class DockerBackend(Backend):
    """Stacks as containers on the configured Docker engine; see the module docstring."""

    name = "docker"

    def __init__(
        self,
        *,
        stop_timeout_s: float = 5.0,
        settings: DockerSettings | None = None,
        say: Callable[[str], None] | None = None,
    ) -> None:
        self.stop_timeout_s = stop_timeout_s
        self.settings = settings if settings is not None else DockerSettings.from_env()
        self.say = say if say is not None else _progress_to_stderr

    def up(
        self, spec: StackRun, *, run_id: str, run_dir: Path, env: Mapping[str, str]
    ) -> DockerStack:
        """Start the stack; `env` is added to every service's environment. The admin token
        is ``env["L2CHAOS_ADMIN_TOKEN"]`` when given, else a fresh random one."""
        token = env.get("L2CHAOS_ADMIN_TOKEN") or secrets.token_urlsafe(24)
        try:
            engine = ensure(self.say) if os.geteuid() == 0 else connect()
        except EngineUnavailable:
            raise
        except Exception as exc:
            raise StackError(f"connecting to the Docker engine failed: {_short(exc)}") from exc
        stack = DockerStack(
            spec,
            engine=engine,
            settings=self.settings,
            run_id=run_id,
            run_dir=Path(run_dir),
            admin_token=token,
            extra_env={**env, "L2CHAOS_ADMIN_TOKEN": token},
            stop_timeout_s=self.stop_timeout_s,
            say=self.say,
        )
        _LIVE.add(stack)
        try:
            stack._bring_up()
            with contextlib.suppress(Exception):
                stack._versions.update(engine.info())
        except BaseException as exc:
            stack.down()
            if isinstance(exc, Exception) and not isinstance(exc, L2ChaosError):
                raise StackError(
                    f"starting stack {spec.spec.name!r} on docker failed: {_short(exc)}"
                ) from exc
            raise
        return stack

    def down(self, stack: RunningStack) -> None:
        if not isinstance(stack, DockerStack):
            raise StackError(f"the docker backend cannot stop a {type(stack).__name__}")
        stack.down()

    @classmethod
    def gc(cls) -> list[str]:
        """Remove labelled objects of runs whose owner process (on this host) is gone.

        Never starts an engine: when none answers there is nothing of ours to remove.
        """
        host, _ = engine_host()
        if host.startswith("unix://") and not Path(host.removeprefix("unix://")).exists():
            return []
        try:
            engine = connect(timeout_s=30)
        except EngineUnavailable:
            return []
        removed: list[str] = []
        try:
            client = engine.client
            owners: dict[str, str] = {}
            flt: dict[str, str | list[str] | bool] = {"label": LABEL_RUN}
            objects: list[Any] = [
                *client.containers.list(all=True, filters=flt),
                *client.networks.list(filters=flt),
                *client.volumes.list(filters=flt),
            ]
            for obj in objects:
                labels = _labels_of(obj)
                run = labels.get(LABEL_RUN)
                if run:
                    owners.setdefault(run, labels.get(LABEL_OWNER, ""))
            for run, owner in sorted(owners.items()):
                if _owner_alive(owner) is False:
                    removed += remove_run_objects(client, run)
        finally:
            engine.close()
        return removed


def _labels_of(obj: Any) -> dict[str, str]:
    attrs = getattr(obj, "attrs", {}) or {}
    labels = attrs.get("Labels") or (attrs.get("Config") or {}).get("Labels") or {}
    return {str(k): str(v) for k, v in dict(labels).items()}
