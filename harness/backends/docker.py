"""The docker platform: a stack as containers on one Docker engine.

`open` makes sure every image is in the engine (building what is missing, offline when
no registry answers: see `images/`) and creates one network per run
(``l2chaos-<run_id>``). Toxiproxy runs as a container on it (alias ``toxiproxy``), each
service as one container (alias = the service name) started with an init process
(``--init``), so signals reach the service and `pid` is that init process on the
engine's host. A client reaches its server only through the proxy: ``{link:a->b}``
renders as ``toxiproxy:<port of that proxy>`` inside the network. Every service port,
every proxy and Toxiproxy's API are published on the host ports the orchestrator
reserved (so a restarted container keeps its address), on 127.0.0.1 unless configured
otherwise. ``{data_dir}`` is a volume of the run; ``{stack_dir}`` the stack file's
folder, mounted read-only (local engines only).

Every object (network, containers, volumes) carries the labels ``l2chaos.run`` (the run
id) and ``l2chaos.owner`` (host, pid and start time of the harness process), so
`DockerPlatform.gc` removes what a killed run left behind, and only that. Teardown stops
every container (in parallel), saves each one's log to ``run_dir/logs/<unit>.log`` and
removes containers, volumes and the network.

Container control: kill = ``docker kill`` (SIGKILL; a paused container is thawed first);
stop = ``docker stop`` (the image's stop signal: SIGTERM, PostgreSQL's SIGINT fast
shutdown; SIGKILL after the timeout); an immediate stop is SIGQUIT for PostgreSQL (no
checkpoint, crash recovery on the next start) and SIGKILL otherwise; start = ``docker
start`` of the same container (same environment, ports and data); pause/resume =
``docker pause``/``unpause`` (the cgroup freezer); disconnect/reconnect = ``docker
network disconnect``/``connect`` from the run's network: the service is cut off
entirely, from its peers and from its published port, until it is reconnected.

Remote engines (DOCKER_HOST, docker contexts, see docker_engine.py): ports are
published on ``L2CHAOS_DOCKER_BIND`` (default 127.0.0.1) of the engine's host, and
reached either directly (``L2CHAOS_DOCKER_REACH=direct``, at
``L2CHAOS_DOCKER_REACH_HOST``, default the engine's host name; publish on a reachable
address and pass ``--allow-target``) or through one SSH tunnel per run
(``L2CHAOS_DOCKER_REACH=ssh``: every published port forwarded to a port on 127.0.0.1
here). docs/docker.md has the details.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import io
import math
import os
import re
import shutil
import socket
import tarfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from l2chaos.errors import StackError
from l2chaos.l7proxy import launch as l7launch
from l2chaos.l7proxy.launch import L7PROXY
from l2chaos.safety import ensure_allowed, is_loopback

from .base import Endpoint
from .docker_engine import Engine, EngineUnavailable, connect, engine_host, ensure
from .orchestrator import OrchestratedStack, StackOrchestrator
from .platform import TOXIPROXY, Platform, PlatformContext, UnitState
from .ports import PortAllocator, PortReservation
from .procs import RUN_ID_ENV, GroupProcess, process_start_time, process_state
from .toxiproxy import ToxiproxyClient

if TYPE_CHECKING:
    import docker
    from docker.models.containers import Container
    from docker.models.networks import Network
    from l2chaos.stackspec import ServiceSpec

    from .images import ImagePlan
    from .teardown import Teardown

__all__ = [
    "LABEL_OWNER",
    "LABEL_RUN",
    "DockerBackend",
    "DockerPlatform",
    "DockerSettings",
    "DockerStack",
    "docker_name",
    "remove_run_objects",
    "run_objects",
]

LABEL_RUN = "l2chaos.run"
LABEL_OWNER = "l2chaos.owner"
LABEL_STACK = "l2chaos.stack"
LABEL_SERVICE = "l2chaos.service"
TOXIPROXY_API_PORT = 8474
LINK_PORT_BASE = 20000
L7_PORT_BASE = 21000  # the L7 proxy's listeners, one per `layer: http` link
L7_CONTROL_PORT = 8475
L7_DECISIONS = "/l2chaos/l7/l7.jsonl"
PG_PORT = 5432
DATA_DIR = "/l2chaos/data"
STACK_DIR = "/l2chaos/stack"
PG_DATA = "/var/lib/postgresql/data"
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
    """A docker object name for this run (and unit): ``l2chaos-<run_id>[-<part>]``."""
    base = "l2chaos-" + _NAME_SAFE.sub("-", run_id).strip("-.")
    return base if part is None else f"{base}-{part}"


def _short(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:400]


def _state(container: Container) -> dict[str, Any]:
    container.reload()
    state = container.attrs.get("State") or {}
    return dict(state)


def _container_port(s: ServiceSpec) -> int | None:
    return PG_PORT if s.postgres is not None else s.port


def _uses(s: ServiceSpec, key: str) -> bool:
    return any(f"{{{key}}}" in t for t in (*s.command, *s.env.values()))


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


class DockerPlatform(Platform):
    """Units as containers on one engine; see the module docstring."""

    name = "docker"
    summary = "the stack as containers on one Docker engine, on a network of its own"
    capabilities: ClassVar[frozenset[str]] = frozenset({"kill", "stop", "pause", "disconnect"})
    auto_rank = 10
    announce_waves = True

    def __init__(self, *, settings: DockerSettings | None = None) -> None:
        self.settings = settings if settings is not None else DockerSettings.from_env()
        self._ctx: PlatformContext | None = None
        self._engine: Engine | None = None
        self._network: Network | None = None
        self._containers: dict[str, Container] = {}
        self._link_ports: dict[str, int] = {}  # link -> proxy port inside the network
        self._l7_ports: dict[str, int] = {}  # link -> L7 listener port inside the network
        self._forward: dict[int, int] = {}  # published port -> local end of the ssh tunnel
        self._tunnel: GroupProcess | None = None
        self._tunnel_ports: list[PortReservation] = []
        self._host = "127.0.0.1"
        self._labels: dict[str, str] = {}
        self._versions: dict[str, str] = {}
        self._removed = False
        self.plan: ImagePlan | None = None

    @property
    def ctx(self) -> PlatformContext:
        if self._ctx is None:
            raise StackError("the docker platform is not open")
        return self._ctx

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise StackError("not connected to a Docker engine")
        return self._engine

    @property
    def client(self) -> docker.DockerClient:
        return self.engine.client

    @property
    def network_name(self) -> str:
        return docker_name(self.ctx.run_id)

    def container(self, unit: str) -> Container:
        """The unit's container (for tests and tools; faults go through the controls)."""
        try:
            return self._containers[unit]
        except KeyError:
            raise StackError("has no container", service=unit) from None

    def _call(self, unit: str, what: str, fn: Callable[[], Any]) -> Any:
        import docker.errors

        try:
            return fn()
        except docker.errors.DockerException as exc:
            raise StackError(f"{what} failed: {_short(exc)}", service=unit) from None

    # ---------------------------------------------------------------- bring-up

    def open(self, ctx: PlatformContext) -> None:
        from .images import ensure_images

        self._ctx = ctx
        try:
            self._engine = ensure(ctx.say) if os.geteuid() == 0 else connect()
        except EngineUnavailable:
            raise
        except Exception as exc:
            raise StackError(f"connecting to the Docker engine failed: {_short(exc)}") from exc
        self._labels = {
            LABEL_RUN: ctx.run_id,
            LABEL_OWNER: _owner_label(),
            LABEL_STACK: ctx.run.spec.name,
        }
        self._host = self.settings.connect_host(self.engine)
        t0 = time.monotonic()
        self.plan = ensure_images(self.client, ctx.run.spec, ctx.say, offline=self.settings.offline)
        if time.monotonic() - t0 > 1.0:
            ctx.say(f"images ready ({self.plan.mode}) in {time.monotonic() - t0:.1f}s")
        self._link_ports = {lk: LINK_PORT_BASE + i for i, lk in enumerate(ctx.run.spec.link_names)}
        if self.settings.reach == "ssh" and not self.engine.local:
            # the local ends of the forwards (the engine's host is another machine; its
            # ports are chosen from the same pool, unchecked there)
            self._tunnel_ports = PortAllocator().reserve(len(ctx.ports))
            local = [r.port for r in self._tunnel_ports]
            self._forward = dict(zip(ctx.ports.values(), local, strict=True))
            self._start_tunnel(self._forward)
        self._network = self.client.networks.create(
            self.network_name, driver="bridge", labels=dict(self._labels), check_duplicate=True
        )
        with contextlib.suppress(Exception):
            self._versions.update(self.engine.info())

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
        env[RUN_ID_ENV] = self.ctx.run_id
        self._tunnel = GroupProcess(
            name="ssh-tunnel",
            argv=argv,
            env=env,
            cwd=self.ctx.logs_dir,
            log_path=self.ctx.log_path("ssh-tunnel"),
        )
        self.ctx.say(f"forwarding {len(forward)} ports through ssh to {dest}")
        first = next(iter(forward.values()))
        self._tunnel.start()
        self.ctx.save_marker()  # so `l2chaos gc` ends the tunnel if this process dies
        deadline = time.monotonic() + 20.0
        while time.monotonic() < deadline:
            if not self._tunnel.is_running():
                raise StackError(
                    f"the ssh tunnel to {dest} exited with code {self._tunnel.returncode}",
                    service="ssh-tunnel",
                    log_tail=self.log_tail("ssh-tunnel", 30),
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

    def _run(self, unit: str, image: str, **kwargs: Any) -> Container:
        """Create a container of the run on its network (alias = the unit's name)."""
        container = self.client.containers.create(
            image,
            name=docker_name(self.ctx.run_id, unit),
            hostname=unit,
            labels={**self._labels, LABEL_SERVICE: unit},
            detach=True,
            init=True,
            network=self.network_name,
            networking_config=self._endpoint_config(unit),
            **kwargs,
        )
        self._containers[unit] = container
        return container

    def start_toxiproxy(
        self, api_port: int, listen_ports: Mapping[str, int], seed: int
    ) -> ToxiproxyClient:
        assert self.plan is not None
        bind = self.settings.bind
        ports = {f"{TOXIPROXY_API_PORT}/tcp": (bind, api_port)} | {
            f"{self._link_ports[lk]}/tcp": (bind, port) for lk, port in listen_ports.items()
        }
        # The scenario seed drives Toxiproxy's per-connection toxicity draws too.
        command = ["-host=0.0.0.0", f"-port={TOXIPROXY_API_PORT}", f"-seed={seed}"]
        self._run(TOXIPROXY, self.plan.toxiproxy, command=command, ports=ports).start()
        return ToxiproxyClient(self.reach(api_port).hostport)

    def start_l7proxy(self, control_port: int, listen_ports: Mapping[str, int], token: str) -> None:
        assert self.plan is not None
        assert self.plan.l7proxy is not None
        self._l7_ports = {lk: L7_PORT_BASE + i for i, lk in enumerate(listen_ports)}
        command = ["--control", f"0.0.0.0:{L7_CONTROL_PORT}", "--decisions", L7_DECISIONS]
        ports = {f"{L7_CONTROL_PORT}/tcp": (self.settings.bind, control_port)}
        env = {l7launch.TOKEN_ENV: token, RUN_ID_ENV: self.ctx.run_id}
        self._run(L7PROXY, self.plan.l7proxy, command=command, environment=env, ports=ports).start()

    def _save_decisions(self, c: Container) -> None:
        """Copy the L7 proxy's decision log out of its (stopped) container."""
        stream, _ = c.get_archive(L7_DECISIONS)
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            member = tar.extractfile(tar.getmembers()[0])
            assert member is not None
            (self.ctx.run_dir / l7launch.DECISIONS_FILE).write_bytes(member.read())

    def _volume(self, service: str, kind: str) -> str:
        name = docker_name(self.ctx.run_id, f"{service}-{kind}")
        self.client.volumes.create(name, labels={**self._labels, LABEL_SERVICE: service})
        return name

    def create(self, service: str, command: list[str], env: dict[str, str]) -> None:
        assert self.plan is not None
        s = self.ctx.service(service)
        volumes: dict[str, dict[str, str]] = {}
        if s.postgres is not None:
            env = {
                **self.ctx.extra_env,
                "POSTGRES_USER": s.postgres.user,
                "POSTGRES_DB": s.postgres.database,
                "POSTGRES_HOST_AUTH_METHOD": "trust",
                "POSTGRES_INITDB_ARGS": "--encoding=UTF8 --locale=C",
                "TZ": "UTC",
                RUN_ID_ENV: self.ctx.run_id,
            }
            command = ["postgres", "-c", "max_connections=200", "-c", "timezone=UTC",
                       "-c", "log_timezone=UTC"]  # fmt: skip
            volumes[self._volume(service, "data")] = {"bind": PG_DATA, "mode": "rw"}
        if _uses(s, "data_dir"):
            volumes[self._volume(service, "scratch")] = {"bind": DATA_DIR, "mode": "rw"}
        if _uses(s, "stack_dir"):
            if not self.engine.local:
                raise StackError(
                    "uses {stack_dir}, which a remote engine cannot mount", service=service
                )
            volumes[str(self.ctx.run.spec.root)] = {"bind": STACK_DIR, "mode": "ro"}
        cport, hport = _container_port(s), self.ctx.ports.get(service)
        ports = {f"{cport}/tcp": (self.settings.bind, hport)} if cport and hport else None
        self._run(
            service,
            self.plan.services[service],
            command=command or None,
            environment=env,
            ports=ports,
            volumes=volumes or None,
        )

    # ---------------------------------------------------------------- addresses

    def peer_address(self, service: str) -> str:
        port = _container_port(self.ctx.service(service))
        if port is None:
            raise StackError("has no `port` to reach it at", service=service)
        return f"{service}:{port}"

    def proxy_address(self, link: str) -> str:
        return f"{TOXIPROXY}:{self._link_ports[link]}"

    def proxy_listen(self, link: str) -> str:
        return f"0.0.0.0:{self._link_ports[link]}"

    def l7_listen(self, link: str) -> str:
        return f"0.0.0.0:{self._l7_ports[link]}"

    def l7_address(self, link: str) -> str:
        return f"{L7PROXY}:{self._l7_ports[link]}"

    def reach(self, port: int) -> Endpoint:
        return Endpoint(self._host, self._forward.get(port, port))

    def inside_values(self, service: str) -> dict[str, str]:
        port = _container_port(self.ctx.service(service))
        values = {"python": "python3", "host": "0.0.0.0", "data_dir": DATA_DIR}
        values["stack_dir"] = STACK_DIR
        return values | ({"port": str(port)} if port is not None else {})

    # ---------------------------------------------------------------- control

    def _running(self, unit: str) -> bool:
        return bool(_state(self.container(unit)).get("Running"))

    def _unpause(self, c: Container) -> None:
        if _state(c).get("Paused"):
            c.unpause()

    def _wait_exited(self, c: Container, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not _state(c).get("Running"):
                return True
            time.sleep(0.05)
        return not _state(c).get("Running")

    def start(self, service: str) -> None:
        def do() -> None:
            c = self.container(service)
            if not _state(c).get("Running"):
                c.start()

        self._call(service, "docker start", do)

    def kill(self, service: str) -> None:
        def do() -> None:
            c = self.container(service)
            if not _state(c).get("Running"):
                return
            self._unpause(c)  # a frozen process would die only when thawed
            c.kill()
            self._wait_exited(c, 10.0)

        self._call(service, "docker kill", do)

    def stop(self, service: str, timeout_s: float, *, immediate: bool = False) -> None:
        def do() -> None:
            c = self.container(service)
            if not _state(c).get("Running"):
                return
            self._unpause(c)
            if not immediate:
                c.stop(timeout=max(1, math.ceil(timeout_s)))
                return
            is_pg = service != TOXIPROXY and self.ctx.service(service).postgres is not None
            if is_pg:  # immediate shutdown: no checkpoint, crash recovery
                c.kill(signal="SIGQUIT")
                if self._wait_exited(c, timeout_s):
                    return
            c.kill()
            self._wait_exited(c, 10.0)

        self._call(service, "docker stop", do)

    def pause(self, service: str) -> None:
        def do() -> None:
            c = self.container(service)
            st = _state(c)
            if not st.get("Running"):
                raise StackError("cannot pause: it is not running", service=service)
            if not st.get("Paused"):
                c.pause()

        self._call(service, "docker pause", do)

    def resume(self, service: str) -> None:
        self._call(service, "docker unpause", lambda: self._unpause(self.container(service)))

    def _net(self) -> Network:
        if self._network is None:
            raise StackError("the run's network does not exist")
        return self._network

    def disconnect(self, service: str) -> None:
        net = self._net()
        self._call(
            service, "docker network disconnect", lambda: net.disconnect(self.container(service))
        )

    def reconnect(self, service: str) -> None:
        net = self._net()
        self._call(
            service,
            "docker network connect",
            lambda: net.connect(self.container(service), aliases=[service]),
        )

    def state(self, service: str) -> UnitState:
        c = self._containers.get(service)
        if c is None:
            return UnitState(running=False, detail="not created")
        st = self._call(service, "inspect", lambda: _state(c))
        return UnitState(
            running=bool(st.get("Running")),
            paused=bool(st.get("Paused")),
            exit_code=None if st.get("Running") else st.get("ExitCode"),
            detail="OOM-killed" if st.get("OOMKilled") else "",
        )

    def pid(self, service: str) -> int | None:
        st = self._call(service, "inspect", lambda: _state(self.container(service)))
        return int(st["Pid"]) if st.get("Running") and st.get("Pid") else None

    # ---------------------------------------------------------------- records

    def log_tail(self, unit: str, lines: int) -> str:
        c = self._containers.get(unit)
        if c is not None and not self._removed:
            with contextlib.suppress(Exception):
                raw = c.logs(stdout=True, stderr=True, tail=lines)
                return raw.decode(errors="replace").rstrip()
        try:
            text = self.ctx.log_path(unit).read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def processes(self) -> dict[str, int]:
        pid = self._tunnel.pid if self._tunnel is not None else None
        return {"ssh-tunnel": pid} if pid is not None else {}

    def versions(self) -> dict[str, str]:
        return dict(self._versions)

    def describe(self) -> dict[str, object]:
        plan = self.plan
        return {
            "engine": self.engine.host if self._engine is not None else None,
            "network": self.network_name,
            "images": (
                dict(plan.services)
                | {TOXIPROXY: plan.toxiproxy}
                | ({L7PROXY: plan.l7proxy} if plan.l7proxy else {})
            )
            if plan
            else {},
            "image_mode": plan.mode if plan else None,
        }

    # ---------------------------------------------------------------- teardown

    def _save_log(self, unit: str, c: Container) -> None:
        path = self.ctx.log_path(unit)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            for chunk in c.logs(stdout=True, stderr=True, stream=True, follow=False):
                f.write(chunk)

    def stop_all(self, units: list[str], timeout_s: float, teardown: Teardown) -> None:
        """Every container at once (they are independent by now), then its log."""

        def stop(unit: str) -> None:
            c = self._containers.get(unit)
            if c is None:
                return
            with contextlib.suppress(Exception):
                self._unpause(c)
            teardown.step(f"stopping {unit}", lambda: c.stop(timeout=max(1, math.ceil(timeout_s))))
            teardown.step(f"saving the log of {unit}", self._save_log, unit, c)
            if unit == L7PROXY:
                teardown.step("saving the L7 decisions", self._save_decisions, c)

        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(stop, units))

    def remove_all(self, teardown: Teardown) -> None:
        self._removed = True
        for unit, c in self._containers.items():
            teardown.step(f"removing {unit}", lambda c=c: c.remove(v=True, force=True))
        if self._engine is not None:
            teardown.step("removing leftovers", remove_run_objects, self.client, self.ctx.run_id)
        if self._tunnel is not None:
            teardown.step("stopping the ssh tunnel", self._tunnel.stop, 5.0)
        for r in self._tunnel_ports:
            r.release()
        if self._engine is not None:
            teardown.step("closing the engine client", self._engine.close)

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


class DockerBackend(StackOrchestrator[DockerPlatform]):
    """The orchestrator on the docker platform."""

    def __init__(
        self,
        *,
        stop_timeout_s: float = 5.0,
        settings: DockerSettings | None = None,
        say: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(DockerPlatform, stop_timeout_s=stop_timeout_s, say=say, settings=settings)


DockerStack = OrchestratedStack[DockerPlatform]  # the running stack, whatever the platform


def _labels_of(obj: Any) -> dict[str, str]:
    attrs = getattr(obj, "attrs", {}) or {}
    labels = attrs.get("Labels") or (attrs.get("Config") or {}).get("Labels") or {}
    return {str(k): str(v) for k, v in dict(labels).items()}
